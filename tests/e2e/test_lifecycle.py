"""Cluster lifecycle from the outside: bad input refused with nothing made, and a cluster whose
every netemu process was killed with SIGKILL removed by ``netemu cleanup`` (twice: idempotent).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from netemu.emulator.processes import running as process_running
from tests.e2e import _cluster as c

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _refused(tmp_path, *flags: str) -> str:
    state = tmp_path / "st"
    proc = c.netemu("up", "--state-dir", str(state), "--node-network", c.node_network(31), *flags,
                    check=False, timeout=120)
    assert proc.returncode != 0
    message = (proc.stderr + proc.stdout).strip()
    assert "Traceback" not in message, message
    assert c.nothing_left(state, set()), c.leftovers(state, set())
    return message


def test_zero_nodes_is_refused(tmp_path):
    assert "--nodes" in _refused(tmp_path, "--nodes", "0")


def test_unknown_topology_file_and_class_are_refused(tmp_path):
    assert "nope.py" in _refused(tmp_path, "--topo", "topologies/nope.py:Topo")
    assert "NoSuchTopo" in _refused(tmp_path, "--topo", "topologies/cluster.py:NoSuchTopo")


def _netemu_pids(cl: c.Cluster) -> list[int]:
    """The supervisor, API server and agents of this cluster (what `kill -9` of every netemu
    process means); Mininet's host shells are left for cleanup to find."""
    doc = cl.doc()
    pids = {int(doc["supervisor_pid"])}
    pids |= {int(n["agent_pid"]) for n in doc["nodes"].values() if n.get("agent_pid")}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "netemu" in cmd and str(cl.state_dir) in cmd:
                pids.add(int(entry))
    pids.discard(os.getpid())
    return sorted(pids)


def _kill9(cl) -> None:
    """kill -9 of every netemu process of ``cl`` (a crash: nothing of it cleans up)."""
    for pid in _netemu_pids(cl):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(1)
    cl.is_up = False


def test_kill9_then_cleanup_leaves_nothing(tmp_path):
    cl = c.Cluster(tmp_path / "st", 1, c.node_network(41))
    pod_netns: set[str] = set()
    try:
        cl.up()
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim"},
               "spec": {"containers": [{"name": "a", "image": c.AGNHOST, "args": ["netexec"]}]}}
        cl.kubectl("apply", "-f", "-", input=json.dumps(pod))
        running = c.wait_until("the pod running", lambda: (lambda p: p if c.ready(p) else None)(
            cl.get("pod", "victim")), 120)
        pod_netns.add(c.pod_netns_of(running))
        assert not c.nothing_left(cl.state_dir, pod_netns)
        _kill9(cl)
        for _ in range(2):
            proc = c.netemu("cleanup", "--state-dir", str(cl.state_dir), check=False, timeout=300)
            assert proc.returncode == 0, proc.stderr
        left = c.leftovers(cl.state_dir, pod_netns)
        assert not any(left.values()), left
    finally:
        cl.down()
        c.netemu("cleanup", "--state-dir", str(cl.state_dir), check=False, timeout=300)


def _in_namespaces(names: set[str]) -> set[int]:
    """Every process whose network namespace is one of ``names`` (pods' containers included)."""
    keys = set()
    for name in names:
        try:
            st = os.stat(f"/run/netns/{name}")
            keys.add((st.st_dev, st.st_ino))
        except OSError:
            continue
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = os.stat(f"/proc/{entry}/ns/net")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in keys:
                pids.add(int(entry))
    return pids


def _root_rules() -> str:
    """The root namespace's iptables and nftables rules (read only)."""
    out = []
    for argv in (["iptables-save"], ["nft", "list", "ruleset"]):
        try:
            out.append(subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout)
        except (OSError, subprocess.TimeoutExpired):
            continue
    return "\n".join(out)


def _traces(cid: str, network: str, pod_netns: set[str]) -> dict[str, list[str]]:
    """What the cluster may leave outside its namespaces, links and processes: its node
    supervisors' sockets, its registry entry, its pods' /etc files, root-namespace rules naming
    its links or its node network."""
    from netemu.emulator.plan import NODE_CONTROL_DIR, mn_prefix
    from netemu.emulator.orphans import REGISTRY_DIR
    prefix = network.rsplit(".", 1)[0] + "."
    return {
        "sockets": [p for p in [os.path.join(NODE_CONTROL_DIR, cid)] if os.path.exists(p)],
        "registry": [p for p in [str(REGISTRY_DIR / f"{cid}.json")] if os.path.exists(p)],
        "pod /etc": [n for n in pod_netns if os.path.exists(f"/etc/netns/{n}")],
        "root rules": [r for r in _root_rules().splitlines() if mn_prefix(cid) in r or prefix in r],
    }


@pytest.mark.serial      # plain `netemu cleanup` sweeps every crashed cluster: no other test's may be mid-start
def test_kill9_then_plain_cleanup_finds_the_custom_state_dir_and_it_works_again(tmp_path):
    """Issue 18: after kill -9 of every process of a cluster started with a custom state dir,
    `netemu cleanup` without --state-dir finds it from the machine (namespaces, links,
    processes), removes all of it and says so -- its namespaces, links, processes (the pods'
    containers too), sockets, registry entry, pods' /etc files, and no root-namespace rule of
    it is left; the same state dir then makes a new cluster."""
    network = c.node_network(43)
    cl = c.Cluster(tmp_path / "custom", 1, network)
    from netemu.emulator.plan import cluster_id
    pod_netns: set[str] = set()
    try:
        cl.up()
        cid = cluster_id(str(cl.state_dir))
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
               "spec": {"containers": [{"name": "sh", "image": "busybox", "command": ["sleep", "3600"]},
                                       {"name": "web", "image": c.AGNHOST, "args": ["netexec"]}]}}
        cl.kubectl("apply", "-f", "-", input=json.dumps(pod))
        running = c.wait_until("the pod running", lambda: (lambda p: p if c.ready(p) else None)(
            cl.get("pod", "sleeper")), 120)
        pod_netns.add(c.pod_netns_of(running))
        inside = _in_namespaces(pod_netns | set(c.leftovers(cl.state_dir, set())["node namespaces"]))
        assert inside and any(_traces(cid, network, pod_netns).values())
        _kill9(cl)
        proc = c.netemu("cleanup", check=False, timeout=300)
        assert proc.returncode == 0, proc.stderr
        ours = [line for line in proc.stdout.splitlines() if line.startswith(f"cluster {cid} ")]
        assert ours and f"({cl.state_dir})" in ours[0] and "node namespaces" in ours[0], proc.stdout
        left = c.leftovers(cl.state_dir, pod_netns)
        assert not any(left.values()), left
        # a zombie left to init's reaping has exited: its namespaces and sockets are gone
        assert not [p for p in inside if process_running(p)], "processes of its namespaces left"
        traces = _traces(cid, network, pod_netns)
        assert not any(traces.values()), traces
        assert f"cluster {cid} " not in c.netemu("cleanup", check=False, timeout=300).stdout   # idempotent
        cl.up()
        assert cl.get("nodes")["items"]
    finally:
        cl.down()
        c.netemu("cleanup", "--state-dir", str(cl.state_dir), check=False, timeout=300)
    assert c.nothing_left(cl.state_dir, set())
