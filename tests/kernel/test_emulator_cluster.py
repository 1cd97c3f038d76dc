"""``netemu up`` / ``status`` / ``link`` / ``down`` / ``cleanup`` on this kernel, as a user runs them.

Every test uses its own state dir and its own node network (172.31.X.0/24, X picked free), so
concurrent test clusters never clash; what a cluster made is found by its id (derived from the
state dir) and its pods' uids, and must all be gone at the end: namespaces, links, bridges and
processes. A finalizer runs ``netemu cleanup --force`` whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netemu.emulator import cpushare
from netemu.emulator.network import root_addresses
from netemu.emulator.plan import cluster_id
from netemu.emulator.state import network_lock_path, pid_alive

pytestmark = [pytest.mark.root, pytest.mark.timeout(600)]

NETEMU = [sys.executable, "-m", "netemu"]
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: emu-web}
spec:
  replicas: 2
  selector: {matchLabels: {app: emu-web}}
  template:
    metadata: {labels: {app: emu-web}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.47
        args: [netexec, --http-port=8080]
"""


def netemu(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*NETEMU, *args], capture_output=True, text=True, timeout=timeout)


def free_network() -> str:
    used = {a for _, a in root_addresses()}
    for k in range(os.getpid() % 60, os.getpid() % 60 + 60):
        x = 180 + k % 60
        net = f"172.31.{x}.0/24"
        if not any(a.startswith(f"172.31.{x}.") for a in used) and not _locked(net):
            return net
    pytest.skip("no free 172.31.X.0/24 node network for a test cluster")


def _locked(net: str) -> bool:
    import fcntl
    path = network_lock_path(net)
    if not path.exists():
        return False
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
    return False


class Cluster:
    """A test cluster's identity: state dir, node network, and what it has made so far."""

    def __init__(self, tmp: Path):
        self.state = str(tmp / "state")
        self.net = free_network()
        self.cid = cluster_id(self.state)
        self.pod_netns: set[str] = set()
        self.pids: set[int] = set()

    def args(self, *extra: str) -> list[str]:
        return ["--state-dir", self.state, *extra]

    def doc(self) -> dict:
        return json.loads(Path(self.state, "cluster.json").read_text())

    def remember(self) -> None:
        """Record every pid cluster.json names, so the end check can see they are gone."""
        doc = self.doc()
        self.pids |= {p for p in (doc["supervisor_pid"], doc.get("apiserver_pid")) if p}
        for node in doc["nodes"].values():
            self.pids |= {p for p in (node.get("agent_pid"), node.get("pid")) if p}

    def leftovers(self) -> dict:
        netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout)
        procs = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if self.state in argv or f"mininet:n{self.cid}" in argv:
                procs.append(int(entry))
        return {"node netns": sorted(n for n in netns if n.startswith(f"nen-{self.cid}-")),
                "pod netns": sorted(netns & self.pod_netns),
                "links": sorted(link["ifname"] for link in links if link["ifname"].startswith(f"n{self.cid}")),
                "processes": sorted(set(procs) | {p for p in self.pids if pid_alive(p) and not _zombie(p)}),
                "root address": sorted(a for _, a in root_addresses() if a == self.net.replace("0/24", "1"))}


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        netemu("cleanup", "--force", *c.args())


def kubectl(c: Cluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", os.path.join(c.state, "kubeconfig"), *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


def wait_pods_running(c: Cluster, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = kubectl(c, "get", "pods", "-l", "app=emu-web", "-o", "json")
        pods = json.loads(out.stdout or '{"items": []}')["items"] if out.returncode == 0 else []
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        if len(running) == count:
            return running
        time.sleep(0.5)
    raise AssertionError(f"pods not Running in {timeout}s: {out.stdout[-2000:]} {out.stderr}")


def run_pods(c: Cluster) -> None:
    assert kubectl(c, "apply", "-f", "-", stdin=DEPLOYMENT).returncode == 0
    for pod in wait_pods_running(c, 2):
        c.pod_netns.add("nep-" + pod["metadata"]["uid"].replace("-", "")[:11])
    assert c.pod_netns <= set(os.listdir("/run/netns"))


@pytest.mark.kubectl
def test_up_status_link_down_leaves_nothing(cluster, tmp_path):
    c = cluster
    up = netemu("up", "--nodes", "2", "--node-network", c.net, *c.args())
    assert up.returncode == 0, up.stdout + up.stderr
    assert "2 node(s) Ready" in up.stdout
    c.remember()
    doc = c.doc()
    assert sorted(doc["nodes"]) == ["control-plane", "worker", "worker2"]
    assert doc["apiserver"] == "https://" + c.net.replace("0/24", "2") + ":6443"
    # the control plane's session weighs as both nodes together (cpushare.py), a node's as one
    assert cpushare.current(doc["apiserver_pid"]) == cpushare.nice_for(2) == -4
    assert cpushare.current(doc["launcher_pid"]) == 0

    status = netemu("status", *c.args())
    assert status.returncode == 0 and "worker2" in status.stdout and "NotReady" not in status.stdout
    nodes = kubectl(c, "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
    assert nodes.stdout.split() == ["worker", "worker2"]
    run_pods(c)

    # a second cluster on the same state dir, or on the same node network, is refused: nothing made
    again = netemu("up", "--nodes", "1", "--node-network", "172.31.179.0/24", *c.args())
    assert again.returncode == 2 and "in use by a running cluster" in again.stderr
    other = str(tmp_path / "other")
    clash = netemu("up", "--nodes", "1", "--node-network", c.net, "--state-dir", other)
    assert clash.returncode == 2 and f"node network {c.net}" in clash.stderr
    assert not Path(other).exists()
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"nen-{cluster_id(other)}-")]

    # link cut and back: the worker's interface really goes down, then up
    worker_ns = doc["nodes"]["worker"]["netns"]
    assert netemu("link", "worker", "down", *c.args()).returncode == 0
    links = json.loads(subprocess.run(["ip", "-n", worker_ns, "-j", "link", "show"],
                                      capture_output=True, text=True).stdout)
    assert any("UP" not in link["flags"] for link in links if link["ifname"].startswith(f"n{c.cid}h"))
    assert netemu("link", "worker", "up", *c.args()).returncode == 0
    bad = netemu("link", "nosuchnode", "down", *c.args())
    assert bad.returncode == 2 and "no node 'nosuchnode'" in bad.stderr

    down = netemu("down", *c.args())
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    assert c.leftovers() == {"node netns": [], "pod netns": [], "links": [], "processes": [], "root address": []}
    assert netemu("status", *c.args()).stdout.startswith(f"no cluster running at {os.path.abspath(c.state)}")
    assert not Path(c.state, "kubeconfig").exists(), "a stale kubeconfig would send kubectl out of the default route"
    assert not network_lock_path(c.net).exists() or not _locked(c.net)


@pytest.mark.kubectl
def test_kill_9_then_cleanup_leaves_nothing(cluster):
    c = cluster
    up = netemu("up", "--nodes", "1", "--node-network", c.net, *c.args())
    assert up.returncode == 0, up.stdout + up.stderr
    c.remember()
    run_pods(c)
    doc = c.doc()
    victims = [doc["supervisor_pid"], doc["apiserver_pid"]] + [n["agent_pid"] for n in doc["nodes"].values()
                                                               if n.get("agent_pid")]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    assert c.leftovers()["node netns"], "a crashed cluster leaves its namespaces: the test must see cleanup work"

    first = netemu("cleanup", *c.args())
    assert first.returncode == 0 and first.stdout.startswith("removed"), first.stdout + first.stderr
    assert not Path(c.state, "kubeconfig").exists()
    assert c.leftovers() == {"node netns": [], "pod netns": [], "links": [], "processes": [], "root address": []}
    second = netemu("cleanup", *c.args())
    assert second.returncode == 0 and second.stdout.strip() == "nothing to clean up"


@pytest.mark.etcd
def test_etcd_store_runs_in_the_control_plane_host_and_goes_with_down(cluster):
    c = cluster
    up = netemu("up", "--nodes", "1", "--store", "etcd", "--node-network", c.net, *c.args())
    assert up.returncode == 0, up.stdout + up.stderr
    c.remember()
    doc = c.doc()
    etcd = doc["etcd_pid"]
    assert etcd and Path(f"/proc/{etcd}/cmdline").read_bytes().split(b"\0")[0].endswith(b"etcd")
    assert os.stat(f"/proc/{etcd}/ns/net").st_ino == os.stat(f"/run/netns/{doc['nodes']['control-plane']['netns']}").st_ino
    c.pids.add(etcd)
    assert netemu("down", *c.args()).returncode == 0
    assert c.leftovers() == {"node netns": [], "pod netns": [], "links": [], "processes": [], "root address": []}


def test_up_after_a_crash_on_the_same_state_dir_clears_the_leftovers_first(cluster):
    c = cluster
    assert netemu("up", "--nodes", "1", "--node-network", c.net, *c.args()).returncode == 0
    c.remember()
    os.kill(c.doc()["supervisor_pid"], signal.SIGKILL)
    again = netemu("up", "--nodes", "1", "--node-network", c.net, *c.args())
    assert again.returncode == 0, again.stdout + again.stderr
    assert "removed what a crashed run left" in again.stdout
    c.remember()
    assert netemu("down", *c.args()).returncode == 0
    assert c.leftovers() == {"node netns": [], "pod netns": [], "links": [], "processes": [], "root address": []}


@pytest.mark.parametrize("args, message", [
    (["--nodes", "0"], "1 to 500 worker nodes"),
    (["--topo", "topologies/nosuch.py:ClusterTopo"], "not found"),
    (["--topo", "topologies/cluster.py:NoSuchTopo"], "no topology 'NoSuchTopo'"),
    (["--nodes", "2", "--topo", "topologies/cluster.py:ClusterTopo"], "not both"),
    (["--node-network", "10.244.0.0/24"], "overlaps the pod CIDR"),
])
def test_bad_input_is_one_clear_line_and_makes_nothing(tmp_path, args, message):
    state = str(tmp_path / "state")
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    proc = netemu("up", *args, "--state-dir", state, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not os.path.exists(state)
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert not [n for n in after - before if n.startswith(f"nen-{cluster_id(state)}")]


def test_ctrl_c_while_coming_up_takes_everything_down(cluster):
    c = cluster
    proc = subprocess.Popen([*NETEMU, "up", "--nodes", "4", "--node-network", c.net, *c.args()],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status = Path(c.state, "status.json")
    deadline = time.monotonic() + 60
    while not status.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the cluster was Ready before the interrupt arrived")
    assert proc.returncode == 130 and "interrupted" in err
    assert json.loads(status.read_text())["phase"] == "stopped"
    assert c.leftovers() == {"node netns": [], "pod netns": [], "links": [], "processes": [], "root address": []}
