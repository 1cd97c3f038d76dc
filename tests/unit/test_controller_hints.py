"""Topology hints on EndpointSlices (Topology Aware Routing and trafficDistribution)."""

from netemu.controllers import hints


def node(name, zone, cpu="4", ready="True"):
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    return {"metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": cpu}, "conditions": [{"type": "Ready", "status": ready}]}}


def ep(zone, ready=True, node_name="n"):
    e = {"addresses": ["10.0.0.1"], "conditions": {"ready": ready}, "nodeName": node_name}
    if zone:
        e["zone"] = zone
    return e


def auto_svc(**spec):
    return {"metadata": {"name": "s", "annotations": {"service.kubernetes.io/topology-mode": "Auto"}}, "spec": spec}


def zones_of(eps):
    return [e.get("hints", {}).get("forZones", [{}])[0].get("name") for e in eps]


def test_balanced_zones_hint_their_own_zone_and_announce_it():
    nodes = [node("a", "z1"), node("b", "z2"), node("c", "z3")]
    eps = [ep(z) for z in ("z1", "z1", "z2", "z2", "z3", "z3")]
    hinted, events = hints.apply_hints(auto_svc(), eps, nodes, had_hints=False)
    assert hinted and zones_of(eps) == ["z1", "z1", "z2", "z2", "z3", "z3"]
    assert events == [("Normal", "TopologyAwareHintsEnabled",
                       "Topology Aware Hints has been enabled, addressType: IPv4")]
    assert hints.apply_hints(auto_svc(), eps, nodes, had_hints=True) == (True, [])


def test_endpoints_given_to_zones_in_proportion_to_cpu():
    nodes = [node("a", "z1", cpu="1"), node("b", "z2", cpu="3")]
    eps = [ep("z1") for _ in range(4)]
    hinted, _ = hints.apply_hints(auto_svc(), eps, nodes, had_hints=False)
    assert hinted and sorted(zones_of(eps)) == ["z1", "z2", "z2", "z2"]


def test_disabled_with_upstream_reasons():
    three = [node("a", "z1"), node("b", "z2"), node("c", "z3")]
    eps = [ep("z1"), ep("z2")]
    assert hints.apply_hints(auto_svc(), eps, three, False) == (False, [(
        "Warning", "TopologyAwareHintsDisabled",
        "Insufficient number of endpoints (2 endpoints, 3 zones), addressType: IPv4")])
    _, events = hints.apply_hints(auto_svc(), [ep("z1"), ep(None), ep("z2"), ep("z2")], three[:2], False)
    assert events[0][2] == "One or more endpoints do not have a zone specified, addressType: IPv4"
    _, events = hints.apply_hints(auto_svc(), [ep("z1")] * 3, [node("a", None), node("b", "z2")], False)
    assert events[0][2].startswith("Insufficient Node information")
    _, events = hints.apply_hints(auto_svc(), [ep("z1")] * 3, [node("a", "z1"), node("b", "z2", ready="False")], False)
    assert events[0][2] == "Insufficient Node information: allocatable CPU or zone not specified on one or more " \
                           "nodes, addressType: IPv4"  # one ready zone left: upstream says the same
    # 3 endpoints, zones 1:9 -> minimums ceil(0.3/1.2)=1 + ceil(2.7/1.2)=3 > 3: overload
    _, events = hints.apply_hints(auto_svc(), [ep("z1")] * 3, [node("a", "z1", "1"), node("b", "z2", "9")], False)
    assert "without exceeding overload threshold (3 endpoints, 2 zones)" in events[0][2]


def test_not_ready_endpoints_get_no_hint_and_removal_is_announced():
    nodes = [node("a", "z1"), node("b", "z2")]
    eps = [ep("z1"), ep("z2"), ep("z2", ready=False)]
    hints.apply_hints(auto_svc(), eps, nodes, False)
    assert zones_of(eps) == ["z1", "z2", None]
    plain = {"metadata": {"name": "s"}, "spec": {}}
    hinted, events = hints.apply_hints(plain, eps, nodes, had_hints=True)
    assert not hinted and all("hints" not in e for e in eps)
    assert events == [("Warning", "TopologyAwareHintsDisabled",
                       "Topology Aware Hints has been disabled, addressType: IPv4")]


def test_traffic_distribution_prefer_close_and_same_node():
    eps = [ep("z1", node_name="n1"), ep("z2", node_name="n2"), ep(None), ep("z1", ready=False)]
    hints.apply_hints({"spec": {"trafficDistribution": "PreferClose"}}, eps, [], False)
    assert [e.get("hints") for e in eps] == [{"forZones": [{"name": "z1"}]}, {"forZones": [{"name": "z2"}]},
                                            None, None]
    hints.apply_hints({"spec": {"trafficDistribution": "PreferSameNode"}}, eps, [], False)
    assert eps[0]["hints"] == {"forZones": [{"name": "z1"}], "forNodes": [{"name": "n1"}]}
