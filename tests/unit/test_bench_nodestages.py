"""The bring-up benchmark's per-node stages (netemu/bench/nodestages.py): pure parts."""

from netemu.bench.nodestages import node_marks, summary, sync_counts, sync_delta


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


METRICS = """# HELP kubeproxy_sync_partial_proxy_rules_duration_seconds SyncProxyRules latency
kubeproxy_sync_partial_proxy_rules_duration_seconds_bucket{le="0.001"} 0.0
kubeproxy_sync_partial_proxy_rules_duration_seconds_count 12.0
kubeproxy_sync_partial_proxy_rules_duration_seconds_sum 1.5
kubeproxy_sync_full_proxy_rules_duration_seconds_count 2.0
kubeproxy_sync_full_proxy_rules_duration_seconds_sum 0.5
kubeproxy_sync_proxy_rules_duration_seconds_count 14.0
"""


def test_sync_counts_reads_the_partial_and_full_histograms_only():
    assert sync_counts(METRICS) == {"kubeproxy_sync_partial_proxy_rules_duration_seconds_count": 12.0,
                                    "kubeproxy_sync_partial_proxy_rules_duration_seconds_sum": 1.5,
                                    "kubeproxy_sync_full_proxy_rules_duration_seconds_count": 2.0,
                                    "kubeproxy_sync_full_proxy_rules_duration_seconds_sum": 0.5}


def test_sync_delta_counts_what_each_node_did_between_readings():
    before = {"w1": sync_counts(METRICS), "w2": sync_counts(METRICS)}
    after_w1 = {k: v * 2 for k, v in before["w1"].items()}      # 14 more syncs, 2 s more
    after_w2 = dict(before["w2"], kubeproxy_sync_partial_proxy_rules_duration_seconds_count=16.0,
                    kubeproxy_sync_partial_proxy_rules_duration_seconds_sum=2.5)   # 4 more, 1 s
    out = sync_delta(before, {"w1": after_w1, "w2": after_w2, "w3": after_w2})     # w3: no reading before
    assert out["syncs_total"] == 14 + 4 + 18 and out["syncs_per_node_max"] == 18      # w3: 16 partial + 2 full
    assert out["sync_seconds_total"] == 2.0 + 1.0 + 3.0 and out["nodes"] == 3
