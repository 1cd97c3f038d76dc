"""The proxy object model: Service/EndpointSlice dicts -> service ports and endpoints."""

from __future__ import annotations

from netemu.agent.proxy.hashing import endpoint_chain, is_service_chain, service_chains
from netemu.agent.proxy.model import (
    EndpointInfo, NodeInfo, ProxyConfig, ServicePortName, endpoints_by_service_port, label_skip_reason,
    seen_by_kube_proxy, service_ports, skip_reason,
)

NODE = NodeInfo("test-node", ("192.168.0.2",), "10.0.0.0/8")


def svc(ns="ns1", name="svc1", **spec):
    spec.setdefault("clusterIP", "172.30.0.41")
    spec.setdefault("ports", [{"name": "p80", "port": 80, "protocol": "TCP"}])
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


def eps_slice(ns, name, endpoints, ports=None, slice_name=None):
    return {"metadata": {"namespace": ns, "name": slice_name or name + "-abc",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": ports or [{"name": "p80", "port": 80, "protocol": "TCP"}]}


def test_hash_names_match_upstream_proxier_test():
    # Literal names from kubernetes v1.32 pkg/proxy/iptables/proxier_test.go.
    assert service_chains("ns1/svc1:p80", "tcp")[0] == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert service_chains("ns5/svc5:p80", "tcp")[3] == "KUBE-FW-NUKIZ6OKUXPJNT4C"
    assert endpoint_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert is_service_chain("KUBE-SEP-X") and not is_service_chain("KUBE-SERVICES")


def test_service_port_name_string():
    assert str(ServicePortName("ns", "a", "http", "TCP")) == "ns/a:http"
    assert str(ServicePortName("ns", "a", "", "UDP")) == "ns/a"


def test_cluster_ip_service_defaults():
    (info,) = service_ports(svc(), NODE).values()
    assert (info.cluster_ip, info.port, info.protocol, info.node_port) == ("172.30.0.41", 80, "TCP", 0)
    assert info.session_affinity == "None" and not info.externally_accessible
    assert info.uses_cluster_endpoints and not info.uses_local_endpoints


def test_ignored_services():
    assert service_ports(svc(clusterIP="None"), NODE) == {}
    assert service_ports(svc(type="ExternalName", externalName="x.example"), NODE) == {}
    assert skip_reason(svc()) is None


def test_label_filter_is_the_informers_not_the_models():
    """cmd/kube-proxy's informer selector drops either label whatever its value; the model
    itself (upstream ShouldSkipService) does not look at labels, so the deletion an informer
    reports when the label appears -- carrying the labelled object -- still removes the rules."""
    for labels in ({"service.kubernetes.io/service-proxy-name": "other"},
                   {"service.kubernetes.io/service-proxy-name": ""},
                   {"service.kubernetes.io/headless": ""}):
        labelled = svc()
        labelled["metadata"]["labels"] = labels
        assert label_skip_reason(labelled).startswith("has label " + next(iter(labels)))
        assert seen_by_kube_proxy([labelled, svc(name="plain")]) == [svc(name="plain")]
        assert len(service_ports(labelled, NODE)) == 1
    assert label_skip_reason(svc()) is None and seen_by_kube_proxy([None, svc()]) == [None, svc()]


def test_load_balancer_fields():
    s = svc(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30000,
            ports=[{"name": "p80", "port": 80, "nodePort": 3001}],
            externalIPs=["192.168.99.22", "2001:db8::5"],
            loadBalancerSourceRanges=[" 203.0.113.7/25", "junk"],
            sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"ip": "5.6.7.8", "ipMode": "Proxy"},
                                                {"hostname": "lb.example"}]}}
    problems: list[str] = []
    (info,) = service_ports(s, NODE, problems=problems).values()
    assert info.node_port == 3001 and info.health_check_node_port == 30000
    assert info.external_ips == ("192.168.99.22",)          # other family dropped silently
    assert info.load_balancer_vips == ("1.2.3.4",)          # Proxy-mode ingress not captured
    assert info.load_balancer_source_ranges == ("203.0.113.0/25",)
    assert info.external_policy_local and info.uses_local_endpoints
    assert info.uses_cluster_endpoints  # internal traffic policy is still Cluster
    assert (info.session_affinity, info.sticky_max_age_seconds) == ("ClientIP", 60)
    assert any("junk" in p for p in problems)


def test_etp_local_ignored_for_cluster_ip_without_external_ips():
    (info,) = service_ports(svc(externalTrafficPolicy="Local"), NODE).values()
    assert not info.external_policy_local


def test_bad_ports_are_skipped_with_reason_and_others_kept():
    problems: list[str] = []
    s = svc(ports=[{"name": "a", "port": 70000}, {"name": "b", "port": 53, "protocol": "ICMP"},
                   {"name": "c", "port": 53, "protocol": "UDP"}, "junk"])
    out = service_ports(s, NODE, problems=problems)
    assert [k.port for k in out] == ["c"]
    assert len(problems) == 3
    assert any("70000" in p for p in problems) and any("ICMP" in p for p in problems)


def test_bad_cluster_ip_skips_service():
    problems: list[str] = []
    assert service_ports(svc(clusterIP="300.1.1.1"), NODE, problems=problems) == {}
    assert "clusterIP" in problems[0]


def test_endpoints_merge_sort_and_conditions():
    slices = [
        eps_slice("ns1", "svc1", [{"addresses": ["10.180.0.2"]},
                                  {"addresses": ["10.180.0.10"], "nodeName": "test-node",
                                   "conditions": {"ready": False, "serving": True, "terminating": True}}]),
        eps_slice("ns1", "svc1", [{"addresses": ["10.180.0.2"], "nodeName": "test-node"},
                                  {"addresses": []},
                                  {"addresses": ["10.180.0.10"], "nodeName": "other",
                                   "conditions": {"ready": False, "terminating": True}}], slice_name="svc1-def"),
        eps_slice("ns9", "gone", [{"addresses": ["10.9.9.9"]}]),
    ]
    problems: list[str] = []
    out = endpoints_by_service_port(slices, NODE, problems=problems)
    eps = out[ServicePortName("ns1", "svc1", "p80", "TCP")]
    assert [e.endpoint for e in eps] == ["10.180.0.10:80", "10.180.0.2:80"]  # string order, as upstream
    assert eps[0] == EndpointInfo("10.180.0.10", 80, ready=False, serving=True, terminating=True,
                                  is_local=True, node_name="test-node")
    assert eps[1].is_local                                   # duplicate: the later non-terminating copy wins
    assert ServicePortName("ns9", "gone", "p80", "TCP") in out  # no Service: fine here
    assert any("no address" in p for p in problems)


def test_slice_without_service_label_is_skipped():
    sl = eps_slice("ns1", "svc1", [{"addresses": ["10.0.0.1"]}])
    del sl["metadata"]["labels"]
    problems: list[str] = []
    assert endpoints_by_service_port([sl], NODE, problems=problems) == {}
    assert "kubernetes.io/service-name" in problems[0]


def test_config_and_local_detection():
    assert ProxyConfig().masquerade_mark == "0x4000"
    assert NODE.if_local() == ("-s", "10.0.0.0/8")
    assert NODE.if_not_local() == ("!", "-s", "10.0.0.0/8")
    assert NodeInfo("n").if_not_local() == () and not NodeInfo("n").detects_local
    assert NodeInfo("n", interface_prefix="veth").if_local() == ("-i", "veth+")


def test_slices_filtered_like_kube_proxy_informer():
    headless = eps_slice("ns1", "svc1", [{"addresses": ["10.0.0.1"]}])
    headless["metadata"]["labels"]["service.kubernetes.io/headless"] = ""
    other = eps_slice("ns1", "svc2", [{"addresses": ["10.0.0.2"]}])
    other["metadata"]["labels"]["service.kubernetes.io/service-proxy-name"] = "other-proxy"
    empty = eps_slice("ns1", "svc1", [{"addresses": ["10.0.0.1"]}])
    empty["metadata"]["labels"]["service.kubernetes.io/service-proxy-name"] = ""
    assert seen_by_kube_proxy([headless, other, empty]) == []


def test_topology_hints_used_only_when_complete():
    from netemu.agent.proxy.categorize import categorize_endpoints
    node_labels = {"topology.kubernetes.io/zone": "a"}
    s = svc()
    s["metadata"]["annotations"] = {"service.kubernetes.io/topology-mode": "Auto"}
    (info,) = service_ports(s, NODE).values()
    a = EndpointInfo("10.0.0.1", 80, zone_hints=frozenset({"a"}))
    b = EndpointInfo("10.0.0.2", 80, zone_hints=frozenset({"b"}))
    assert categorize_endpoints((a, b), info, node_labels).cluster == (a,)
    unhinted = EndpointInfo("10.0.0.3", 80)
    assert categorize_endpoints((a, b, unhinted), info, node_labels).cluster == (a, b, unhinted)
    assert categorize_endpoints((a, b), info, {}).cluster == (a, b)           # node without zone
    assert categorize_endpoints((b,), info, node_labels).cluster == (b,)      # none for this zone
    (plain,) = service_ports(svc(), NODE).values()
    # upstream >= 1.31: the hints decide (the controller only writes them when asked)
    assert categorize_endpoints((a, b), plain, node_labels).cluster == (a,)


def test_categorize_local_policy_and_fallbacks():
    from netemu.agent.proxy.categorize import categorize_endpoints
    (itp,) = service_ports(svc(internalTrafficPolicy="Local"), NODE).values()
    local_term = EndpointInfo("10.0.0.1", 80, ready=False, serving=True, terminating=True, is_local=True)
    remote = EndpointInfo("10.0.0.2", 80)
    c = categorize_endpoints((local_term, remote), itp)
    assert c.local == (local_term,) and c.all_reachable == (local_term,) and c.has_any and c.cluster == ()
    c = categorize_endpoints((remote,), itp)
    assert c.local == () and c.has_any                                       # -> DROP, not REJECT
    gone = EndpointInfo("10.0.0.3", 80, ready=False, serving=False, terminating=True, is_local=True)
    assert not categorize_endpoints((gone,), itp).has_any                      # -> REJECT


def test_zero_source_range_means_allow_any():
    s = svc(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8", "0.0.0.0/0"],
            ports=[{"name": "p", "port": 80, "nodePort": 30001}])
    (info,) = service_ports(s, NODE).values()
    assert info.load_balancer_source_ranges == ()


def test_itp_local_with_external_access_still_uses_cluster_endpoints():
    s = svc(type="NodePort", internalTrafficPolicy="Local", externalTrafficPolicy="Local",
            ports=[{"name": "p", "port": 80, "nodePort": 30001}])
    (info,) = service_ports(s, NODE).values()
    assert info.uses_cluster_endpoints and info.uses_local_endpoints   # short-circuit needs SVC
