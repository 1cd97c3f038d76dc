"""Plain `netemu cleanup` finds clusters from the machine alone (pure part): namespaces, root
links with their node network, node supervisors' sockets, the supervisors' registry and the
processes' command lines each name a cluster id; a standalone API server is no cluster."""

from __future__ import annotations

from netemu.emulator import orphans
from netemu.emulator.cleanup import Cleanup
from netemu.emulator.plan import cluster_id
from netemu.emulator.orphans import Snapshot, find_clusters, state_dir_of_argv, supervisor_running


def test_state_dirs_from_command_lines():
    assert state_dir_of_argv(["netemu", "kubelet", "--node", "w", "--state-dir", "/tmp/x"]) == "/tmp/x"
    assert state_dir_of_argv(["/py", "-m", "netemu", "apiserver", "--state-dir", "/tmp/x/controlplane"]) == "/tmp/x"
    assert state_dir_of_argv(["/py", "-m", "netemu", "agent", "--node", "w", "--state-dir", "/tmp/x/nodes/w"]) == "/tmp/x"
    assert state_dir_of_argv(["/py", "-m", "netemu.testing.fakeagent", "--state-dir", "/tmp/x/nodes/w"]) == "/tmp/x"
    assert state_dir_of_argv(["/py", "-m", "netemu", "up", "--supervise", "--state-dir", "/tmp/x/"]) == "/tmp/x"
    assert state_dir_of_argv(["sleep", "--state-dir", "/tmp/x"]) is None            # not netemu
    assert state_dir_of_argv(["netemu", "kubelet", "--state-dir"]) is None          # no value


def test_every_trace_of_a_cluster_names_it():
    x, y = cluster_id("/tmp/x"), cluster_id("/tmp/y")
    snap = Snapshot(
        netns=["nen-ab12-worker", "nex-ab12-client1", "nep-0123456789a", "other-ns"],
        links={"nab12s1": ["172.31.7.1/24"], "nab12h1-eth0": [], "ncd34x0a0b0c": [], "eth0": ["10.0.0.5/24"],
               "nzzzzs1": []},
        procs=[(10, ["netemu", "zygote", "--state-dir", "/tmp/x"]),
               (11, ["/py", "-m", "netemu", "up", "--supervise", "--state-dir", "/tmp/y"]),
               (12, ["bash"])],
        registry={"ef56": "/tmp/z"}, control_dirs=["9a9a", "junk"])
    found = find_clusters(snap)
    assert set(found) == {"ab12", "cd34", "ef56", "9a9a", x, y}
    assert found["ab12"].why == {"namespaces", "links"} and found["ab12"].networks == {"172.31.7.0/24"}
    assert found["ef56"].state_dirs == {"/tmp/z"} and found[x].state_dirs == {"/tmp/x"}
    assert supervisor_running(snap, {"/tmp/y"}) == 11 and supervisor_running(snap, {"/tmp/x"}) is None


def test_what_the_user_reads():
    done = Cleanup(kill=[1, 2], node_netns=["nen-ab12-w"])
    lines = orphans.describe([orphans.Result("ab12", "/tmp/x", removed=done),
                              orphans.Result("cd34", None, running="supervisor pid 7"),
                              orphans.Result("ef56", None, removed=Cleanup())], lambda c: f"{len(c.kill)} processes")
    assert lines == ["cluster ab12 (/tmp/x): removed 2 processes",
                     "cluster cd34 (state dir unknown): running (supervisor pid 7); left alone (--force removes it too)",
                     "cluster ef56 (state dir unknown): removed its records (nothing else was left)"]
    assert orphans.describe([], str) == ["nothing to clean up"]
