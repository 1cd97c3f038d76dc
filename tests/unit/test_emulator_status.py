"""Pure parts of status/readiness/locks: rows from API objects, who is Ready, address clashes."""

from __future__ import annotations

import os

import pytest

from netemu.emulator import state
from netemu.emulator.network import overlapping_addresses
from netemu.emulator.ready import node_ready, readiness
from netemu.emulator.status import node_rows, pod_rows


def node(name, ready, ip="172.31.1.3"):
    return {"metadata": {"name": name, "labels": {"node-role.kubernetes.io/worker": ""}},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}]}}


def test_readiness_and_node_rows():
    nodes = [node("worker2", False), node("worker", True)]
    assert node_ready(nodes[1]) and not node_ready(nodes[0]) and not node_ready({"metadata": {"name": "x"}})
    assert readiness(nodes, ["worker", "worker2", "worker3"]) == (["worker"], ["worker2", "worker3"])
    assert node_rows(nodes, {}) == [["worker", "Ready", "worker", "172.31.1.3", "10.244.1.0/24", "<none>"],
                                    ["worker2", "NotReady", "worker", "172.31.1.3", "10.244.1.0/24", "<none>"]]
    nodes[0]["metadata"]["annotations"] = {"kube-proxy.netemu.io/mode": "nftables"}
    assert node_rows(nodes, {"nodes": {"worker": {"proxy_mode": "iptables"}}})[0][-1] == "iptables"
    assert node_rows(nodes, {})[1][-1] == "nftables"      # the node's own word wins over the record


def test_pod_rows():
    pod = {"metadata": {"name": "web-1", "namespace": "default"},
           "spec": {"nodeName": "worker", "containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Running", "podIP": "10.244.1.5",
                      "containerStatuses": [{"ready": True, "restartCount": 2}, {"ready": False, "restartCount": 1}]}}
    gone = {"metadata": {"name": "old", "namespace": "default", "deletionTimestamp": "x"}, "spec": {}, "status": {}}
    assert pod_rows([pod, gone]) == [["default", "old", "0/0", "Terminating", "0", "", ""],
                                     ["default", "web-1", "1/2", "Running", "3", "10.244.1.5", "worker"]]


def test_overlapping_addresses():
    addrs = [("lo", "127.0.0.1"), ("eth0", "192.168.1.5"), ("nab12s1", "172.31.4.1")]
    assert overlapping_addresses("172.31.4.0/24", addrs) == [("nab12s1", "172.31.4.1")]
    assert overlapping_addresses("172.31.5.0/24", addrs) == []


def test_a_second_lock_holder_is_refused_with_the_holders_pid(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "LOCK_DIR", str(tmp_path / "locks"))
    (tmp_path / "a").mkdir()
    fds = state.lock_cluster(tmp_path / "a", "172.31.4.0/24")
    try:
        with pytest.raises(state.Busy, match=f"state dir .* pid {os.getpid()}"):
            state.check_free(tmp_path / "a", "172.31.9.0/24")
        (tmp_path / "b").mkdir()
        with pytest.raises(state.Busy, match="node network 172.31.4.0/24"):
            state.check_free(tmp_path / "b", "172.31.4.0/24")
        state.check_free(tmp_path / "b", "172.31.5.0/24")      # another dir and network: free
    finally:
        for fd in fds:
            os.close(fd)
    state.check_free(tmp_path / "a", "172.31.4.0/24")            # released with the holder


def test_json_files_round_trip_and_bad_ones_read_as_none(tmp_path):
    state.write_json(tmp_path / "c.json", {"a": 1})
    assert state.read_json(tmp_path / "c.json") == {"a": 1}
    (tmp_path / "bad.json").write_text("{half")
    assert state.read_json(tmp_path / "bad.json") is None and state.read_json(tmp_path / "none.json") is None


def test_forward_warning_only_when_the_root_namespace_would_drop_bridged_traffic():
    from netemu.emulator.network import forward_warning

    assert forward_warning("1\n", "-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n")
    assert forward_warning("0\n", "-P FORWARD DROP\n") is None
    assert forward_warning("1\n", "-P FORWARD ACCEPT\n") is None


def test_dead_processes_are_named_with_their_log():
    from netemu.emulator.status import dead_processes

    doc = {"apiserver_pid": 10, "nodes": {"worker": {"agent_pid": 11}, "worker2": {"agent_pid": 12},
                                          "control-plane": {"agent_pid": None}}}
    assert dead_processes(doc, lambda pid: pid != 12) == [
        "the agent of node worker2 (pid 12) is not running: see logs/agent-worker2.log"]
    assert len(dead_processes(doc, lambda pid: False)) == 3
