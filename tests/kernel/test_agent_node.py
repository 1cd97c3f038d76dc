"""`netemu agent` on a real kernel against a real `netemu apiserver` (with its controllers).

Everything runs in namespaces the AgentLab makes (netemu/testing/agentlab.py: an API server
namespace and a node namespace linked by a veth made inside them); the fixture checks that the
namespaces and every pod namespace are gone afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from netemu.testing.agentlab import AgentLab
from netemu.agent.runtime import http_get, pod_netns

pytestmark = pytest.mark.root

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


@pytest.fixture
def cluster(tmp_path):
    c = AgentLab(tmp_path)
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
    assert {"type": "InternalIP", "address": c.node_ip} in node["status"]["addresses"]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    lease = c.kubectl("get", "lease", "-n", "kube-node-lease", "n1", "-o", "json")
    assert json.loads(lease.stdout)["spec"]["holderIdentity"] == "n1"

    ready_file, alive_file = c.probe_dir / "ready", c.probe_dir / "alive"
    ready_file.touch()
    alive_file.touch()
    pods = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
         "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5,
                  "initContainers": [{"name": "setup", "image": "busybox", "command": ["sh", "-c", "echo setting up"]}],
                  "containers": [
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
    # killContainer sends SIGTERM first; agnhost netexec exits 0 on it (no SIGKILL's 137)
    assert _container(live, "app")["lastState"]["terminated"]["exitCode"] == 0
    alive_file.touch()

    described = c.kubectl("describe", "pod", "live").stdout
    assert "Started container app" in described and "Liveness probe failed" in described

    logs = c.kubectl("logs", "web", "-c", "web")
    assert "Started HTTP server on port 8080" in logs.stdout
    assert c.kubectl("logs", "web", "-c", "setup").stdout == "setting up\n"     # a real process, run first
    assert web["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert c.kubectl("logs", "web", "-c", "nope", check=False).returncode != 0

    uid = web["metadata"]["uid"]
    assert os.path.exists(f"/run/netns/{pod_netns(uid)}")
    c.kubectl("delete", "pod", "web", "--wait=false")
    c.wait("web gone", lambda: c.get("pod", "web") is None)
    assert not os.path.exists(f"/run/netns/{pod_netns(uid)}")


def _renew_time(c: AgentLab) -> str:
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

    c.ip("link", "set", "eth1", "down")
    try:
        c.wait("node not Ready", lambda: _cond(c.get("node", "n1"), "Ready") not in ("True", None), timeout=60)
        answer = asyncio.run(http_get(ip, 8080, "/hostname", timeout=3, netns=c.node_ns))
        assert answer.ok and answer.body == b"web"           # the pod kept running
        before = _renew_time(c)
    finally:
        c.ip("link", "set", "eth1", "up")
    c.wait("node Ready again", lambda: _cond(c.get("node", "n1"), "Ready") == "True", timeout=60)
    c.wait("lease renewed", lambda: _renew_time(c) > before, timeout=30)
    c.wait("pod Ready again", lambda: _cond(c.get("pod", "web"), "Ready") == "True", timeout=30)
    assert c.get("pod", "web")["metadata"]["uid"] == web["metadata"]["uid"]


def test_host_network_pod_and_orphans_after_agent_restart(cluster):
    """A hostNetwork pod serves on the node's own address; a pod force-deleted while the agent
    is down has its namespace removed when the agent comes back; the agent exits 0 on SIGTERM."""
    c = cluster
    c.wait("node Ready", lambda: _cond(c.get("node", "n1"), "Ready") == "True")
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
             "spec": {"nodeName": "n1", "hostNetwork": host, "containers": [
                 {"name": "c", "image": AGNHOST, "args": ["netexec", f"--http-port={port}", "--udp-port=-1"]}]}}
            for name, host, port in (("hostpod", True, 18080), ("doomed", False, 8080))]
    for pod in pods:
        c.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    host = c.wait("hostpod Ready", lambda: (p := c.get("pod", "hostpod")) and _cond(p, "Ready") == "True" and p)
    assert host["status"]["podIP"] == c.node_ip
    answer = asyncio.run(http_get(c.node_ip, 18080, "/hostname", timeout=3, netns=c.node_ns))
    assert answer.ok and answer.body == b"n1"                # a hostNetwork pod's hostname is the node's
    doomed = c.wait("doomed Ready", lambda: (p := c.get("pod", "doomed")) and _cond(p, "Ready") == "True" and p)
    netns = pod_netns(doomed["metadata"]["uid"])
    assert os.path.exists(f"/run/netns/{netns}")

    assert c.stop_agent() == 0
    c.kubectl("delete", "pod", "doomed", "--grace-period=0", "--force")
    assert os.path.exists(f"/run/netns/{netns}")            # nobody was there to clean up
    c.start_agent()
    c.wait("orphan sandbox removed", lambda: not os.path.exists(f"/run/netns/{netns}"), timeout=30)
    c.wait("hostpod serving again", lambda: asyncio.run(
        http_get(c.node_ip, 18080, "/hostname", timeout=3, netns=c.node_ns)).body == b"n1")
    status = c.wait("hostpod restart counted", lambda: (p := c.get("pod", "hostpod")) and
                    _container(p, "c").get("restartCount") == 1 and p)
    assert _container(status, "c")["lastState"]["terminated"]["reason"] == "Unknown"
