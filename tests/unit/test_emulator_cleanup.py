"""cleanup's planner on made-up machines: it takes exactly the cluster's things, nobody else's."""

from __future__ import annotations

from netemu.emulator.cleanup import Machine, plan_cleanup, recorded_processes

CID = "ab12"
STATE = "/var/lib/netemu/t"


def machine(**kw) -> Machine:
    base = dict(
        netns=["nen-ab12-control-plane", "nen-ab12-worker", "nen-ffff-worker", "nep-00000000001",
               "nep-00000000002", "nep-00000000003", "nep-00000000004", "kp123a"],
        pod_peers={"nep-00000000001": {"nen-ab12-worker"}, "nep-00000000002": {"nen-ffff-worker"},
                   "nep-00000000003": set(), "nep-00000000004": set()},
        netns_keys={"nen-ab12-control-plane": (4, 1), "nen-ab12-worker": (4, 2), "nen-ffff-worker": (4, 3),
                    "nep-00000000001": (4, 4), "nep-00000000002": (4, 5), "nep-00000000003": (4, 6),
                    "nep-00000000004": (4, 7), "kp123a": (4, 8)},
        procs=[(100, ["bash", "--norc", "-is", "mininet:nab12h0"], (4, 1)),
               (101, ["bash", "--norc", "-is", "mininet:nab12h1"], None),
               (102, ["python", "-m", "netemu", "agent", "--node", "worker"], (4, 2)),
               (103, ["/bin/sleep", "1000"], (4, 4)),                        # a container of our pod
               (104, ["/bin/sleep", "1000"], (4, 5)),                        # someone else's pod
               (105, ["bash", "-is", "mininet:nffffh1"], (4, 3)),             # another cluster's host
               (106, ["python", "-m", "netemu", "up", "--supervise", "--state-dir", STATE], (4, 0)),
               (107, ["python", "-m", "netemu", "up", "--supervise", "--state-dir", "/other"], (4, 0)),
               (108, ["vim"], (4, 0)),
               (109, ["bash", "--norc", "-is", "mininet:nab12s1"], (4, 0)),           # our switch's shell
               (1, ["init"], (4, 0))],
        links=["lo", "eth0", "nab12s1", "nab12s1-eth1", "nab12s1-eth12", "nab12h3-eth0", "nffffs1",
               "nab12s1x", "xnab12s1", "docker0"])
    base.update(kw)
    return Machine(**base)


def test_takes_only_this_clusters_things():
    plan = plan_cleanup(CID, STATE, None, machine(), me=999, known_pods={"nep-00000000004", "nep-gone"})
    assert plan.kill == [100, 101, 102, 103, 106, 109]
    assert plan.node_netns == ["nen-ab12-control-plane", "nen-ab12-worker"]
    # ours by veth peer, or recorded by our node state; never another cluster's, never an orphan on a guess
    assert plan.pod_netns == ["nep-00000000001", "nep-00000000004"]
    assert plan.links == ["nab12h3-eth0", "nab12s1", "nab12s1-eth1", "nab12s1-eth12"]


def test_never_kills_itself_and_nothing_there_is_empty():
    m = machine(procs=[(106, ["python", "-m", "netemu", "up", "--supervise", "--state-dir", STATE], (4, 0))])
    assert plan_cleanup(CID, STATE, None, m, me=106).kill == []
    empty = Machine([], {}, {}, [], ["lo"])
    assert plan_cleanup(CID, STATE, None, empty, me=1).empty()


def test_recorded_pids_are_killed_only_while_their_cmdline_still_matches():
    doc = {"supervisor_pid": 300, "apiserver_pid": 301, "etcd_pid": None,
           "nodes": {"worker": {"agent_pid": 302, "pid": 303, "mn_name": "nab12h1"}}}
    assert (301, ("netemu", "apiserver")) in recorded_processes(doc)
    procs = [(300, ["python", "-m", "netemu", "up", "--supervise"], None),
             (301, ["python", "-m", "netemu", "apiserver", "--listen", "x"], None),
             (302, ["nginx"], None),                                    # recycled pid: not ours now
             (303, ["bash", "-is", "mininet:nab12h1"], None)]
    m = Machine([], {}, {}, procs, [])
    assert plan_cleanup(CID, STATE, doc, m, me=1).kill == [300, 301, 303]


def test_pod_netns_recorded_by_the_node_state(tmp_path):
    from netemu.emulator.cleanup import recorded_pod_netns
    from netemu.emulator.state import write_json

    (tmp_path / "nodes/w/runtime").mkdir(parents=True)
    write_json(tmp_path / "nodes/w/runtime/ipam.json",
               {"allocations": {"10.244.0.2": {"uid": "u", "netns": "nep-aaaaaaaaaaa"}, "x": "junk"}})
    (tmp_path / "nodes/w2/pods/default_web-1_edbc5a70-15f2-4919-8c70-f3b05b477612").mkdir(parents=True)
    assert recorded_pod_netns(tmp_path) == {"nep-aaaaaaaaaaa", "nep-edbc5a7015f"}
    assert recorded_pod_netns(tmp_path / "nothing") == set()


def test_takes_this_clusters_external_hosts_and_what_runs_in_them():
    m = machine()
    m.netns += ["nex-ab12-external", "nex-ffff-external"]
    m.netns_keys.update({"nex-ab12-external": (4, 20), "nex-ffff-external": (4, 21)})
    m.procs += [(200, ["python", "-m", "netemu.traffic.worker"], (4, 20)),
                (201, ["python", "-m", "netemu.traffic.worker"], (4, 21))]
    m.links += ["nab12xa1b2c3", "nffffxa1b2c3", "nab12xzz"]
    plan = plan_cleanup(CID, STATE, None, m, me=999)
    assert "nex-ab12-external" in plan.node_netns and "nex-ffff-external" not in plan.node_netns
    assert 200 in plan.kill and 201 not in plan.kill
    assert "nab12xa1b2c3" in plan.links and "nffffxa1b2c3" not in plan.links and "nab12xzz" not in plan.links
