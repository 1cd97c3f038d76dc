"""Scheduler decisions as pure functions of Node and Pod objects."""

import random

from netemu.controllers.scheduler.framework import schedule
from netemu.controllers.scheduler.snapshot import Snapshot, pod_requests


def node(name, cpu="2", mem="8Gi", labels=None, taints=None, ready="True", unschedulable=False):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
                       "conditions": [{"type": "Ready", "status": ready}]}}


def pod(name, cpu="900m", mem=None, node_name=None, labels=None, **spec):
    res = {"cpu": cpu} if cpu else {}
    if mem:
        res["memory"] = mem
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
         "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": res}}], **spec},
         "status": {"phase": "Pending"}}
    if node_name:
        p["spec"]["nodeName"] = node_name
    return p


def place_all(nodes, pods):
    bound = []
    out = {}
    for p in pods:
        d = schedule(p, Snapshot.build(nodes, bound), random.Random(1))
        out[p["metadata"]["name"]] = d
        if d.node:
            bound.append(dict(p, spec=dict(p["spec"], nodeName=d.node)))
    return out, bound


def test_requests_sum_containers_and_max_init():
    p = pod("a", cpu="500m", mem="1Gi")
    p["spec"]["containers"].append({"name": "d", "resources": {"limits": {"cpu": "1"}}})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]
    r = pod_requests(p)
    assert (r.milli_cpu, r.memory) == (2000, 1024 ** 3)


def test_seven_pods_of_900m_on_three_2cpu_nodes():
    nodes = [node(f"n{i}") for i in range(3)]
    out, bound = place_all(nodes, [pod(f"p{i}") for i in range(7)])
    per_node = {}
    for p in bound:
        per_node[p["spec"]["nodeName"]] = per_node.get(p["spec"]["nodeName"], 0) + 1
    assert sorted(per_node.values()) == [2, 2, 2]
    assert out["p6"].node is None
    assert out["p6"].message == ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are "
                                 "available: 3 No preemption victims found for incoming pod.")


def test_message_mixes_taint_and_cpu_like_upstream():
    nodes = [node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
             node("b", cpu="500m"), node("c", cpu="500m")]
    d = schedule(pod("p"), Snapshot.build(nodes, []))
    assert d.message == ("0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu. "
                         "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
                         "2 No preemption victims found for incoming pod.")


def test_taint_avoided_unless_tolerated():
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    nodes = [node("a", taints=[taint]), node("b", cpu="1")]
    assert schedule(pod("p", cpu="100m"), Snapshot.build(nodes, [])).node == "b"
    tol = [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]
    # tolerated: the bigger, emptier node wins on LeastAllocated
    assert schedule(pod("p", cpu="100m", tolerations=tol), Snapshot.build(nodes, [])).node == "a"
    exists = [{"operator": "Exists"}]
    assert schedule(pod("p", cpu="100m", tolerations=exists), Snapshot.build(nodes, [])).node == "a"


def test_not_ready_and_unschedulable_nodes_filtered():
    nodes = [node("a", ready="Unknown"), node("b", unschedulable=True), node("c", ready="False")]
    d = schedule(pod("p"), Snapshot.build(nodes, []))
    assert d.node is None
    assert "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }" in d.message
    assert "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }" in d.message
    assert "1 node(s) were unschedulable" in d.message


def test_node_selector_and_required_affinity():
    nodes = [node("a", labels={"disk": "ssd"}), node("b", labels={"disk": "hdd"})]
    assert schedule(pod("p", nodeSelector={"disk": "hdd"}), Snapshot.build(nodes, [])).node == "b"
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["hdd"]}]}]}}}
    assert schedule(pod("p", affinity=aff), Snapshot.build(nodes, [])).node == "a"
    d = schedule(pod("p", nodeSelector={"disk": "nvme"}), Snapshot.build(nodes, []))
    assert "2 node(s) didn't match Pod's node affinity/selector" in d.message


def test_preferred_node_affinity_wins_over_balance():
    nodes = [node("a"), node("b", labels={"zone": "z1"})]
    busy = pod("busy", cpu="1", node_name="b")
    aff = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}}]}}
    d = schedule(pod("p", cpu="100m", affinity=aff), Snapshot.build(nodes, [busy]))
    assert d.node == "b"
    assert d.scores["b"]["NodeAffinity"] == 200 and d.scores["a"]["NodeAffinity"] == 0


def test_required_anti_affinity_distinct_nodes():
    nodes = [node(f"n{i}", cpu="8") for i in range(3)]
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}]}}
    pods = [pod(f"p{i}", cpu="100m", labels={"app": "web"}, affinity=anti) for i in range(4)]
    out, bound = place_all(nodes, pods)
    assert len({p["spec"]["nodeName"] for p in bound}) == 3
    assert out["p3"].node is None
    # upstream checks existing pods' anti-affinity first, so that is the reason shown
    assert "3 node(s) didn't satisfy existing pods anti-affinity rules" in out["p3"].message


def test_existing_pod_anti_affinity_is_symmetric():
    nodes = [node("a"), node("b")]
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "x"}}}]}}
    loner = pod("loner", cpu="100m", node_name="a", affinity=anti)
    d = schedule(pod("p", cpu="1", labels={"app": "x"}), Snapshot.build(nodes, [loner]))
    assert d.node == "b"


def test_required_pod_affinity_follows_and_first_pod_goes_anywhere():
    nodes = [node("a", cpu="8"), node("b", cpu="8")]
    aff = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "cache"}}}]}}
    first = schedule(pod("p0", labels={"app": "cache"}, affinity=aff), Snapshot.build(nodes, []))
    assert first.node in ("a", "b")
    cache = pod("cache", cpu="4", labels={"app": "cache"}, node_name="b")
    d = schedule(pod("p", cpu="100m", affinity=aff), Snapshot.build(nodes, [cache]))
    assert d.node == "b"
    lonely = schedule(pod("q", cpu="100m", affinity=aff), Snapshot.build(nodes, []))
    assert lonely.node is None and "2 node(s) didn't match pod affinity rules" in lonely.message


def test_topology_spread_max_skew_holds():
    nodes = [node("a", cpu="16", labels={"zone": "z1"}), node("b", cpu="16", labels={"zone": "z1"}),
             node("c", cpu="16", labels={"zone": "z2"})]
    tsc = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "s"}}}]
    out, bound = place_all(nodes, [pod(f"p{i}", cpu="100m", labels={"app": "s"},
                                       topologySpreadConstraints=tsc) for i in range(6)])
    zones = {"a": "z1", "b": "z1", "c": "z2"}
    z = [zones[p["spec"]["nodeName"]] for p in bound]
    assert len(bound) == 6 and z.count("z1") == 3 and z.count("z2") == 3


def test_topology_spread_rejects_when_skew_exceeded():
    nodes = [node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2"}, cpu="100m")]
    tsc = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "s"}}}]
    existing = pod("e", cpu="100m", labels={"app": "s"}, node_name="a")
    d = schedule(pod("p", cpu="500m", labels={"app": "s"}, topologySpreadConstraints=tsc),
                 Snapshot.build(nodes, [existing]))
    assert d.node is None
    assert "1 Insufficient cpu" in d.message
    assert "1 node(s) didn't match pod topology spread constraints" in d.message


def test_prefer_no_schedule_taint_lowers_score():
    nodes = [node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}]), node("b")]
    d = schedule(pod("p", cpu="100m"), Snapshot.build(nodes, []))
    assert d.node == "b" and d.scores["a"]["TaintToleration"] == 0 and d.scores["b"]["TaintToleration"] == 300


def test_least_allocated_and_balanced_scores():
    nodes = [node("a", cpu="4", mem="4Gi"), node("b", cpu="4", mem="4Gi")]
    busy = pod("busy", cpu="2", mem="2Gi", node_name="a")
    d = schedule(pod("p", cpu="1", mem="1Gi"), Snapshot.build(nodes, [busy]))
    assert d.node == "b"
    assert d.scores["a"]["NodeResourcesFit"] == 25 and d.scores["b"]["NodeResourcesFit"] == 75
    assert d.scores["b"]["NodeResourcesBalancedAllocation"] == 100


def test_too_many_pods():
    n = node("a", cpu="8")
    n["status"]["allocatable"]["pods"] = "1"
    d = schedule(pod("p", cpu="100m"), Snapshot.build([n], [pod("x", cpu="100m", node_name="a")]))
    assert d.message.startswith("0/1 nodes are available: 1 Too many pods.")


def test_terminal_pods_free_resources():
    done = pod("done", cpu="2", node_name="a")
    done["status"]["phase"] = "Succeeded"
    assert schedule(pod("p"), Snapshot.build([node("a")], [done])).node == "a"


def test_explain_renders_scores_rejections_and_events():
    from netemu.controllers.explain import render
    from netemu.controllers.scheduler.loop import SCORES_ANNOTATION, decision_record

    nodes = [node("a"), node("b", cpu="4"), node("c", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])]
    p = pod("p", cpu="500m")
    d = schedule(p, Snapshot.build(nodes, []))
    p["spec"]["nodeName"] = d.node
    p["metadata"]["annotations"] = {SCORES_ANNOTATION: decision_record(d)}
    ev = {"involvedObject": {"name": "p"}, "type": "Normal", "reason": "Scheduled",
          "message": f"Successfully assigned default/p to {d.node}", "lastTimestamp": "t", "metadata": {"name": "e"}}
    text = render(p, [ev, dict(ev, involvedObject={"name": "other"}, reason="Other")])
    assert f"bound to node {d.node}" in text and d.node == "b"
    assert "*b" in text and "NodeResourcesFit(x1)" in text
    assert "c: node(s) had untolerated taint {k: v}" in text
    assert "Scheduled: Successfully assigned default/p to b" in text and "Other" not in text


def test_which_pods_the_scheduler_takes():
    from netemu.controllers.scheduler.loop import unschedulable_status, wants_scheduling
    assert wants_scheduling(pod("p"))
    assert not wants_scheduling(pod("p", node_name="n1"))
    assert not wants_scheduling(pod("p", schedulerName="other"))
    assert not wants_scheduling(pod("p", schedulingGates=[{"name": "wait"}]))
    gone = pod("p")
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not wants_scheduling(gone)
    conds = unschedulable_status(pod("p"), "0/1 nodes are available: 1 Too many pods.", 1767225600.0)
    assert conds == [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                      "message": "0/1 nodes are available: 1 Too many pods.", "lastProbeTime": None,
                      "lastTransitionTime": "2026-01-01T00:00:00Z"}]


def test_spread_match_label_keys_counts_only_the_same_revision():
    nodes = [node("a", cpu="8"), node("b", cpu="8")]
    tsc = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "s"}}, "matchLabelKeys": ["pod-template-hash"]}]
    old = [pod(f"o{i}", cpu="100m", node_name="a", labels={"app": "s", "pod-template-hash": "v1"}) for i in range(3)]
    new = pod("n", cpu="100m", labels={"app": "s", "pod-template-hash": "v2"}, topologySpreadConstraints=tsc)
    # the three old-revision pods on "a" do not count against the new revision: both nodes fit
    d = schedule(new, Snapshot.build(nodes, old))
    assert not d.rejected
    without = dict(new, spec=dict(new["spec"], topologySpreadConstraints=[dict(tsc[0], matchLabelKeys=[])]))
    assert schedule(without, Snapshot.build(nodes, old)).node == "b"
    assert "a" in schedule(without, Snapshot.build(nodes, old)).rejected


def test_preferred_pod_affinity_and_existing_pods_required_affinity_score():
    nodes = [node("a", cpu="8"), node("b", cpu="8")]
    cache = pod("cache", cpu="100m", node_name="b", labels={"app": "cache"})
    pref = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                           "labelSelector": {"matchLabels": {"app": "cache"}}}}]}}
    d = schedule(pod("p", cpu="100m", affinity=pref), Snapshot.build(nodes, [cache]))
    assert d.node == "b" and d.scores["b"]["InterPodAffinity"] == 200 and d.scores["a"]["InterPodAffinity"] == 0
    # symmetry: a pod on "a" that requires pods like the incoming one near it draws it to "a"
    needy = pod("needy", cpu="100m", node_name="a", affinity={"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}]}})
    d = schedule(pod("w", cpu="100m", labels={"app": "web"}), Snapshot.build(nodes, [needy]))
    assert d.scores["a"]["InterPodAffinity"] == 200 and d.scores["b"]["InterPodAffinity"] == 0
