"""DaemonSet controller decisions (pure), ported from pkg/controller/daemon of Kubernetes v1.32
(daemon_controller.go manage/updateDaemonSetStatus, update.go rollingUpdate,
util/daemonset_util.go AddOrUpdateDaemonPodTolerations and ReplaceDaemonSetPodNodeNameNodeAffinity)."""

from __future__ import annotations

from netemu.controllers import daemonset_plan as dp
from netemu.controllers.scheduler.filters import required_node_affinity_matches

NOW = 1_000_000.0


def node(name: str, labels=None, taints=None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def ds(rolling=None, strategy="RollingUpdate", image="agent:1", **pod_spec) -> dict:
    spec = {"containers": [{"name": "c", "image": image}], **pod_spec}
    us = {"type": strategy}
    if strategy == "RollingUpdate":
        us["rollingUpdate"] = rolling or {"maxUnavailable": 1, "maxSurge": 0}
    return {"metadata": {"name": "agent", "namespace": "kube-system", "uid": "u1", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "updateStrategy": us,
                     "template": {"metadata": {"labels": {"app": "a"}}, "spec": spec}}}


def pod(d: dict, node_name: str, name: str, ready=True, phase="Running", created=1, hash_=None) -> dict:
    p = dp.new_pod(d, node_name, hash_ or dp.template_hash(d))
    p["metadata"]["name"] = name
    p["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:{created:02d}Z"
    p["spec"]["nodeName"] = node_name
    p["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    return p


def test_new_pod_has_node_affinity_the_scheduler_honours_and_upstream_tolerations():
    d = ds(hostNetwork=True, tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                           "effect": "NoSchedule", "tolerationSeconds": None}])
    p = dp.new_pod(d, "n2", "h")
    assert "nodeName" not in p["spec"] and dp.target_node(p) == "n2"
    assert required_node_affinity_matches(p, node("n2")) and not required_node_affinity_matches(p, node("n1"))
    keys = {(t["key"], t["effect"]) for t in p["spec"]["tolerations"]}
    assert ("node.kubernetes.io/not-ready", "NoExecute") in keys and ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") in keys
    assert not any("tolerationSeconds" in t for t in p["spec"]["tolerations"] if t["effect"] == "NoExecute")
    assert len(p["spec"]["tolerations"]) == 7        # the template's unschedulable one replaced, not doubled
    assert p["metadata"]["labels"]["controller-revision-hash"] == "h"
    assert p["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert dp.new_pod(ds(), "n", "h")["spec"]["tolerations"][-1]["key"] != "node.kubernetes.io/network-unavailable"


def test_one_pod_per_eligible_node_selector_and_taints():
    nodes = [node("a", {"role": "edge"}), node("b", {"role": "edge"}, [{"key": "dedicated", "effect": "NoSchedule"}]),
             node("c"), node("d", {"role": "edge"}, [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])]
    d = ds(nodeSelector={"role": "edge"})
    assert dp.plan(d, nodes, [], NOW).create == ["a", "d"]     # b tainted, c not selected, d tolerated
    tolerant = ds(nodeSelector={"role": "edge"}, tolerations=[{"key": "dedicated", "operator": "Exists"}])
    assert dp.plan(tolerant, nodes, [], NOW).create == ["a", "b", "d"]


def test_no_schedule_taint_keeps_running_pod_no_execute_removes_it():
    d = ds()
    p1, p2 = pod(d, "a", "p1"), pod(d, "b", "p2")
    nodes = [node("a", taints=[{"key": "x", "effect": "NoSchedule"}]), node("b", taints=[{"key": "y", "effect": "NoExecute"}])]
    out = dp.plan(d, nodes, [p1, p2], NOW)
    assert out.create == [] and [x["metadata"]["name"] for x in out.delete] == ["p2"]
    st = dp.status_for(d, nodes, [p1, p2], NOW)
    assert st["desiredNumberScheduled"] == 0 and st["numberMisscheduled"] == 2


def test_duplicates_keep_oldest_and_failed_pods_are_replaced():
    d = ds()
    older, newer, failed = pod(d, "a", "old", created=1), pod(d, "a", "new", created=5), pod(d, "b", "f", phase="Failed")
    out = dp.plan(d, [node("a"), node("b")], [newer, older, failed], NOW)
    assert sorted(x["metadata"]["name"] for x in out.delete) == ["f", "new"] and out.create == ["b"]


def test_rolling_update_replaces_max_unavailable_nodes_at_a_time():
    old = ds(image="agent:1")
    d = ds(image="agent:2", rolling={"maxUnavailable": 1})
    nodes = [node(n) for n in "abc"]
    pods = [pod(old, n, f"p-{n}") for n in "abc"]
    out = dp.plan(d, nodes, pods, NOW)
    assert out.create == [] and len(out.delete) == 1          # one node at a time
    # node a replaced but its new pod not ready yet: nothing else goes
    pods2 = [pod(d, "a", "new-a", ready=False)] + pods[1:]
    assert dp.plan(d, nodes, pods2, NOW).delete == []
    # an unavailable old pod is replaced at once, beyond the budget
    pods3 = [pod(d, "a", "new-a", ready=False), pod(old, "b", "p-b", ready=False), pods[2]]
    assert [x["metadata"]["name"] for x in dp.plan(d, nodes, pods3, NOW).delete] == ["p-b"]
    # 50% of 3 rounds up to 2
    assert len(dp.plan(ds(image="agent:2", rolling={"maxUnavailable": "50%"}), nodes, pods, NOW).delete) == 2
    assert dp.plan(ds(image="agent:2", strategy="OnDelete"), nodes, pods, NOW).delete == []


def test_rolling_update_with_surge_starts_new_pod_before_removing_old():
    old, d = ds(image="agent:1"), ds(image="agent:2", rolling={"maxUnavailable": 0, "maxSurge": 1})
    nodes = [node("a"), node("b")]
    pods = [pod(old, "a", "p-a"), pod(old, "b", "p-b")]
    out = dp.plan(d, nodes, pods, NOW)
    assert out.create == ["a"] and out.delete == []
    out = dp.plan(d, nodes, pods + [pod(d, "a", "new-a", created=9)], NOW)
    assert [x["metadata"]["name"] for x in out.delete] == ["p-a"] and out.create == []


def test_status_counts_for_rollout_status():
    old, d = ds(image="agent:1"), ds(image="agent:2")
    nodes = [node(n) for n in "abcd"]
    pods = [pod(d, "a", "x1"), pod(old, "b", "x2"), pod(d, "c", "x3", ready=False)]
    st = dp.status_for(d, nodes, pods, NOW)
    assert st == {"currentNumberScheduled": 3, "numberMisscheduled": 0, "desiredNumberScheduled": 4,
                  "numberReady": 2, "observedGeneration": 1, "updatedNumberScheduled": 2,
                  "numberAvailable": 2, "numberUnavailable": 2}


def test_nothing_while_deleting():
    d = ds()
    d["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert dp.plan(d, [node("a")], [], NOW).create == []
