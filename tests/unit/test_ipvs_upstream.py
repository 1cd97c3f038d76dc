"""The IPVS planner against upstream kube-proxy's own expectations.

Ported from kubernetes pkg/proxy/ipvs/proxier_test.go, v1.32 era, as held by the fork
danwinship/kubernetes at commit 335fae91316b5f6890ae60469f3c8b43fb9aba7e (TestNodePortIPv4/IPv6,
TestIPv4/IPv6Proxier, TestExternalIPs*, TestOnlyLocalExternalIPs, TestLoadBalancer,
TestOnlyLocalNodePorts, TestHealthCheckNodePort, TestLoadBalancerSourceRanges,
TestAcceptIPVSTraffic, TestOnlyLocalLoadBalancing, TestSessionAffinity, TestMasqueradeRule,
TestEndpointSliceE2E, TestTestInternalTrafficPolicyE2E, Test_EndpointSlice{Ready,Only}*,
TestNoEndpointsMetric, TestDismissLocalhostRuleExist, TestLoadBalancerIngressRouteTypeProxy,
TestCreateAndLinkKubeChain, TestMultiPortServiceBindAddr): same Services, same addresses, same
expected virtual servers, real servers, set entries and chain shapes. Upstream's fake proxier has
no local-traffic detector and no node IP of its own (its node addresses only live on the fake
netlink handle), hence ``NodeInfo(ips=())`` with the addresses passed separately below.
"""

from __future__ import annotations

import pytest

from netemu.agent.proxy.ipvs import rules, sets as S
from netemu.agent.proxy.ipvs.cache import PlanCache, plan
from netemu.agent.proxy.ipvs.planner import node_context
from netemu.agent.proxy.ipvs.state import FLAG_PERSISTENT
from netemu.agent.proxy.model import NodeInfo, ProxyConfig, endpoints_by_service_port, service_port_map
from netemu.agent.proxy.xtables.dump import parse

NODE = "test-node"


def svc(ns, name, *, lb_ip=None, ip_mode=None, **spec):
    obj = {"metadata": {"namespace": ns, "name": name}, "spec": spec}
    if lb_ip:
        ingress = {"ip": lb_ip} | ({"ipMode": ip_mode} if ip_mode else {})
        obj["status"] = {"loadBalancer": {"ingress": [ingress]}}
    return obj


def port(name="p80", port=80, proto="TCP", node_port=None):
    return {"name": name, "port": port, "protocol": proto} | ({"nodePort": node_port} if node_port else {})


def ep(ip, node=None, ready=None, serving=None, terminating=None):
    cond = {k: v for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating)) if v is not None}
    return {"addresses": [ip]} | ({"nodeName": node} if node else {}) | ({"conditions": cond} if cond else {})


def eps(ns, name, endpoints, *, num=1, family="IPv4", ports=(("p80", 80, "TCP"),)):
    return {"metadata": {"namespace": ns, "name": f"{name}-{num}", "labels": {"kubernetes.io/service-name": name}},
            "addressType": family, "endpoints": endpoints,
            "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]}


def run(services, slices=(), *, node_ips=(), nodeport_addresses=(), family="IPv4", scheduler="rr", **cfg):
    node = NodeInfo(NODE, (), None, ip_family=family)
    config = ProxyConfig(nodeport_addresses=tuple(nodeport_addresses), **cfg)
    svc_map = service_port_map(services, node)
    eps_map = endpoints_by_service_port(slices, node)
    return plan(svc_map, eps_map, node_context(node, config, node_ips, scheduler), config)


def ipvs(p):
    """{(ip, port, proto): [real server "ip:port" in order]}: upstream's FakeIPVS, compared whole."""
    return {(k.address, k.port, k.protocol): p.endpoints_of(k) for k in p.services}


def chains(p, *names):
    """Per chain, (target, match-set name, -s) of each rule, nat first then filter, as upstream's
    checkIptables reads a fake iptables-save."""
    dump = parse(p.iptables)
    out = {}
    for table in ("nat", "filter"):
        for chain in dump.tables[table].chains.values():
            for r in chain.rules:
                ms = r.option("match-set", "set")
                src = r.option("s")
                out.setdefault(chain.name, []).append(
                    (r.target, ms.values[0] if ms else "", src.value if src else ""))
    return {n: out.get(n, []) for n in names} if names else out


def entries(p, name):
    return sorted(p.ipsets[name])


# ---- TestNodePortIPv4 ------------------------------------------------------------------------

def test_node_port_ipv4_service_with_two_endpoint_families():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="10.20.30.41", ports=[port(node_port=3001)])],
            [eps("ns1", "svc1", [ep("10.180.0.1")]),
             eps("ns1", "svc1", [ep("1002:ab8::2:10")], num=2, family="IPv6")],
            node_ips=["100.101.102.103", "2001:db8::1:1"])
    assert ipvs(p) == {("10.20.30.41", 80, "TCP"): ["10.180.0.1:80"],
                       ("100.101.102.103", 3001, "TCP"): ["10.180.0.1:80"]}
    assert all(vs.scheduler == "rr" and vs.flags == 0 and vs.timeout == 0 for vs in p.services.values())


def test_node_port_ipv4_udp_with_match_all_nodeport_addresses():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="10.20.30.41", ports=[port(proto="UDP", node_port=3001)])],
            [eps("ns1", "svc1", [ep("10.180.0.1")], ports=(("p80", 80, "UDP"),))],
            node_ips=["100.101.102.103"], nodeport_addresses=["0.0.0.0/0"])
    assert ipvs(p) == {("10.20.30.41", 80, "UDP"): ["10.180.0.1:80"],
                       ("100.101.102.103", 3001, "UDP"): ["10.180.0.1:80"]}
    assert entries(p, S.NODE_PORT_UDP) == ["3001"]
    assert chains(p, "KUBE-NODE-PORT", "KUBE-SERVICES") == {
        "KUBE-NODE-PORT": [("KUBE-MARK-MASQ", S.NODE_PORT_UDP, ""), ("ACCEPT", S.HEALTH_CHECK_NODE_PORT, "")],
        "KUBE-SERVICES": [("RETURN", "", "127.0.0.0/8"), ("KUBE-MARK-MASQ", S.CLUSTER_IP, ""),
                          ("KUBE-NODE-PORT", "", ""), ("ACCEPT", S.CLUSTER_IP, "")]}


def test_node_port_without_endpoints_has_virtual_servers_without_real_servers():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="10.20.30.41", ports=[port(node_port=3001)])],
            node_ips=["100.101.102.103"])
    assert ipvs(p) == {("10.20.30.41", 80, "TCP"): [], ("100.101.102.103", 3001, "TCP"): []}


def test_node_port_sctp_on_a_node_with_several_addresses():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="10.20.30.41", ports=[port(proto="SCTP", node_port=3001)])],
            [eps("ns1", "svc1", [ep("10.180.0.1")], ports=(("p80", 80, "SCTP"),))],
            node_ips=["100.101.102.103", "100.101.102.104", "100.101.102.105",
                      "2001:db8::1:1", "2001:db8::1:2", "2001:db8::1:3"])
    assert ipvs(p) == {("10.20.30.41", 80, "SCTP"): ["10.180.0.1:80"],
                       **{(f"100.101.102.10{i}", 3001, "SCTP"): ["10.180.0.1:80"] for i in (3, 4, 5)}}
    assert entries(p, S.NODE_PORT_SCTP) == [f"100.101.102.10{i},sctp:3001" for i in (3, 4, 5)]


def test_node_port_sctp_external_traffic_policy_local():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="10.20.30.41", externalTrafficPolicy="Local",
                 ports=[port(proto="SCTP", node_port=3001)])],
            [eps("ns1", "svc1", [ep("10.180.0.1", NODE), ep("10.180.1.1", "other-node")], ports=(("p80", 80, "SCTP"),))],
            node_ips=["100.101.102.103"])
    assert ipvs(p) == {("10.20.30.41", 80, "SCTP"): ["10.180.0.1:80", "10.180.1.1:80"],
                       ("100.101.102.103", 3001, "SCTP"): ["10.180.0.1:80"]}
    assert entries(p, S.NODE_PORT_SCTP) == entries(p, S.NODE_PORT_LOCAL_SCTP) == ["100.101.102.103,sctp:3001"]
    assert chains(p, "KUBE-NODE-PORT")["KUBE-NODE-PORT"] == [
        ("RETURN", S.NODE_PORT_LOCAL_SCTP, ""), ("KUBE-MARK-MASQ", S.NODE_PORT_SCTP, ""),
        ("ACCEPT", S.HEALTH_CHECK_NODE_PORT, "")]


# ---- TestNodePortIPv6 ------------------------------------------------------------------------

def test_node_port_ipv6():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="2020::1", ports=[port(node_port=3001)])],
            [eps("ns1", "svc1", [ep("10.180.0.1")]),
             eps("ns1", "svc1", [ep("1002:ab8::2:10")], num=2, family="IPv6")],
            node_ips=["100.101.102.103", "2001:db8::1:1"], family="IPv6")
    assert ipvs(p) == {("2001:db8::1:1", 3001, "TCP"): ["[1002:ab8::2:10]:80"],
                       ("2020::1", 80, "TCP"): ["[1002:ab8::2:10]:80"]}


def test_node_port_ipv4_service_does_nothing_on_an_ipv6_proxier():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="10.20.30.41", ports=[port(proto="UDP", node_port=3001)])],
            [eps("ns1", "svc1", [ep("10.180.0.1")], family="IPv6", ports=(("p80", 80, "UDP"),))],
            node_ips=["100.101.102.103"], nodeport_addresses=["0.0.0.0/0"], family="IPv6")
    assert ipvs(p) == {}


def test_node_port_ipv6_without_endpoints():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="2020::1", ports=[port(node_port=3001)])],
            node_ips=["100.101.102.103", "2001:db8::1:1"], family="IPv6")
    assert ipvs(p) == {("2020::1", 80, "TCP"): [], ("2001:db8::1:1", 3001, "TCP"): []}


def test_node_port_ipv6_sctp_several_addresses():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="2020::1", ports=[port(proto="SCTP", node_port=3001)])],
            [eps("ns1", "svc1", [ep("2001::1")], family="IPv6", ports=(("p80", 80, "SCTP"),))],
            node_ips=["2001:db8::1:1", "2001:db8::1:2"], family="IPv6")
    assert ipvs(p) == {("2001:db8::1:1", 3001, "SCTP"): ["[2001::1]:80"],
                       ("2001:db8::1:2", 3001, "SCTP"): ["[2001::1]:80"],
                       ("2020::1", 80, "SCTP"): ["[2001::1]:80"]}
    assert entries(p, "KUBE-6-NODE-PORT-SCTP-HASH") == ["2001:db8::1:1,sctp:3001", "2001:db8::1:2,sctp:3001"]


# ---- TestIPv4Proxier / TestIPv6Proxier --------------------------------------------------------

TWO_FAMILIES = [svc("ns1", "svc1", clusterIP="10.20.30.41", ports=[port()]),
                svc("ns2", "svc2", clusterIP="1002:ab8::2:1", ports=[port("p8080", 8080)])]
TWO_FAMILY_SLICES = [eps("ns1", "svc1", [ep("10.180.0.1")]),
                     eps("ns2", "svc2", [ep("1009:ab8::5:6")], family="IPv6", ports=(("p8080", 8080, "TCP"),))]


@pytest.mark.parametrize("family, expected", [
    ("IPv4", {("10.20.30.41", 80, "TCP"): ["10.180.0.1:80"]}),
    ("IPv6", {("1002:ab8::2:1", 8080, "TCP"): ["[1009:ab8::5:6]:8080"]}),
])
def test_each_family_proxier_takes_its_family_only(family, expected):
    assert ipvs(run(TWO_FAMILIES, TWO_FAMILY_SLICES, family=family)) == expected


@pytest.mark.parametrize("family, cluster_ip", [("IPv4", "10.20.30.41"), ("IPv6", "2001::1")])
def test_cluster_ip_without_endpoints(family, cluster_ip):
    p = run([svc("ns1", "svc1", clusterIP=cluster_ip, ports=[port()])], family=family)
    assert ipvs(p) == {(cluster_ip, 80, "TCP"): []}


# ---- external IPs ----------------------------------------------------------------------------

def test_external_ip_without_endpoints():
    p = run([svc("ns1", "svc1", type="ClusterIP", clusterIP="10.20.30.41", externalIPs=["50.60.70.81"],
                 ports=[port()])])
    assert ipvs(p) == {("10.20.30.41", 80, "TCP"): [], ("50.60.70.81", 80, "TCP"): []}


def test_external_ips_of_the_family_get_virtual_servers():
    p = run([svc("ns1", "svc1", type="ClusterIP", clusterIP="10.20.30.41",
                 externalIPs=["50.60.70.81", "2012::51", "127.0.0.1"], ports=[port()])],
            [eps("ns1", "svc1", [ep("10.180.0.1")])])
    # upstream's slice names UDP for a TCP Service port: no endpoints for it (its test only
    # checks that whatever real servers exist are the endpoint's)
    assert set(ipvs(p)) == {("10.20.30.41", 80, "TCP"), ("50.60.70.81", 80, "TCP"), ("127.0.0.1", 80, "TCP")}
    assert all(r in ([], ["10.180.0.1:80"]) for r in ipvs(p).values())
    assert entries(p, S.EXTERNAL_IP) == ["127.0.0.1,tcp:80", "50.60.70.81,tcp:80"]


def test_only_local_external_ips_use_the_local_endpoint():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="10.20.30.41", externalTrafficPolicy="Local",
                 externalIPs=["50.60.70.81", "2012::51", "127.0.0.1"], ports=[port()])],
            [eps("ns1", "svc1", [ep("10.180.0.1", NODE), ep("10.180.1.1", "other-node")])])
    got = ipvs(p)
    assert set(got) == {("10.20.30.41", 80, "TCP"), ("50.60.70.81", 80, "TCP"), ("127.0.0.1", 80, "TCP")}
    assert got[("50.60.70.81", 80, "TCP")] == got[("127.0.0.1", 80, "TCP")] == ["10.180.0.1:80"]
    assert got[("10.20.30.41", 80, "TCP")] == ["10.180.0.1:80", "10.180.1.1:80"]
    assert entries(p, S.EXTERNAL_IP_LOCAL) == ["127.0.0.1,tcp:80", "50.60.70.81,tcp:80"]
    assert entries(p, S.EXTERNAL_IP) == []


# ---- load balancers --------------------------------------------------------------------------

def test_load_balancer():
    p = run([svc("ns1", "svc1", lb_ip="1.2.3.4", type="LoadBalancer", clusterIP="10.20.30.41",
                 ports=[port(node_port=3001)])],
            [eps("ns1", "svc1", [ep("10.180.0.1")])])
    assert ipvs(p) == {("10.20.30.41", 80, "TCP"): ["10.180.0.1:80"], ("1.2.3.4", 80, "TCP"): ["10.180.0.1:80"]}
    assert entries(p, S.LOAD_BALANCER) == ["1.2.3.4,tcp:80"]
    assert chains(p, "KUBE-SERVICES", "KUBE-LOAD-BALANCER") == {
        "KUBE-SERVICES": [("RETURN", "", "127.0.0.0/8"), ("KUBE-LOAD-BALANCER", S.LOAD_BALANCER, ""),
                          ("KUBE-MARK-MASQ", S.CLUSTER_IP, ""), ("KUBE-NODE-PORT", "", ""),
                          ("ACCEPT", S.CLUSTER_IP, ""), ("ACCEPT", S.LOAD_BALANCER, "")],
        "KUBE-LOAD-BALANCER": [("KUBE-MARK-MASQ", "", "")]}


def test_only_local_node_ports_with_nodeport_addresses():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="10.20.30.41", externalTrafficPolicy="Local",
                 ports=[port(node_port=3001)])],
            [eps("ns1", "svc1", [ep("10.180.0.1", NODE), ep("10.180.1.1", "other-node")])],
            node_ips=["100.101.102.103", "2001:db8::"], nodeport_addresses=["100.101.102.0/24"])
    assert ipvs(p)[("100.101.102.103", 3001, "TCP")] == ["10.180.0.1:80"]
    assert len(p.services) == 2
    assert entries(p, S.NODE_PORT_TCP) == entries(p, S.NODE_PORT_LOCAL_TCP) == ["3001"]
    assert chains(p, "KUBE-SERVICES", "KUBE-NODE-PORT") == {
        "KUBE-SERVICES": [("RETURN", "", "127.0.0.0/8"), ("KUBE-MARK-MASQ", S.CLUSTER_IP, ""),
                          ("KUBE-NODE-PORT", "", ""), ("ACCEPT", S.CLUSTER_IP, "")],
        "KUBE-NODE-PORT": [("RETURN", S.NODE_PORT_LOCAL_TCP, ""), ("KUBE-MARK-MASQ", S.NODE_PORT_TCP, ""),
                           ("ACCEPT", S.HEALTH_CHECK_NODE_PORT, "")]}


def test_nodeport_addresses_matching_no_node_address_leave_node_ports_out():
    p = run([svc("ns1", "svc1", type="LoadBalancer", clusterIP="10.20.30.41", externalTrafficPolicy="Local",
                 healthCheckNodePort=30000, ports=[port(node_port=3001)])],
            node_ips=["100.101.102.103"], nodeport_addresses=["192.168.0.0/24"])
    assert set(ipvs(p)) == {("10.20.30.41", 80, "TCP")}
    assert entries(p, S.NODE_PORT_TCP) == entries(p, S.HEALTH_CHECK_NODE_PORT) == []   # upstream's `continue`


def test_health_check_node_ports_of_local_load_balancers_only():
    base = dict(type="LoadBalancer", clusterIP="10.20.30.41", externalTrafficPolicy="Local",
                ports=[port(node_port=3000)])
    p = run([svc("ns1", "valid-svc1", healthCheckNodePort=30000, **base),
             svc("ns1", "valid-svc2", healthCheckNodePort=30001, **base),
             svc("ns1", "invalid-svc3", healthCheckNodePort=30002, **(base | {"externalTrafficPolicy": "Cluster"}))],
            node_ips=["100.101.102.103", "2001:db8::"], nodeport_addresses=["100.101.102.0/24"])
    assert entries(p, S.HEALTH_CHECK_NODE_PORT) == ["30000", "30001"]
    assert chains(p, "KUBE-NODE-PORT")["KUBE-NODE-PORT"] == [
        ("RETURN", S.NODE_PORT_LOCAL_TCP, ""), ("KUBE-MARK-MASQ", S.NODE_PORT_TCP, ""),
        ("ACCEPT", S.HEALTH_CHECK_NODE_PORT, "")]


def test_load_balancer_source_ranges():
    p = run([svc("ns1", "svc1", lb_ip="1.2.3.4", type="LoadBalancer", clusterIP="10.20.30.41",
                 loadBalancerSourceRanges=["10.0.0.0/8"], ports=[port()])],
            [eps("ns1", "svc1", [ep("10.180.0.1")])])
    assert ipvs(p)[("1.2.3.4", 80, "TCP")] == ["10.180.0.1:80"] and len(p.services) == 2
    assert entries(p, S.LOAD_BALANCER) == entries(p, S.LOAD_BALANCER_FW) == ["1.2.3.4,tcp:80"]
    assert entries(p, S.LOAD_BALANCER_SOURCE_CIDR) == ["1.2.3.4,tcp:80,10.0.0.0/8"]
    assert chains(p, "KUBE-SERVICES", "KUBE-PROXY-FIREWALL", "KUBE-SOURCE-RANGES-FIREWALL") == {
        "KUBE-SERVICES": [("RETURN", "", "127.0.0.0/8"), ("KUBE-LOAD-BALANCER", S.LOAD_BALANCER, ""),
                          ("KUBE-MARK-MASQ", S.CLUSTER_IP, ""), ("KUBE-NODE-PORT", "", ""),
                          ("ACCEPT", S.CLUSTER_IP, ""), ("ACCEPT", S.LOAD_BALANCER, "")],
        "KUBE-PROXY-FIREWALL": [("KUBE-SOURCE-RANGES-FIREWALL", S.LOAD_BALANCER_FW, "")],
        "KUBE-SOURCE-RANGES-FIREWALL": [("RETURN", S.LOAD_BALANCER_SOURCE_CIDR, ""), ("DROP", "", "")]}
    # the node (no IP of its own here, as upstream's fake) is not in the ranges: it may not reach the LB
    assert chains(p, "KUBE-IPVS-OUT-FILTER")["KUBE-IPVS-OUT-FILTER"] == [("DROP", "", "1.2.3.4")]
    assert "-m ipvs --vaddr 1.2.3.4 --vproto tcp --vport 80 -j DROP" in p.iptables


def test_source_ranges_admitting_the_node_let_it_reach_the_load_balancer():
    node = NodeInfo(NODE, ("10.1.2.3",), None)
    svc_map = service_port_map([svc("ns1", "svc1", lb_ip="1.2.3.4", type="LoadBalancer", clusterIP="10.20.30.41",
                                    loadBalancerSourceRanges=["10.0.0.0/8"], ports=[port()])], node)
    p = plan(svc_map, {}, node_context(node, ProxyConfig()))
    assert entries(p, S.LOAD_BALANCER_SOURCE_IP) == ["1.2.3.4,tcp:80,1.2.3.4"]
    assert chains(p, "KUBE-IPVS-OUT-FILTER")["KUBE-IPVS-OUT-FILTER"] == []
    assert chains(p, "KUBE-SOURCE-RANGES-FIREWALL")["KUBE-SOURCE-RANGES-FIREWALL"] == [
        ("RETURN", S.LOAD_BALANCER_SOURCE_CIDR, ""), ("RETURN", S.LOAD_BALANCER_SOURCE_IP, ""), ("DROP", "", "")]


def test_accept_ipvs_traffic_after_the_external_ip_rules():
    services = [svc("ns1", "svc1", type="ClusterIP", clusterIP="10.20.30.40", externalIPs=["5.6.7.8"],
                    ports=[port(node_port=80)]),
                svc("ns1", "svc2", lb_ip="1.2.3.4", type="LoadBalancer", clusterIP="10.20.30.41",
                    ports=[port(node_port=80)]),
                svc("ns1", "svc3", type="NodePort", clusterIP="10.20.30.42", ports=[port(node_port=80)])]
    p = run(services)
    assert chains(p, "KUBE-SERVICES")["KUBE-SERVICES"] == [
        ("RETURN", "", "127.0.0.0/8"), ("KUBE-LOAD-BALANCER", S.LOAD_BALANCER, ""),
        ("KUBE-MARK-MASQ", S.CLUSTER_IP, ""), ("KUBE-MARK-MASQ", S.EXTERNAL_IP, ""),
        ("ACCEPT", S.EXTERNAL_IP, ""), ("ACCEPT", S.EXTERNAL_IP, ""), ("KUBE-NODE-PORT", "", ""),
        ("ACCEPT", S.CLUSTER_IP, ""), ("ACCEPT", S.LOAD_BALANCER, "")]


def test_only_local_load_balancing():
    p = run([svc("ns1", "svc1", lb_ip="1.2.3.4", type="LoadBalancer", clusterIP="10.20.30.41",
                 externalTrafficPolicy="Local", ports=[port(node_port=3001)])],
            [eps("ns1", "svc1", [ep("10.180.0.1", NODE), ep("10.180.1.1", "other-node")])])
    assert ipvs(p)[("1.2.3.4", 80, "TCP")] == ["10.180.0.1:80"] and len(p.services) == 2
    assert entries(p, S.LOAD_BALANCER) == entries(p, S.LOAD_BALANCER_LOCAL) == ["1.2.3.4,tcp:80"]
    assert chains(p, "KUBE-LOAD-BALANCER")["KUBE-LOAD-BALANCER"] == [
        ("RETURN", S.LOAD_BALANCER_LOCAL, ""), ("KUBE-MARK-MASQ", "", "")]


@pytest.mark.parametrize("ip_mode, expected", [("Proxy", 1), ("VIP", 2), (None, 2)])
def test_load_balancer_ingress_in_proxy_mode_gets_no_virtual_server(ip_mode, expected):
    p = run([svc("ns1", "svc1", lb_ip="1.2.3.4", ip_mode=ip_mode, type="LoadBalancer", clusterIP="10.20.30.41",
                 ports=[port(node_port=3001)])],
            [eps("ns1", "svc1", [ep("10.180.0.1")])])
    assert len(p.services) == expected


# ---- affinity, masquerade, the fixed chains ---------------------------------------------------

def test_session_affinity_timeout_on_every_virtual_server():
    p = run([svc("ns1", "svc1", type="NodePort", clusterIP="10.20.30.41", externalIPs=["50.60.70.81"],
                 sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}},
                 ports=[port(node_port=3001)])], node_ips=["100.101.102.103"])
    assert len(p.services) == 3
    assert all(vs.flags & FLAG_PERSISTENT and vs.timeout == 10800 for vs in p.services.values())


def test_mh_scheduler_hashes_the_source_port_too():
    p = run([svc("ns1", "svc1", clusterIP="10.20.30.41", ports=[port()])], scheduler="mh")
    assert [(vs.scheduler, vs.flags) for vs in p.services.values()] == [("mh", 0x10)]


@pytest.mark.parametrize("random_fully", [False, True])
def test_masquerade_rule_random_fully(random_fully):
    p = run([], random_fully=random_fully)
    masq = [line for line in p.iptables.splitlines() if "-j MASQUERADE" in line and "KUBE-POSTROUTING" in line]
    assert len(masq) == 1 and masq[0].endswith("--random-fully") == random_fully


@pytest.mark.parametrize("family, source", [("IPv4", "127.0.0.0/8"), ("IPv6", "::1/128")])
def test_dismiss_localhost_is_the_first_rule(family, source):
    assert chains(run([], family=family), "KUBE-SERVICES")["KUBE-SERVICES"][0] == ("RETURN", "", source)


def test_create_and_link_kube_chains_in_upstreams_order():
    text = run([]).iptables
    declared = [line for line in text.splitlines() if line.startswith(":")]
    assert declared == [":KUBE-SERVICES - [0:0]", ":KUBE-POSTROUTING - [0:0]", ":KUBE-NODE-PORT - [0:0]",
                        ":KUBE-LOAD-BALANCER - [0:0]", ":KUBE-MARK-MASQ - [0:0]",
                        ":KUBE-FORWARD - [0:0]", ":KUBE-NODE-PORT - [0:0]", ":KUBE-PROXY-FIREWALL - [0:0]",
                        ":KUBE-SOURCE-RANGES-FIREWALL - [0:0]", ":KUBE-IPVS-FILTER - [0:0]",
                        ":KUBE-IPVS-OUT-FILTER - [0:0]"]
    assert [(j.table, j.src_chain, j.dst_chain) for j in rules.jump_rules()] == [
        ("nat", "OUTPUT", "KUBE-SERVICES"), ("nat", "PREROUTING", "KUBE-SERVICES"),
        ("nat", "POSTROUTING", "KUBE-POSTROUTING"), ("filter", "FORWARD", "KUBE-FORWARD"),
        ("filter", "INPUT", "KUBE-NODE-PORT"), ("filter", "INPUT", "KUBE-PROXY-FIREWALL"),
        ("filter", "FORWARD", "KUBE-PROXY-FIREWALL"), ("filter", "INPUT", "KUBE-IPVS-FILTER"),
        ("filter", "OUTPUT", "KUBE-IPVS-OUT-FILTER")]


def test_cluster_ip_masquerade_follows_local_traffic_detection():
    services = [svc("ns1", "svc1", clusterIP="10.20.30.41", ports=[port()])]
    no_detect = run(services).iptables
    assert "--match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ" in no_detect
    node = NodeInfo(NODE, (), "10.244.0.0/16")
    detect = plan(service_port_map(services, node), {}, node_context(node, ProxyConfig(), ())).iptables
    assert "--match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ" in detect
    assert "--match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ" in run(services, masquerade_all=True).iptables


# ---- endpoints: loopback entries, policies, terminating ---------------------------------------

E2E_SERVICE = svc("ns1", "svc1", clusterIP="172.20.1.1", selector={"foo": "bar"}, ports=[{"name": "", "port": 80,
                                                                                          "protocol": "TCP"}])


def e2e_slice(endpoints):
    return eps("ns1", "svc1", endpoints, ports=(("", 80, "TCP"),))


def test_endpoint_slice_e2e_ready_endpoints_and_the_local_loop_back_entry():
    p = run([E2E_SERVICE], [e2e_slice([ep("10.0.1.1", NODE, ready=True), ep("10.0.1.2", "node2", ready=True),
                                       ep("10.0.1.3", "node3", ready=True), ep("10.0.1.4", "node3", ready=False)])])
    assert entries(p, S.LOOP_BACK) == ["10.0.1.1,tcp:80,10.0.1.1"]
    assert ipvs(p) == {("172.20.1.1", 80, "TCP"): ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:80"]}
    gone = run([E2E_SERVICE], [])
    assert entries(gone, S.LOOP_BACK) == [] and ipvs(gone) == {("172.20.1.1", 80, "TCP"): []}


@pytest.mark.parametrize("policy, nodes, local_entries, expected", [
    ("Cluster", (NODE, "node1", "node2"), 1, ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:80"]),
    ("Cluster", ("node0", "node1", "node2"), 0, ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:80"]),
    ("Local", (NODE, "node1", "node2"), 1, ["10.0.1.1:80"]),
    ("Local", ("node0", "node1", "node2"), 0, []),
])
def test_internal_traffic_policy(policy, nodes, local_entries, expected):
    service = E2E_SERVICE | {"spec": E2E_SERVICE["spec"] | {"internalTrafficPolicy": policy}}
    p = run([service], [e2e_slice([ep(f"10.0.1.{i}", n, ready=True) for i, n in enumerate(nodes, 1)])])
    assert len(entries(p, S.LOOP_BACK)) == local_entries
    assert ipvs(p) == {("172.20.1.1", 80, "TCP"): expected}


TERMINATING = [ep("10.0.1.1", NODE, True, True, False), ep("10.0.1.2", NODE, True, True, False),
               ep("10.0.1.3", NODE, False, True, True), ep("10.0.1.4", NODE, False, False, True),
               ep("10.0.1.5", "another-node", True, True, False)]
ONLY_TERMINATING = [ep("10.0.1.1", NODE, False, True, True), ep("10.0.1.2", NODE, False, True, True),
                    ep("10.0.1.3", NODE, False, False, True), ep("10.0.1.4", "another-node", False, True, True),
                    ep("10.0.1.5", "another-node", False, False, False)]
# upstream's Local variant has a ready endpoint elsewhere: the ClusterIP takes it, the external IP
# falls back to this node's serving+terminating ones
ONLY_TERMINATING_HERE = [*ONLY_TERMINATING[:4], ep("10.0.1.5", "another-node", True, True, False)]


def terminating_service(etp):
    return svc("ns1", "svc1", clusterIP="172.20.1.1", selector={"foo": "bar"}, type="NodePort",
               externalTrafficPolicy=etp, internalTrafficPolicy="Cluster", externalIPs=["1.2.3.4"],
               ports=[{"name": "", "port": 80, "protocol": "TCP"}])


@pytest.mark.parametrize("etp, endpoints, loop_back, cluster, external", [
    ("Cluster", TERMINATING, 4, ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.5:80"],
     ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.5:80"]),
    ("Local", TERMINATING, 4, ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.5:80"], ["10.0.1.1:80", "10.0.1.2:80"]),
    ("Cluster", ONLY_TERMINATING, 3, ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.4:80"],
     ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.4:80"]),
    ("Local", ONLY_TERMINATING_HERE, 3, ["10.0.1.5:80"], ["10.0.1.1:80", "10.0.1.2:80"]),
], ids=["ready-and-terminating-cluster", "ready-and-terminating-local", "only-terminating-cluster",
        "only-terminating-local"])
def test_terminating_endpoints(etp, endpoints, loop_back, cluster, external):
    """Ready endpoints win; with none ready the serving+terminating ones are the fallback."""
    p = run([terminating_service(etp)], [e2e_slice(endpoints)])
    assert len(entries(p, S.LOOP_BACK)) == loop_back
    assert ipvs(p) == {("172.20.1.1", 80, "TCP"): cluster, ("1.2.3.4", 80, "TCP"): external}
    assert ipvs(run([terminating_service(etp)], [])) == {("172.20.1.1", 80, "TCP"): [], ("1.2.3.4", 80, "TCP"): []}


@pytest.mark.parametrize("itp, etp, nodes, internal, external", [
    ("Local", None, (NODE, "node1", "node2"), 0, 0),
    (None, "Local", (NODE, "node1", "node2"), 0, 0),
    ("Local", "Local", (NODE, "node1", "node2"), 0, 0),
    ("Local", None, ("node0", "node1", "node2"), 1, 0),
    (None, "Local", ("node0", "node1", "node2"), 0, 1),
    ("Local", "Local", ("node0", "node1", "node2"), 1, 1),
    ("Local", "Local", (), 0, 0),
])
def test_no_local_endpoints_metric(itp, etp, nodes, internal, external):
    spec = {"clusterIP": "172.20.1.1", "selector": {"foo": "bar"},
            "ports": [{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 30000}]}
    if itp:
        spec["internalTrafficPolicy"] = itp
    if etp:
        spec |= {"type": "NodePort", "externalTrafficPolicy": etp}
    p = run([svc("ns1", "svc1", **spec)], [eps("ns1", "svc1", [ep(f"10.0.1.{i}", n, ready=True)
                                                               for i, n in enumerate(nodes, 1)])],
            node_ips=["10.0.0.1"])
    assert p.no_local == {"internal": internal, "external": external}


# ---- kube-ipvs0 addresses over a Service's life (TestMultiPortServiceBindAddr) --------------------

def test_multi_port_service_binds_its_address_once_and_unbinds_it_when_gone():
    node = NodeInfo(NODE, (), None)
    config = ProxyConfig()
    ctx = node_context(node, config, ())
    cache = PlanCache()

    def sync(ports, changed=True):
        service = svc("ns1", "svc1", type="ClusterIP", clusterIP="172.16.55.4", ports=ports) if ports else None
        svc_map = service_port_map([service], node) if service else {}
        delta = cache.refresh(svc_map, {}, ctx, config, [("ns1", "svc1")] if changed else None)
        return delta, cache.plan()

    delta, p = sync([port("port1", 1234), port("port2", 1235)], changed=False)
    assert p.bind == {"172.16.55.4"} and entries(p, S.IPVS_IPS) == ["172.16.55.4"]
    delta, p = sync([port("port1", 1234)])
    assert p.bind == {"172.16.55.4"} and not delta.bind_added and not delta.bind_removed
    delta, p = sync([port("port1", 1234), port("port2", 1235), port("port3", 1236, "UDP")])
    assert p.bind == {"172.16.55.4"} and len(p.services) == 3 and not delta.bind_removed
    delta, p = sync([])
    assert p.bind == frozenset() and delta.bind_removed == {"172.16.55.4"} and p.services == {}
