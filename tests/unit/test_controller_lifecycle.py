"""Node lifecycle, LB pool, node IPAM, GC finalizers, events, options: pure decisions."""

import argparse

import pytest

from netemu.controllers import cloud, gc, nodelifecycle as nl, options
from netemu.controllers.events import aggregate_key, new_event
from netemu.controllers.nodeipam import CIDRAllocator
from netemu.controllers.podgc import orphaned
from netemu.controllers.serviceaccount import needs_token, token_secret

T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def node(ready="True", taints=None, unschedulable=False):
    return {"metadata": {"name": "n1"}, "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": "2026-01-01T00:00:00Z"},
                                      {"type": "MemoryPressure", "status": "False"}]}}


def test_silent_node_goes_unknown_after_grace_only():
    n = node()
    obs = nl.observe(None, n, None, T0)
    assert nl.stale_conditions(n, obs, T0 + 39, 40) is None
    conds = nl.stale_conditions(n, obs, T0 + 41, 40)
    by_type = {c["type"]: c for c in conds}
    assert by_type["Ready"]["status"] == "Unknown" and by_type["Ready"]["reason"] == "NodeStatusUnknown"
    assert by_type["Ready"]["message"] == "Kubelet stopped posting node status."
    assert by_type["MemoryPressure"]["status"] == "Unknown"


def test_lease_renewal_counts_as_heartbeat():
    n = node()
    lease = {"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}}
    obs = nl.observe(None, n, lease, T0)
    renewed = {"spec": {"renewTime": "2026-01-01T00:00:30.000000Z"}}
    obs2 = nl.observe(obs, n, renewed, T0 + 30)
    assert obs2.at == T0 + 30
    assert nl.stale_conditions(n, obs2, T0 + 60, 40) is None
    assert nl.observe(obs2, n, renewed, T0 + 90).at == T0 + 30


def test_condition_taints_added_and_removed():
    unknown = nl.desired_taints(node("Unknown"), T0)
    assert {(t["key"], t["effect"]) for t in unknown} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    assert next(t for t in unknown if t["effect"] == "NoExecute")["timeAdded"] == "2026-01-01T00:00:00Z"
    # timeAdded kept on the next pass
    again = nl.desired_taints(node("Unknown", taints=unknown), T0 + 100)
    assert again == unknown
    user = {"key": "dedicated", "value": "x", "effect": "NoSchedule"}
    assert nl.desired_taints(node("True", taints=unknown + [user]), T0) == [user]
    assert {t["key"] for t in nl.desired_taints(node("False"), T0)} == {"node.kubernetes.io/not-ready"}
    assert nl.desired_taints(node("True", unschedulable=True), T0) == [
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]


def test_eviction_deadlines():
    taints = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}]
    plain = {"spec": {}}
    assert nl.eviction_deadline(plain, taints, 300, 5) == T0 + 5          # default toleration
    tol = {"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                     "effect": "NoExecute", "tolerationSeconds": 60}]}}
    assert nl.eviction_deadline(tol, taints, 300, 5) == T0 + 60
    forever = {"spec": {"tolerations": [{"operator": "Exists"}]}}
    assert nl.eviction_deadline(forever, taints) is None
    other = [{"key": "maintenance", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}]
    assert nl.eviction_deadline(plain, other) == float("-inf")
    assert nl.eviction_deadline(plain, [{"key": "x", "effect": "NoSchedule"}]) is None


def test_pods_marked_not_ready_once():
    pod = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    conds = nl.not_ready_pod_conditions(pod, T0)
    assert conds[0]["status"] == "False"
    assert nl.not_ready_pod_conditions({"status": {"conditions": conds}}, T0) is None


def test_lb_pool_allocates_honours_requests_and_exhausts():
    pool = cloud.Pool(cloud.parse_pool("172.18.255.200-172.18.255.202"))
    assert pool.allocate("a") == "172.18.255.200"
    assert pool.allocate("a") == "172.18.255.200"
    assert pool.allocate("b", "172.18.255.202") == "172.18.255.202"
    assert pool.allocate("c", "172.18.255.202") is None            # taken
    assert pool.allocate("c", "10.0.0.1") is None                  # not in pool
    assert pool.allocate("c") == "172.18.255.201"
    assert pool.allocate("d") is None                              # exhausted
    assert pool.release("a") == "172.18.255.200"
    assert pool.allocate("d") == "172.18.255.200"
    assert len(cloud.parse_pool("10.0.0.0/30")) == 2
    with pytest.raises(ValueError):
        cloud.parse_pool("10.0.0.5-10.0.0.1")


def test_node_cidrs_in_order_and_reused_after_release():
    alloc = CIDRAllocator("10.244.0.0/22", 24)
    assert alloc.occupy("10.244.1.0/24")
    assert not alloc.occupy("192.168.0.0/24")
    assert [alloc.allocate() for _ in range(4)] == ["10.244.0.0/24", "10.244.2.0/24", "10.244.3.0/24", None]
    alloc.release("10.244.2.0/24")
    assert alloc.allocate() == "10.244.2.0/24"
    with pytest.raises(ValueError):
        CIDRAllocator("10.244.0.0/16", 8)


def test_gc_finalizer_actions():
    owner = {"metadata": {"uid": "o", "deletionTimestamp": "x", "finalizers": ["foregroundDeletion"]}}
    dep = {"metadata": {"name": "d", "ownerReferences": [{"uid": "o", "blockOwnerDeletion": True}]}}
    assert gc.finalizer_action(owner, [dep]) == ("foreground", [dep], False)
    assert gc.finalizer_action(owner, []) == ("foreground", [], True)
    owner["metadata"]["finalizers"] = ["orphan"]
    assert gc.finalizer_action(owner, [dep]) == ("orphan", [dep], True)
    assert gc.without_owner(dep, "o") == []
    del owner["metadata"]["deletionTimestamp"]
    assert gc.finalizer_action(owner, [dep]) is None
    assert gc.dependents_of("o", [("Pod", dep), ("Pod", {"metadata": {}})]) == [("Pod", dep)]


def test_pod_gc_and_serviceaccount_tokens():
    pods = [{"spec": {"nodeName": "gone"}}, {"spec": {"nodeName": "n1"}}, {"spec": {}}]
    assert orphaned(pods, {"n1"}) == [pods[0]]
    sa = {"metadata": {"name": "default", "namespace": "ns1", "uid": "u"}}
    secret = token_secret(sa, token="t")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert needs_token(sa, []) and not needs_token(sa, [secret])


def test_events_shape_and_aggregation_key():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns", "uid": "u"}}
    ev = new_event(pod, "Warning", "FailedScheduling", "0/3 nodes", "default-scheduler", T0)
    assert ev["metadata"]["namespace"] == "ns" and ev["metadata"]["name"].startswith("p.")
    assert ev["involvedObject"] == {"kind": "Pod", "name": "p", "uid": "u", "apiVersion": "v1",
                                    "resourceVersion": "", "namespace": "ns"}
    assert (ev["count"], ev["firstTimestamp"], ev["source"]) == (1, "2026-01-01T00:00:00Z",
                                                                 {"component": "default-scheduler"})
    assert aggregate_key(ev) == aggregate_key(new_event(pod, "Warning", "FailedScheduling", "0/3 nodes",
                                                        "default-scheduler", T0 + 5))


def test_options_parse_and_reject():
    p = argparse.ArgumentParser()
    options.add_arguments(p)
    s = options.settings_from_args(p.parse_args(["--node-monitor-grace-period", "2s", "--node-monitor-period",
                                                 "500ms", "--controllers", "*,-podgc"]))
    assert s.node_monitor_grace_period == 2 and s.node_monitor_period == 0.5 and "podgc" not in s.controllers
    assert options.settings_from_args(p.parse_args([])).lb_pool == "172.18.255.200-172.18.255.250"
    for bad in (["--controllers", "nope"], ["--lb-pool", "1.2.3.9-1.2.3.1"], ["--cluster-cidr", "10.0.0.1/8"],
                ["--node-monitor-period", "soon"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)


def test_recorder_aggregates_repeats_and_survives_name_clashes():
    import asyncio

    from netemu.api import errors
    from netemu.controllers.events import Recorder

    class FakeClient:
        def __init__(self):
            self.objects, self.patches, self.clashed = {}, [], []

        async def create(self, rt, obj, ns):
            name = obj["metadata"]["name"]
            if obj["reason"] == "clash" and not self.clashed:  # someone took this name first
                self.clashed.append(name)
                raise errors.AlreadyExists(name)
            if name in self.objects:
                raise errors.AlreadyExists(name)
            self.objects[name] = dict(obj)
            return self.objects[name]

        async def patch(self, rt, name, patch, ns):
            self.patches.append(patch)
            self.objects[name].update(patch)
            return self.objects[name]

    async def main():
        client = FakeClient()
        rec = Recorder(client)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns", "uid": "u"}}
        rec.event(pod, "Warning", "FailedScheduling", "0/1 nodes")
        rec.event(pod, "Warning", "FailedScheduling", "0/1 nodes")
        await rec.flush()
        assert len(client.objects) == 1 and client.patches[0]["count"] == 2
        rec.event(pod, "Normal", "clash", "x")
        await rec.flush()
        assert len(client.objects) == 2 and client.clashed and client.clashed[0] not in client.objects
    asyncio.run(main())


def test_node_that_never_reported_gets_never_updated_conditions():
    fresh = {"metadata": {"name": "n9"}, "spec": {}, "status": {}}
    obs = nl.observe(None, fresh, None, T0)
    conds = nl.stale_conditions(fresh, obs, T0 + 41, 40)
    by_type = {c["type"]: c for c in conds}
    assert set(by_type) == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    assert by_type["Ready"]["reason"] == "NodeStatusNeverUpdated"
    assert by_type["Ready"]["message"] == "Kubelet never posted node status."
    # already Unknown: nothing more to write
    assert nl.stale_conditions({"status": {"conditions": conds}}, obs, T0 + 90, 40) is None
