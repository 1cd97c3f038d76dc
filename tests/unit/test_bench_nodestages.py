"""The bring-up benchmark's per-node stages (netemu/bench/nodestages.py): pure parts."""

from netemu.bench.nodestages import node_marks, summary


def _node(cidr=None, ready=None):
    node = {"metadata": {"name": "w"}, "spec": {"podCIDR": cidr} if cidr else {}}
    if ready is not None:
        node["status"] = {"conditions": [{"type": "Ready", "status": ready}]}
    return node


def test_marks_follow_what_the_node_object_shows():
    assert node_marks(_node()) == ["registered"]
    assert node_marks(_node("10.244.1.0/24")) == ["registered", "cidr"]
    assert node_marks(_node("10.244.1.0/24", "False")) == ["registered", "cidr"]
    assert node_marks(_node("10.244.1.0/24", "True")) == ["registered", "cidr", "ready"]


def test_summary_spreads_and_waits_per_stage_without_the_control_plane():
    times = {"cp": {"registered": 100.0, "cidr": 100.5, "ready": 101.0},
             "w1": {"registered": 105.0, "cidr": 106.0, "ready": 106.5},
             "w2": {"registered": 106.0, "cidr": 109.0, "ready": 109.2},
             "w3": {"registered": 107.0}}
    out = summary(times, 100.0, skip={"cp"})
    assert out["registered"] == {"first_at": 5.0, "last_at": 7.0, "nodes": 3}
    assert out["cidr"] == {"first_at": 6.0, "last_at": 9.0, "nodes": 2, "p50": 3.0, "max": 3.0}
    assert out["ready"]["last_at"] == 9.2 and out["ready"]["max"] == 0.5 and out["ready"]["nodes"] == 2
