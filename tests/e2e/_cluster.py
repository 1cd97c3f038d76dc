"""Helpers of the end-to-end tests: a real cluster through the commands a user types.

Every cluster gets its own state dir and its own node network (172.31.<k>.0/24, <k> from the
pid), so test clusters of several engineers or CI runs never clash; everything is driven through
``netemu`` and real ``kubectl`` as argv lists, and every request is sent from inside a namespace
of that cluster (a pod's or a node's), never from the root namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

from netemu.agent.runtime.names import pod_netns_of
from netemu.emulator.demo import HTTP_CLIENT_SOURCE, parse_client_output
from netemu.testing.cluster import pod_ready as ready, wait_until  # noqa: F401 - the e2e tests' helpers

Obj = dict[str, Any]
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def node_network(offset: int = 0) -> str:
    return f"172.31.{20 + (os.getpid() + offset) % 200}.0/24"


def netemu_argv(*words: str) -> list[str]:
    return [sys.executable, "-m", "netemu", *words]


def netemu(*words: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(netemu_argv(*words), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"netemu {' '.join(words)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


class Cluster:
    """One cluster brought up with ``netemu up``; ``down()`` (idempotent) takes it away."""

    def __init__(self, state_dir: Path, nodes: int, network: str, extra: tuple[str, ...] = ()):
        self.state_dir, self.nodes, self.network, self.extra = state_dir, nodes, network, extra
        self.kubeconfig = str(state_dir / "kubeconfig")
        self.is_up = False

    def up(self) -> subprocess.CompletedProcess:
        """``netemu up``; a node network some other cluster (another test run) holds is
        swapped for the next free-looking one, up to 3 times."""
        for attempt in range(3):
            proc = netemu("up", *(("--nodes", str(self.nodes)) if self.nodes else ()), "--state-dir", str(self.state_dir),
                          "--node-network", self.network, *self.extra, timeout=600, check=False)
            taken = f"node network {self.network} is" in proc.stderr
            if proc.returncode == 0 or not taken:
                break
            self.network = node_network(37 * (attempt + 1) + int(self.network.split(".")[2]))
        self.is_up = proc.returncode == 0
        if not self.is_up:
            logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                             for p in sorted((self.state_dir / "logs").glob("*.log")))
            raise AssertionError(f"netemu up failed: {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n{logs}")
        return proc

    def down(self) -> None:
        if self.is_up:
            self.is_up = False
            netemu("down", "--state-dir", str(self.state_dir), timeout=300, check=False)

    def doc(self) -> Obj:
        return json.loads((self.state_dir / "cluster.json").read_text())

    def kubectl(self, *words: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, "--request-timeout=30s", *words],
                              input=input, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(words)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def get(self, *words: str) -> Obj:
        return json.loads(self.kubectl("get", *words, "-o", "json").stdout)

    def pods(self, selector: str) -> list[Obj]:
        return self.get("pods", "-l", selector)["items"]

    def node_netns(self, node: str) -> str:
        return self.doc()["nodes"][node]["netns"]

    def node_ip(self, node: str) -> str:
        return self.doc()["nodes"][node]["ip"]

    def workers(self) -> list[str]:
        return sorted(n["metadata"]["name"] for n in self.get("nodes")["items"])


@contextlib.contextmanager
def running(state_dir: Path, nodes: int, extra: tuple[str, ...] = ()) -> Iterator[Cluster]:
    """A cluster up for the ``with`` block; down after it however it ends, then checked to have
    left nothing of itself on the machine (the pod namespaces it had included)."""
    cl = Cluster(state_dir, nodes, node_network(), extra)
    pod_netns: set[str] = set()
    try:
        cl.up()
        yield cl
    finally:
        try:
            for pod in cl.get("pods", "-A")["items"] if cl.is_up else []:
                pod_netns.add(pod_netns_of(pod))
        except Exception:  # noqa: BLE001 - the API may be gone already; down still runs
            pass
        cl.down()
    left = leftovers(state_dir, pod_netns)
    assert not any(left.values()), f"netemu down left: {left}"


def node_ready(node: Obj) -> str:
    return next((c["status"] for c in (node.get("status") or {}).get("conditions") or []
                 if c["type"] == "Ready"), "Unknown")


def http(netns: str, ip: str, port: int, path: str = "/hostname", count: int = 1,
         timeout: float = 3) -> list[str | None]:
    """``count`` HTTP GETs (each a new connection) sent from inside ``netns``."""
    proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", HTTP_CLIENT_SOURCE, ip,
                           str(port), path, str(count), str(timeout)],
                          capture_output=True, text=True, timeout=60 + count * timeout)
    assert proc.returncode == 0, proc.stderr
    return parse_client_output(proc.stdout)


def from_pod(pod: Obj, ip: str, port: int, path: str = "/hostname", count: int = 1) -> list[str | None]:
    return http(pod_netns_of(pod), ip, port, path, count)


def deployment(name: str, replicas: int, **pod_spec: Any) -> Obj:
    spec = {"containers": [{"name": "agnhost", "image": AGNHOST,
                            "args": ["netexec", "--http-port=8080", "--udp-port=8081"],
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                               "periodSeconds": 1}}],
            "terminationGracePeriodSeconds": 1, **pod_spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def service(name: str, selector: dict, type_: str = "ClusterIP") -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": type_, "selector": selector,
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


def pause_pod(name: str, node: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"role": "client"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.9"}]}}


def manifest(*objs: Obj) -> str:
    """A multi-document YAML manifest, as a user's file would be."""
    return yaml.safe_dump_all(objs, sort_keys=False)


# -- what a cluster leaves on the machine ---------------------------------------------------------

def leftovers(state_dir: Path, pod_namespaces: set[str]) -> dict[str, list[str]]:
    """Namespaces, root-namespace links and processes that belong to this cluster."""
    from netemu.emulator.plan import cluster_id, mn_prefix
    cid = cluster_id(str(state_dir))
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    netns = [line.split()[0] for line in netns if line.strip()]
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout or "[]")
    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(state_dir) in cmd or f"mininet:{mn_prefix(cid)}h" in cmd:   # + Mininet's host shells
                procs.append(f"{entry.name}: {cmd[:160]}")
    return {
        "node namespaces": [n for n in netns if n.startswith(f"nen-{cid}-")],
        "pod namespaces": [n for n in netns if n in pod_namespaces],
        "links": [lk["ifname"] for lk in links if lk["ifname"].startswith(mn_prefix(cid))],
        "processes": procs,
    }


def nothing_left(state_dir: Path, pod_namespaces: set[str]) -> bool:
    return not any(leftovers(state_dir, pod_namespaces).values())
