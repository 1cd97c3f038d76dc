"""A node's processes fail alone (issues 17 and 18), on one 2-node cluster for the module.

Every node runs what a real node runs, each its own process forked from the cluster's launcher
template: a node supervisor (systemd's part) and its container runtime, kubelet and kube-proxy.
The tests kill them as an experiment would (`netemu node kill|restart|stop|start`, kill -9)
while a client pod sends requests, and check what a real node does: kube-proxy's death loses no
request and its successor's first sync leaves the node's rules identical; the kubelet's death
loses no request to its node's pods, the Node stays Ready, and a pod bound meanwhile starts when
it is back; the runtime's death kills the node's containers, which the kubelet restarts
(restartCount grows) while their endpoints drop and come back; whatever is killed comes back (5
times in a row, with back-off in the supervisor's log); the launcher template's death changes
nothing; a node whose whole agent tree is killed goes NotReady alone. The last
test changes the cluster; `netemu down` must then leave nothing on the machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e import _cluster as c

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.kubectl]

FAST = ("--apiserver-arg=--node-monitor-grace-period=8s", "--apiserver-arg=--node-monitor-period=1s",
        "--agent-arg=--heartbeat-interval=1", "--agent-arg=--restart-backoff=1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("e2e-nodes")
    cl = c.Cluster(state, 2, c.node_network(91), FAST)
    seen: set[str] = set()
    try:
        cl.up()
        yield cl
    finally:
        try:
            seen |= {c.pod_netns_of(p) for p in (cl.get("pods", "-A")["items"] if cl.is_up else [])}
        except Exception:  # noqa: BLE001 - the API may be gone already; down still runs
            pass
        cl.down()
    left = c.leftovers(state, seen)
    assert not any(left.values()), f"netemu down left: {left}"


@pytest.fixture(scope="module")
def web(cluster):
    """2 agnhost replicas on `worker`, a client pod on `worker2`, a ClusterIP Service."""
    server, client_node = "worker", "worker2"
    out = cluster.kubectl("apply", "-f", "-", input=c.manifest(
        c.deployment("web", 2, nodeSelector={"kubernetes.io/hostname": server}),
        c.service("web", {"app": "web"}), c.pause_pod("client", client_node))).stdout
    assert "service/web created" in out
    c.wait_until("2 ready replicas", lambda: len([p for p in cluster.pods("app=web") if c.ready(p)]) == 2, 180)
    client = c.wait_until("the client pod", lambda: (lambda p: p if c.ready(p) else None)(cluster.get("pod", "client")))
    ip = cluster.get("service", "web")["spec"]["clusterIP"]
    c.wait_until("the Service answering", lambda: None not in c.from_pod(client, ip, 80, "/hostname", 5))
    return {"client": client, "ip": ip, "client_node": client_node, "server_node": server}


def components(cluster, node: str) -> dict:
    out = c.netemu("node", "components", node, "--json", "--state-dir", str(cluster.state_dir)).stdout
    return {name: {"pid": comp["pid"], "restarts": comp["restarts"]}
            for name, comp in json.loads(out)[node]["components"].items()}


def wait_new_pid(cluster, node: str, name: str, old: int, timeout: float = 60) -> int:
    return c.wait_until(f"a new {name} on {node}", lambda: (lambda p: p if p and p != old else None)(
        components(cluster, node)[name]["pid"]), timeout, 0.2)


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


def last_sync(cluster, node: str) -> float:
    """kube-proxy's last successful sync on ``node`` (epoch seconds; 0: none), from its
    /healthz on the node IP's port 10256, asked from inside the node."""
    code = ("import json, urllib.request, urllib.error, sys\n"
            "try:\n    r = urllib.request.urlopen(sys.argv[1], timeout=3).read()\n"
            "except urllib.error.HTTPError as e:\n    r = e.read()\n"
            "except OSError:\n    r = b'{}'\nprint(r.decode())")
    proc = subprocess.run(["ip", "netns", "exec", cluster.node_netns(node), sys.executable, "-c", code,
                           f"http://{cluster.node_ip(node)}:10256/healthz"], capture_output=True, text=True)
    text = json.loads(proc.stdout or "{}").get("lastUpdated") or ""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f %z").timestamp() if text else 0.0


def rules(cluster, node: str) -> list[str]:
    """The node's iptables rules as iptables-save prints them, without counters or comments."""
    out = subprocess.run(["ip", "netns", "exec", cluster.node_netns(node), "iptables-save"],
                         capture_output=True, text=True, check=True).stdout
    return [re.sub(r" \[\d+:\d+\]$", "", line) for line in out.splitlines() if not line.startswith("#")]


class Requests(threading.Thread):
    """Requests through the ClusterIP from the client pod, in batches, until stopped."""

    def __init__(self, web):
        super().__init__(daemon=True)
        self.web, self.answers, self.done = web, [], threading.Event()

    def run(self):
        while not self.done.is_set():
            self.answers += c.from_pod(self.web["client"], self.web["ip"], 80, "/hostname", 20)

    def stop(self, at_least: int) -> list:
        c.wait_until(f"{at_least} requests", lambda: len(self.answers) >= at_least, 120, 0.2)
        self.done.set()
        self.join(60)
        return self.answers


def test_each_node_runs_its_components_as_processes_of_their_own(cluster):
    doc = cluster.doc()
    assert cmdline(doc["launcher_pid"])[:2] == ["netemu", "zygote"]
    for node in ("worker", "worker2"):
        comps = components(cluster, node)
        assert set(comps) == {"runtime", "kubelet", "kube-proxy"}
        supervisor = doc["nodes"][node]["agent_pid"]
        assert cmdline(supervisor)[:4] == ["netemu", "node-supervisor", "--node", node]
        for name, info in comps.items():
            assert cmdline(info["pid"])[:4] == ["netemu", name, "--node", node]
            assert os.readlink(f"/proc/{info['pid']}/ns/net") == os.readlink(f"/proc/{supervisor}/ns/net")
            assert os.readlink(f"/proc/{info['pid']}/ns/net") != os.readlink("/proc/self/ns/net")


def test_kube_proxy_killed_loses_no_request_and_its_successor_leaves_the_rules_identical(cluster, web):
    node = web["client_node"]
    before = rules(cluster, node)
    assert any("KUBE-SVC-" in line for line in before)
    traffic = Requests(web)
    traffic.start()
    old = components(cluster, node)["kube-proxy"]["pid"]
    killed_at = time.time()
    c.netemu("node", "kill", node, "kube-proxy", "--state-dir", str(cluster.state_dir))
    new = wait_new_pid(cluster, node, "kube-proxy", old)
    c.wait_until("the new kube-proxy's first sync", lambda: last_sync(cluster, node) > killed_at, 60, 0.2)
    assert rules(cluster, node) == before
    restarted_at = time.time()
    out = c.netemu("node", "restart", node, "kube-proxy", "--state-dir", str(cluster.state_dir)).stdout
    assert "restarted" in out and wait_new_pid(cluster, node, "kube-proxy", new)
    c.wait_until("the restarted kube-proxy's first sync", lambda: last_sync(cluster, node) > restarted_at, 60, 0.2)
    answers = traffic.stop(300)
    assert len(answers) >= 300 and answers.count(None) == 0, f"{answers.count(None)} of {len(answers)} failed"
    assert rules(cluster, node) == before


def test_kubelet_killed_its_pods_keep_serving_and_a_pod_bound_meanwhile_starts_after(cluster, web):
    node = web["server_node"]
    pods = [p for p in cluster.pods("app=web")]
    ips = [p["status"]["podIP"] for p in pods]
    from netemu.agent.nodesup import control_request
    old = components(cluster, node)["kubelet"]["pid"]
    killed = control_request(cluster.doc()["nodes"][node]["control"],     # kill -9, kept down until start
                             {"op": "kill", "component": "kubelet", "hold": True})
    assert killed.get("killed") == old, killed
    assert not Path(f"/proc/{old}").exists() or c.wait_until("the kubelet gone", lambda: not Path(f"/proc/{old}").exists(), 20, 0.1)
    late = dict(c.pause_pod("late", node), metadata={"name": "late"})
    cluster.kubectl("apply", "-f", "-", input=c.manifest(late))
    answers = [a for ip in ips for a in c.from_pod(web["client"], ip, 8080, "/hostname", 50)]
    time.sleep(1)
    assert cluster.get("pod", "late").get("status", {}).get("phase", "Pending") == "Pending"
    assert c.node_ready(cluster.get("node", node)) == "True"
    c.netemu("node", "start", node, "kubelet", "--state-dir", str(cluster.state_dir))
    answers += [a for ip in ips for a in c.from_pod(web["client"], ip, 8080, "/hostname", 50)]
    assert len(answers) == 200 and answers.count(None) == 0, f"{answers.count(None)} of {len(answers)} failed"
    c.wait_until("the late pod running", lambda: c.ready(cluster.get("pod", "late")), 60)
    now = cluster.pods("app=web")
    assert sorted(p["metadata"]["uid"] for p in now) == sorted(p["metadata"]["uid"] for p in pods)
    assert all(c.ready(p) and p["status"]["containerStatuses"][0]["restartCount"] == 0 for p in now)
    assert c.node_ready(cluster.get("node", node)) == "True"
    log = (cluster.state_dir / "logs" / f"kubelet-{node}.log").read_text()
    assert "adopted running container" in log
    cluster.kubectl("delete", "pod", "late", "--wait=false")


def test_netemu_restart_kubelet_and_kube_proxy_on_every_node_keeps_the_service_working(cluster, web):
    """`netemu restart kube-proxy|kubelet` (every node's, one node after the other), as upstream's
    "should work after restarting kube-proxy" does it; running pods are not touched."""
    before = {p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["restartCount"] for p in cluster.pods("app=web")}
    for component in ("kube-proxy", "kubelet"):
        old = {n: components(cluster, n)[component]["pid"] for n in ("worker", "worker2")}
        out = c.netemu("restart", component, "--state-dir", str(cluster.state_dir)).stdout
        assert f"{component} restarted" in out
        new = {n: components(cluster, n)[component]["pid"] for n in ("worker", "worker2")}
        assert all(new[n] and new[n] != old[n] for n in new), (old, new)
        c.wait_until("the Service answering from both replicas", lambda: None not in
                     c.from_pod(web["client"], web["ip"], 80, "/hostname", 20), 60)
    c.wait_until("the pods Ready", lambda: all(c.ready(p) for p in cluster.pods("app=web")), 60)
    assert {p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["restartCount"]
            for p in cluster.pods("app=web")} == before


def test_runtime_killed_its_containers_restart_and_their_endpoints_come_back(cluster, web):
    node = web["server_node"]
    before = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"]
              for p in cluster.pods("app=web")}
    watch = subprocess.Popen(["kubectl", "--kubeconfig", cluster.kubeconfig, "get", "endpointslices", "-l",
                              "kubernetes.io/service-name=web", "-w", "-o", "json"],
                             stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        old = components(cluster, node)["runtime"]["pid"]
        c.netemu("node", "kill", node, "runtime", "--state-dir", str(cluster.state_dir))
        assert wait_new_pid(cluster, node, "runtime", old)

        def restarted():
            pods = cluster.pods("app=web")
            return all(c.ready(p) and p["status"]["containerStatuses"][0]["restartCount"] > before[p["metadata"]["name"]]
                       for p in pods) and len(pods) == 2
        c.wait_until("both replicas restarted and ready", restarted, 120)
        time.sleep(2)
    finally:
        watch.terminate()
        out, _ = watch.communicate(timeout=10)
    decoder, ready_counts, text = json.JSONDecoder(), [], out.strip()
    while text:
        obj, end = decoder.raw_decode(text)
        text = text[end:].strip()
        ready_counts.append(sum(1 for e in obj.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")))
    assert 0 in ready_counts and ready_counts[-1] == 2, ready_counts      # dropped, then back
    assert None not in c.from_pod(web["client"], web["ip"], 80, "/hostname", 20)


def test_each_component_killed_five_times_in_a_row_comes_back(cluster, web):
    """Killed through the node supervisor's socket (what `netemu node kill` sends), each round as
    soon as the previous one's processes are back: the back-off grows in the log."""
    from netemu.agent.nodesup import control_request
    node = web["server_node"]
    sock = cluster.doc()["nodes"][node]["control"]
    names = ("runtime", "kubelet", "kube-proxy")
    status = lambda: control_request(sock, {"op": "status"})["components"]  # noqa: E731
    base = {n: status()[n]["restarts"] for n in names}
    for _ in range(5):
        old = {n: c.wait_until(f"{n} running", lambda n=n: status()[n]["pid"], 60, 0.05) for n in names}
        for n in names:
            assert control_request(sock, {"op": "kill", "component": n})["killed"] == old[n]
        for n in names:
            c.wait_until(f"{n} back", lambda n=n: status()[n]["pid"] not in (None, old[n]), 60, 0.05)
    comps = status()
    assert all(comps[n]["restarts"] == base[n] + 5 and comps[n]["state"] == "running" for n in names), comps
    log = (cluster.state_dir / "logs" / f"nodesup-{node}.log").read_text().splitlines()
    for n in names:
        lines = [line for line in log if f" {n} killed by signal 9 (SIGKILL)" in line][-5:]
        delays = [float(re.search(r"in ([0-9.]+)s", line).group(1)) for line in lines]
        assert len(lines) == 5 and max(delays) >= 2.0, lines
        assert sum("(back-off)" in line for line in lines) >= 3, lines          # it grew while they died young
    c.wait_until("the node Ready", lambda: c.node_ready(cluster.get("node", node)) == "True", 60)
    c.wait_until("2 ready replicas again", lambda: len([p for p in cluster.pods("app=web") if c.ready(p)]) == 2, 180)


def test_the_template_killed_after_start_up_changes_nothing(cluster, web):
    doc = cluster.doc()
    before = {n: components(cluster, n) for n in ("worker", "worker2")}
    os.kill(doc["launcher_pid"], signal.SIGKILL)
    time.sleep(3)
    assert {n: components(cluster, n) for n in ("worker", "worker2")} == before
    assert all(c.node_ready(n) == "True" for n in cluster.get("nodes")["items"])
    assert None not in c.from_pod(web["client"], web["ip"], 80, "/hostname", 20)
    old = before["worker2"]["kube-proxy"]["pid"]      # node supervisors restart without it
    c.netemu("node", "kill", "worker2", "kube-proxy", "--state-dir", str(cluster.state_dir))
    assert wait_new_pid(cluster, "worker2", "kube-proxy", old)


def test_zz_a_node_whose_agents_are_all_killed_goes_not_ready_alone(cluster):
    doc = cluster.doc()
    node = "worker"
    pids = [doc["nodes"][node]["agent_pid"], *(i["pid"] for i in components(cluster, node).values())]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    c.wait_until(f"{node} NotReady", lambda: c.node_ready(cluster.get("node", node)) != "True", 60)
    assert c.node_ready(cluster.get("node", "worker2")) == "True"
