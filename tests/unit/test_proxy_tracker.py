"""Service and EndpointSlice change trackers: no-op changes dropped, results like upstream's."""

from __future__ import annotations

import copy

from netemu.agent.proxy.model import NodeInfo, ServiceName, ServicePortName, endpoints_by_service_port
from netemu.agent.proxy.tracker import EndpointsChangeTracker, ServiceChangeTracker

NODE = NodeInfo(name="node1", ips=("172.18.0.2",), cluster_cidr="10.244.0.0/16")


def svc(name="web", ns="default", ip="10.96.0.10", ports=(("http", 80, "TCP"),), **spec):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"},
            "spec": {"clusterIP": ip, "type": "ClusterIP",
                     "ports": [{"name": n, "port": p, "protocol": pr, "targetPort": p} for n, p, pr in ports],
                     **spec}}


def eps(service="web", name=None, ns="default", ips=("10.244.1.10",), port=("http", 8080, "TCP"),
        serving=True, trigger=None):
    meta = {"name": name or f"{service}-abc", "namespace": ns,
            "labels": {"kubernetes.io/service-name": service}}
    if trigger:
        meta["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": trigger}
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": "IPv4",
            "ports": [{"name": port[0], "port": port[1], "protocol": port[2]}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": serving, "serving": serving},
                           "nodeName": "node1"} for ip in ips]}


WEB = ServiceName("default", "web")
WEB_HTTP = ServicePortName("default", "web", "http", "TCP")


def test_service_add_then_apply_fills_the_map():
    t = ServiceChangeTracker(NODE)
    assert t.update(None, svc()) is True
    m = {}
    result = t.apply(m)
    assert result.updated_services == {WEB}
    assert m[WEB_HTTP].cluster_ip == "10.96.0.10"
    assert t.pending_count() == 0


def test_noop_service_update_is_dropped():
    t = ServiceChangeTracker(NODE)
    t.update(None, svc())
    t.apply({})
    newer = copy.deepcopy(svc())
    newer["metadata"]["resourceVersion"] = "2"
    newer["metadata"]["annotations"] = {"unrelated": "x"}
    assert t.update(svc(), newer) is False


def test_add_then_delete_before_apply_cancels_out():
    t = ServiceChangeTracker(NODE)
    t.update(None, svc())
    assert t.update(svc(), None) is False
    assert t.apply({}).updated_services == set()


def test_deleting_a_udp_service_reports_its_cluster_ip():
    t = ServiceChangeTracker(NODE)
    dns = svc("dns", ip="10.96.0.53", ports=(("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")))
    t.update(None, dns)
    m = {}
    t.apply(m)
    t.update(dns, None)
    result = t.apply(m)
    assert result.deleted_udp_cluster_ips == {"10.96.0.53"}
    assert m == {}


def test_bad_port_is_skipped_and_the_rest_kept():
    t = ServiceChangeTracker(NODE)
    bad = svc(ports=(("http", 80, "TCP"), ("bad", 70000, "TCP"), ("odd", 81, "ICMP")))
    t.update(None, bad)
    m = {}
    t.apply(m)
    assert list(m) == [WEB_HTTP]
    assert any("70000" in p for p in t.problems) and any("ICMP" in p for p in t.problems)


def test_malformed_service_does_not_raise():
    t = ServiceChangeTracker(NODE)
    assert t.update(None, {"kind": "Service"}) is False
    assert t.update(None, {"metadata": {"name": "x"}, "spec": "garbage"}) is False
    assert t.problems


def test_endpoints_add_update_noop_and_removal():
    t = EndpointsChangeTracker(NODE)
    assert t.update(None, eps(ips=("10.244.1.10", "10.244.1.11"))) is True
    m = {}
    result = t.apply(m)
    assert result.updated_services == {WEB}
    assert [e.ip for e in m[WEB_HTTP]] == ["10.244.1.10", "10.244.1.11"]
    same = eps(ips=("10.244.1.11", "10.244.1.10"))
    same["metadata"]["resourceVersion"] = "9"
    assert t.update(None, same) is False              # same endpoints, other order: no sync
    assert t.update(same, eps(ips=("10.244.1.10",))) is True
    t.apply(m)
    assert [e.ip for e in m[WEB_HTTP]] == ["10.244.1.10"]
    assert t.update(eps(ips=("10.244.1.10",)), None) is True
    t.apply(m)
    assert m == {}


def test_two_slices_of_one_service_merge():
    t = EndpointsChangeTracker(NODE)
    t.update(None, eps(name="web-a", ips=("10.244.1.10",)))
    t.update(None, eps(name="web-b", ips=("10.244.2.10",)))
    m = {}
    t.apply(m)
    assert [e.ip for e in m[WEB_HTTP]] == ["10.244.1.10", "10.244.2.10"]


def test_udp_endpoint_removed_or_not_serving_is_reported_stale():
    t = EndpointsChangeTracker(NODE)
    dns = ("dns", 53, "UDP")
    t.update(None, eps("dns", ips=("10.244.1.10", "10.244.1.11", "10.244.1.12"), port=dns))
    m = {}
    first = t.apply(m)
    spn = ServicePortName("default", "dns", "dns", "UDP")
    assert first.newly_active_udp_services == [spn]
    t.update(None, eps("dns", ips=("10.244.1.10", "10.244.1.11"), port=dns))
    result = t.apply(m)
    assert [(s, e.ip) for s, e in result.deleted_udp_endpoints] == [(spn, "10.244.1.12")]
    assert result.newly_active_udp_services == []
    t.update(None, eps("dns", ips=("10.244.1.10", "10.244.1.11"), port=dns, serving=False))
    result = t.apply(m)
    assert sorted(e.ip for _, e in result.deleted_udp_endpoints) == ["10.244.1.10", "10.244.1.11"]


def test_tcp_endpoint_removal_is_not_a_conntrack_matter():
    t = EndpointsChangeTracker(NODE)
    t.update(None, eps(ips=("10.244.1.10", "10.244.1.11")))
    m = {}
    t.apply(m)
    t.update(None, eps(ips=("10.244.1.10",)))
    assert t.apply(m).deleted_udp_endpoints == []


def test_trigger_time_is_reported_once():
    t = EndpointsChangeTracker(NODE)
    t.update(None, eps(trigger="2026-01-01T00:00:00Z"))
    result = t.apply({})
    assert result.last_change_trigger_times == {WEB: [1767225600.0]}
    t.update(None, eps(ips=("10.244.1.99",)))
    assert t.apply({}).last_change_trigger_times == {}


def test_slice_without_service_label_is_ignored():
    t = EndpointsChangeTracker(NODE)
    bad = eps()
    del bad["metadata"]["labels"]
    assert t.update(None, bad) is False
    assert t.problems


def test_udp_node_port_that_goes_away_is_reported():
    t = ServiceChangeTracker(NODE)
    dns = svc("dns", ip="10.96.0.53", ports=(("dns", 53, "UDP"),), type="NodePort")
    dns["spec"]["ports"][0]["nodePort"] = 30053
    t.update(None, dns)
    m = {}
    t.apply(m)
    moved = copy.deepcopy(dns)
    moved["spec"]["ports"][0]["nodePort"] = 30054
    t.update(dns, moved)
    assert t.apply(m).deleted_udp_node_ports == {30053}
    t.update(moved, None)
    result = t.apply(m)
    assert result.deleted_udp_node_ports == {30054} and result.deleted_udp_cluster_ips == {"10.96.0.53"}


def test_label_added_later_arrives_as_a_deletion_that_removes_the_service():
    """The label-selected informer reports a Service that gains service.kubernetes.io/headless
    as DELETED with the labelled object; its ports must go (upstream ShouldSkipService ignores
    labels, so the previous state is computed from that object)."""
    t = ServiceChangeTracker(NODE)
    t.update(None, svc())
    service_map = {}
    t.apply(service_map)
    assert WEB_HTTP in service_map
    labelled = copy.deepcopy(svc())
    labelled["metadata"]["labels"] = {"service.kubernetes.io/headless": ""}
    assert t.update(labelled, None) is True
    t.apply(service_map)
    assert service_map == {}


def test_render_leaves_out_what_the_informers_would_not_deliver():
    from netemu.agent.proxy.iptables import render
    hidden = svc(name="hidden", ip="10.96.0.11")
    hidden["metadata"]["labels"] = {"service.kubernetes.io/service-proxy-name": "other"}
    text = render([svc(), hidden], [eps(), eps("hidden")], NODE).text
    assert "default/web:http" in text and "default/hidden" not in text


def test_an_event_parses_only_its_own_slice(monkeypatch):
    """Upstream parses each slice once, when it changes: a pod change in a Service of many
    slices must not re-read the others (that was 2 ms per event at 1000 endpoints)."""
    from netemu.agent.proxy import tracker as tracker_module
    t = EndpointsChangeTracker(NODE)
    for i in range(5):
        t.update(None, eps(name=f"web-{i}", ips=tuple(f"10.244.{i}.{k}" for k in range(1, 20))))
    t.apply({})
    parsed = []
    real = tracker_module.slice_endpoints
    monkeypatch.setattr(tracker_module, "slice_endpoints", lambda sl, *a, **kw: parsed.append(sl) or real(sl, *a, **kw))
    changed = eps(name="web-3", ips=tuple(f"10.244.3.{k}" for k in range(1, 21)))
    assert t.update(None, changed) is True
    assert t.update(changed, None) is True             # a delete parses nothing
    assert parsed == [changed]


def test_tracked_endpoints_equal_a_fresh_merge_of_the_current_slices():
    """Whatever the sequence of adds, updates, deletes and applies, the applied map is what
    merging every current slice from scratch gives (the per-slice cache never goes stale),
    also with duplicates across slices (a terminating copy loses to a serving one)."""
    import random
    from netemu.agent.proxy.model import endpoints_by_service_port
    rng = random.Random(7)
    t = EndpointsChangeTracker(NODE)
    current: dict[str, dict] = {}
    m: dict = {}
    for step in range(400):
        name = f"{rng.choice(['web', 'api'])}-{rng.randrange(4)}"
        service = name.split("-")[0]
        if name in current and rng.random() < 0.2:
            t.update(current.pop(name), None)
        else:
            ips = tuple(sorted({f"10.244.1.{rng.randrange(1, 12)}" for _ in range(rng.randrange(0, 6))}))
            sl = eps(service, name=name, ips=ips, serving=rng.random() < 0.8)
            if rng.random() < 0.3:
                for ep in sl["endpoints"]:
                    ep["conditions"]["terminating"] = True
            t.update(current.get(name), sl)
            current[name] = sl
        if rng.random() < 0.3 or step == 399:
            t.apply(m)
            assert m == endpoints_by_service_port(current.values(), NODE), step


def test_a_slice_update_parses_only_the_endpoints_that_changed(monkeypatch):
    """Within the changed slice, endpoints equal to their previous version keep their parsed
    info; a changed one (here: turned not ready) and a new one are parsed again."""
    from netemu.agent.proxy import model
    t = EndpointsChangeTracker(NODE)
    first = eps(ips=tuple(f"10.244.1.{k}" for k in range(1, 51)))
    t.update(None, first)
    m = {}
    t.apply(m)
    parsed = []
    real = model._endpoint
    monkeypatch.setattr(model, "_endpoint", lambda ep, *a: parsed.append(ep["addresses"][0]) or real(ep, *a))
    second = copy.deepcopy(first)
    second["endpoints"][7]["conditions"] = {"ready": False, "serving": False}
    second["endpoints"].append({"addresses": ["10.244.1.99"], "conditions": {"ready": True}, "nodeName": "node1"})
    assert t.update(first, second) is True
    assert sorted(parsed) == ["10.244.1.8", "10.244.1.99"]
    t.apply(m)
    assert m[WEB_HTTP] == endpoints_by_service_port([second], NODE)[WEB_HTTP]
    assert not next(e for e in m[WEB_HTTP] if e.ip == "10.244.1.8").ready


def test_an_endpoint_moving_between_slices_changes_nothing_when_applied():
    """Pending is decided per slice, as upstream's esInfoChanged; the merge at apply() finds the
    Service's endpoints unchanged and reports nothing (no Service to re-render)."""
    t = EndpointsChangeTracker(NODE)
    a, b = eps(name="web-a", ips=("10.244.1.10", "10.244.1.11")), eps(name="web-b", ips=("10.244.2.10",))
    t.update(None, a)
    t.update(None, b)
    m = {}
    t.apply(m)
    before = dict(m)
    a2, b2 = eps(name="web-a", ips=("10.244.1.10",)), eps(name="web-b", ips=("10.244.1.11", "10.244.2.10"))
    assert t.update(a, a2) is True and t.update(b, b2) is True
    result = t.apply(m)
    assert result.updated_services == set() and m == before
    assert t.update(b2, b2) is False                      # applied state follows the slices
