"""EndpointSlice and Endpoints from Services and pods, as pure reconciliation."""

import itertools

from netemu.controllers import endpointslice as eps
from netemu.controllers.endpoints import desired_endpoints_object


def svc(selector=None, ports=None, publish=False):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"tier": "fe"}},
            "spec": {"selector": {"app": "web"} if selector is None else selector,
                     "ports": ports or [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                     "publishNotReadyAddresses": publish}}


def pod(name, ip, ready=True, node="n1", labels=None, port=8080, deleting=False, phase="Running"):
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                      "labels": {"app": "web"} if labels is None else labels},
         "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
             {"name": "http", "containerPort": port, "protocol": "TCP"}]}]},
         "status": {"phase": phase, "podIP": ip,
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if ip is None:
        del p["status"]["podIP"]
    return p


NODES = {"n1": {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}}}


_COUNTER = itertools.count()


def names():
    return lambda: f"web-{next(_COUNTER)}"


def apply(slices, changes):
    """Play the changes onto a list of slices like the API server would."""
    by_name = {s["metadata"]["name"]: s for s in slices}
    for s in changes.create + changes.update:
        by_name[s["metadata"]["name"]] = s
    for s in changes.delete:
        by_name.pop(s["metadata"]["name"], None)
    return list(by_name.values())


def test_slice_contents_like_upstream():
    pods = [pod("a", "10.244.1.2"), pod("b", "10.244.1.3", ready=False),
            pod("c", "10.244.1.4", deleting=True), pod("nop", None), pod("other", "10.244.1.9", labels={"app": "x"}),
            pod("done", "10.244.1.8", phase="Succeeded")]
    ch = eps.reconcile(svc(), pods, NODES, [], names(), "2026-01-01T00:00:00Z")
    assert len(ch.create) == 1 and not ch.update and not ch.delete
    s = ch.create[0]
    assert s["metadata"]["labels"] == {"tier": "fe", "kubernetes.io/service-name": "web",
                                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert s["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"
    assert s["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] == "2026-01-01T00:00:00Z"
    assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    conds = {e["targetRef"]["name"]: e["conditions"] for e in s["endpoints"]}
    assert conds == {"a": {"ready": True, "serving": True, "terminating": False},
                     "b": {"ready": False, "serving": False, "terminating": False},
                     "c": {"ready": False, "serving": True, "terminating": True}}
    assert s["endpoints"][0]["nodeName"] == "n1" and s["endpoints"][0]["zone"] == "z1"
    # publishNotReadyAddresses forces ready, never serving (upstream podToEndpoint)
    published = eps.reconcile(svc(publish=True), pods, NODES, [], names()).create[0]
    conds = {e["targetRef"]["name"]: e["conditions"] for e in published["endpoints"]}
    assert conds["b"] == {"ready": True, "serving": False, "terminating": False}
    assert conds["c"] == {"ready": True, "serving": True, "terminating": True}


def test_named_target_port_resolved_per_pod_groups_slices():
    pods = [pod("a", "10.244.1.2", port=8080), pod("b", "10.244.1.3", port=9090)]
    ch = eps.reconcile(svc(), pods, NODES, [], names())
    assert sorted(s["ports"][0]["port"] for s in ch.create) == [8080, 9090]


def test_no_change_no_write_and_readiness_flip_updates_in_place():
    pods = [pod("a", "10.244.1.2"), pod("b", "10.244.1.3")]
    slices = apply([], eps.reconcile(svc(), pods, NODES, [], names()))
    assert not eps.reconcile(svc(), pods, NODES, slices, names())
    pods[1] = pod("b", "10.244.1.3", ready=False)
    ch = eps.reconcile(svc(), pods, NODES, slices, names())
    assert not ch.create and not ch.delete and len(ch.update) == 1
    assert ch.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]


def test_at_most_100_per_slice_and_scale_down_empties_slices():
    pods = [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 1}") for i in range(250)]
    slices = apply([], eps.reconcile(svc(), pods, NODES, [], names()))
    assert sorted(len(s["endpoints"]) for s in slices) == [50, 100, 100]
    # new pods fill the slice with room before a new slice is made
    more = pods + [pod(f"q{i}", f"10.245.0.{i + 1}") for i in range(30)]
    ch = eps.reconcile(svc(), more, NODES, slices, names())
    assert not ch.create and len(ch.update) == 1
    slices = apply(slices, ch)
    ch = eps.reconcile(svc(), pods[:10], NODES, slices, names())
    slices = apply(slices, ch)
    # like upstream, endpoints stay where they are (no repacking); emptied slices go
    assert sum(len(s["endpoints"]) for s in slices) == 10 and all(s["endpoints"] for s in slices)


def test_placeholder_when_no_endpoints_and_selector_change():
    slices = apply([], eps.reconcile(svc(), [], NODES, [], names()))
    assert len(slices) == 1 and slices[0]["endpoints"] == [] and slices[0]["ports"] is None
    pods = [pod("a", "10.244.1.2"), pod("z", "10.244.1.7", labels={"app": "other"})]
    slices = apply(slices, eps.reconcile(svc(), pods, NODES, slices, names()))
    assert [e["targetRef"]["name"] for s in slices for e in s["endpoints"]] == ["a"]
    assert len(slices) == 1  # the placeholder was reused
    changed = svc(selector={"app": "other"})
    slices = apply(slices, eps.reconcile(changed, pods, NODES, slices, names()))
    assert [e["targetRef"]["name"] for s in slices for e in s["endpoints"]] == ["z"]


def test_foreign_slices_left_alone():
    foreign = {"metadata": {"name": "mine", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "me"}},
               "endpoints": [], "ports": []}
    ch = eps.reconcile(svc(), [pod("a", "10.244.1.2")], NODES, [foreign], names())
    assert foreign not in ch.delete and len(ch.create) == 1


def test_legacy_endpoints_ready_not_ready_and_terminating():
    pods = [pod("a", "10.244.1.2"), pod("b", "10.244.1.3", ready=False), pod("c", "10.244.1.4", deleting=True)]
    ep = desired_endpoints_object(svc(), pods, None, "t")
    assert ep["metadata"]["name"] == "web"
    (subset,) = ep["subsets"]
    assert [a["ip"] for a in subset["addresses"]] == ["10.244.1.2"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.244.1.3"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert desired_endpoints_object(svc(), pods, ep, "t2") is None
    published = desired_endpoints_object(svc(publish=True), pods, None, None)
    assert len(published["subsets"][0]["addresses"]) == 3


def test_legacy_endpoints_truncated_at_1000_ready_first():
    from netemu.controllers.endpoints import OVER_CAPACITY, truncate
    pods = [pod(f"r{i}", f"10.1.{i // 250}.{i % 250 + 1}") for i in range(900)]
    pods += [pod(f"n{i}", f"10.2.{i // 250}.{i % 250 + 1}", ready=False) for i in range(300)]
    ep = desired_endpoints_object(svc(), pods, None, None)
    (subset,) = ep["subsets"]
    assert len(subset["addresses"]) == 900 and len(subset["notReadyAddresses"]) == 100
    assert ep["metadata"]["annotations"][OVER_CAPACITY] == "truncated"
    two = [{"addresses": [{"ip": str(i)} for i in range(900)]}, {"addresses": [{"ip": str(i)} for i in range(300)]}]
    out, cut = truncate(two)
    assert cut and [len(s["addresses"]) for s in out] == [750, 250]
    small = desired_endpoints_object(svc(), pods[:3], ep, None)
    assert OVER_CAPACITY not in (small["metadata"].get("annotations") or {})


def test_max_endpoints_per_slice_is_configurable():
    pods = [pod(f"p{i}", f"10.244.1.{i + 1}") for i in range(25)]
    ch = eps.reconcile(svc(), pods, NODES, [], names(), max_per_slice=10)
    assert sorted(len(s["endpoints"]) for s in ch.create) == [5, 10, 10]


def test_headless_services_marked_for_kube_proxy():
    headless = svc()
    headless["spec"]["clusterIP"] = "None"
    ch = eps.reconcile(headless, [pod("a", "10.244.1.2")], NODES, [], names())
    assert ch.create[0]["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    assert desired_endpoints_object(headless, [], None, None)["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    assert "service.kubernetes.io/headless" not in eps.slice_labels(svc())
