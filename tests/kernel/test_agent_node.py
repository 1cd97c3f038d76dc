"""`netemu agent` on a real kernel against a real `netemu apiserver` (with its controllers).

Two namespaces made here: ``nta<pid>…`` runs the API server, ``ntn<pid>…`` is the node running
the agent; a veth pair made inside them links 172.31.251.1 and .2 (the root namespace is never
touched). Both processes run through ``nsenter --net`` so they share the root mount namespace
(pod namespaces under /run/netns stay visible). kubectl runs in the API server's namespace.
Cleanup, also on failure: both processes by PID, every pod namespace the agent allocated (its
IPAM file), then the two namespaces.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netemu.agent.runtime import http_get, pod_netns

pytestmark = pytest.mark.root

_COUNTER = itertools.count()
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
API_IP, NODE_IP = "172.31.251.1", "172.31.251.2"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def _stop(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Cluster:
    def __init__(self, tmp: Path):
        n = f"{os.getpid()}{next(_COUNTER)}"
        self.api_ns, self.node_ns = f"nta{n}", f"ntn{n}"
        self.tmp = tmp
        self.kubeconfig = tmp / "api" / "kubeconfig"
        self.agent_state = tmp / "agent"
        self.probe_dir = tmp / "probes"
        self.api: subprocess.Popen | None = None
        self.agent: subprocess.Popen | None = None
        self.pod_netns_left: list[str] = []

    def start(self) -> None:
        for ns in (self.api_ns, self.node_ns):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", self.api_ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1",
             "netns", self.node_ns)
        for ns, ip in ((self.api_ns, API_IP), (self.node_ns, NODE_IP)):
            _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth1")
            _run("ip", "-n", ns, "link", "set", "eth1", "up")
        (self.tmp / "api").mkdir()
        self.probe_dir.mkdir()
        api_log = open(self.tmp / "apiserver.log", "wb")
        self.api = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.api_ns}", "--", sys.executable, "-m", "netemu", "apiserver",
             "--listen", f"{API_IP}:6443", "--store", f"sqlite:{self.tmp / 'api' / 'state.db'}",
             "--state-dir", str(self.tmp / "api"), "--advertise-address", API_IP,
             "--node-monitor-grace-period", "8s", "--node-monitor-period", "1s"],
            stdout=api_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self.kubeconfig.exists() or "kubeconfig" not in (self.tmp / "apiserver.log").read_text():
            assert self.api.poll() is None, (self.tmp / "apiserver.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "apiserver did not start"
            time.sleep(0.1)
        agent_log = open(self.tmp / "agent.log", "wb")
        self.agent = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.node_ns}", "--", sys.executable, "-m", "netemu", "-v", "agent",
             "--node", "n1", "--node-ip", NODE_IP, "--kubeconfig", str(self.kubeconfig),
             "--state-dir", str(self.agent_state), "--heartbeat-interval", "1", "--restart-backoff", "0.5",
             "--metrics-bind-address", ""],
            stdout=agent_log, stderr=subprocess.STDOUT)

    def close(self) -> None:
        _stop(self.agent)
        _stop(self.api)
        ipam = self.agent_state / "runtime" / "ipam.json"
        names = []
        if ipam.exists():
            try:
                allocations = json.loads(ipam.read_text()).get("allocations") or {}
                names = [pod_netns(a["uid"]) for a in allocations.values()]
            except (ValueError, AttributeError, KeyError):
                names = []
        for name in names:
            _run("ip", "netns", "del", name, check=False)
        self.pod_netns_left = [n for n in names if os.path.exists(f"/run/netns/{n}")]
        for ns in (self.node_ns, self.api_ns):
            _run("ip", "netns", "del", ns, check=False)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.tmp)}
        r = subprocess.run(["nsenter", f"--net=/run/netns/{self.api_ns}", "--", "kubectl", *args],
                           capture_output=True, text=True, env=env, input=stdin, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stdout}\n{r.stderr}\n" + self.logs())
        return r

    def get(self, kind: str, name: str) -> dict | None:
        r = self.kubectl("get", kind, name, "-o", "json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def logs(self) -> str:
        out = []
        for f in ("apiserver.log", "agent.log"):
            p = self.tmp / f
            out.append(f"--- {f}\n" + (p.read_text()[-3000:] if p.exists() else ""))
        return "\n".join(out)

    def wait(self, what: str, fn, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = fn()
            if value:
                return value
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        c.start()
        yield c
    finally:
        c.close()
    for ns in (c.api_ns, c.node_ns):
        assert not os.path.exists(f"/run/netns/{ns}")
    assert c.pod_netns_left == []


def _cond(obj: dict | None, ctype: str) -> str | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return c["status"]
    return None


def _container(pod: dict | None, name: str) -> dict:
    for c in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if c["name"] == name:
            return c
    return {}


def _exec_probe(path: Path, **kw) -> dict:
    return {"exec": {"command": ["test", "-f", str(path)]}, "periodSeconds": 1, "failureThreshold": 1, **kw}


def test_agent_runs_a_node_and_its_pods(cluster):
    c = cluster
    node = c.wait("node Ready", lambda: (n := c.get("node", "n1")) and _cond(n, "Ready") == "True" and n)
    assert node["spec"]["podCIDR"].startswith("10.244.")
    assert {"type": "InternalIP", "address": NODE_IP} in node["status"]["addresses"]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    lease = c.kubectl("get", "lease", "-n", "kube-node-lease", "n1", "-o", "json")
    assert json.loads(lease.stdout)["spec"]["holderIdentity"] == "n1"

    ready_file, alive_file = c.probe_dir / "ready", c.probe_dir / "alive"
    ready_file.touch()
    alive_file.touch()
    pods = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
         "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5, "containers": [
             {"name": "web", "image": AGNHOST, "args": ["netexec", "--http-port=8080"],
              "ports": [{"name": "http", "containerPort": 8080}],
              "startupProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
              "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
              "readinessProbe": _exec_probe(ready_file)}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "live"},
         "spec": {"nodeName": "n1", "containers": [
             {"name": "app", "image": AGNHOST, "args": ["netexec", "--http-port=8081"],
              "livenessProbe": _exec_probe(alive_file)}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "odd"},
         "spec": {"nodeName": "n1", "containers": [{"name": "x", "image": "example.com/unknown:1"}]}},
    ]
    for pod in pods:
        c.kubectl("apply", "-f", "-", stdin=json.dumps(pod))

    web = c.wait("web Ready", lambda: (p := c.get("pod", "web")) and _cond(p, "Ready") == "True" and p)
    ip = web["status"]["podIP"]
    assert web["status"]["phase"] == "Running" and ip.startswith(node["spec"]["podCIDR"].rsplit(".", 1)[0])
    assert _container(web, "web")["started"] is True and "running" in _container(web, "web")["state"]
    answer = asyncio.run(http_get(ip, 8080, "/hostname", timeout=3, netns=c.node_ns))
    assert answer.ok and answer.body == b"web"

    odd = c.wait("odd waiting", lambda: (p := c.get("pod", "odd")) and _container(p, "x").get("state", {}).get("waiting")
                 and p)
    waiting = _container(odd, "x")["state"]["waiting"]
    assert waiting["reason"] == "ImageNotSupported" and "agnhost" in waiting["message"]
    assert odd["status"]["phase"] == "Pending"

    ready_file.unlink()                                   # readiness fails: Ready flips to False
    c.wait("web NotReady", lambda: _cond(c.get("pod", "web"), "Ready") == "False")
    assert _container(c.get("pod", "web"), "web")["restartCount"] == 0
    ready_file.touch()
    c.wait("web Ready again", lambda: _cond(c.get("pod", "web"), "Ready") == "True")

    c.wait("live Running", lambda: "running" in _container(c.get("pod", "live"), "app").get("state", {}))
    alive_file.unlink()                                   # liveness fails: the container restarts
    live = c.wait("live restarted", lambda: (p := c.get("pod", "live")) and _container(p, "app")["restartCount"] >= 1 and p)
    assert _container(live, "app")["lastState"]["terminated"]["exitCode"] == 137
    alive_file.touch()

    logs = c.kubectl("logs", "web")
    assert "Started HTTP server on port 8080" in logs.stdout
    assert c.kubectl("logs", "web", "-c", "nope", check=False).returncode != 0

    uid = web["metadata"]["uid"]
    assert os.path.exists(f"/run/netns/{pod_netns(uid)}")
    c.kubectl("delete", "pod", "web", "--wait=false")
    c.wait("web gone", lambda: c.get("pod", "web") is None)
    assert not os.path.exists(f"/run/netns/{pod_netns(uid)}")


def _renew_time(c: Cluster) -> str:
    r = c.kubectl("get", "lease", "-n", "kube-node-lease", "n1", "-o", "json", check=False)
    return json.loads(r.stdout)["spec"]["renewTime"] if r.returncode == 0 else ""


def test_agent_survives_a_cut_link(cluster):
    """The node's only link goes down: the control plane marks it not Ready, its pod keeps
    serving; the link comes back: Lease renewals resume and the node and pod are Ready again."""
    c = cluster
    c.wait("node Ready", lambda: _cond(c.get("node", "n1"), "Ready") == "True")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
           "spec": {"nodeName": "n1", "containers": [
               {"name": "web", "image": AGNHOST, "args": ["netexec", "--http-port=8080"]}]}}
    c.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    web = c.wait("web Ready", lambda: (p := c.get("pod", "web")) and _cond(p, "Ready") == "True" and p)
    ip = web["status"]["podIP"]

    _run("ip", "-n", c.node_ns, "link", "set", "eth1", "down")
    try:
        c.wait("node not Ready", lambda: _cond(c.get("node", "n1"), "Ready") not in ("True", None), timeout=60)
        answer = asyncio.run(http_get(ip, 8080, "/hostname", timeout=3, netns=c.node_ns))
        assert answer.ok and answer.body == b"web"           # the pod kept running
        before = _renew_time(c)
    finally:
        _run("ip", "-n", c.node_ns, "link", "set", "eth1", "up")
    c.wait("node Ready again", lambda: _cond(c.get("node", "n1"), "Ready") == "True", timeout=60)
    c.wait("lease renewed", lambda: _renew_time(c) > before, timeout=30)
    c.wait("pod Ready again", lambda: _cond(c.get("pod", "web"), "Ready") == "True", timeout=30)
    assert c.get("pod", "web")["metadata"]["uid"] == web["metadata"]["uid"]
