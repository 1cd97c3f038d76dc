"""Packet-flow tables over OUR builder's output: upstream's scenarios, upstream's expectations.

The Services and EndpointSlices of upstream's proxier_test.go tests (TestLoadBalancer,
TestExternalTrafficPolicyLocal/Cluster, TestNoEndpointsReject, TestClusterIPGeneral, TestNodePorts,
TestOverallIPTablesRules) go through netemu.agent.proxy.iptables.render; the tracer then answers
upstream's packetFlowTest tables over the text, read the way upstream's runPacketFlowTests does.
"""

from __future__ import annotations

import pytest

from netemu.agent.proxy.iptables import UPSTREAM_TEST_NODE, render
from netemu.agent.proxy.xtables.dump import parse
from netemu.agent.proxy.iptables.trace import Tracer
from netemu.agent.proxy.tracing import Packet
from tests.unit.test_trace_fixtures import EXTERNAL_CLIENT, EXTERNAL_CLIENT_BLOCKED, NODE_IP, NODE_IPS
from tests.unit.test_trace_upstream import ETP_LOCAL_CASES, LOAD_BALANCER_CASES, NO_ENDPOINTS_CASES, upstream_output


def svc(ns, name, lb_ips=(), **spec):
    obj = {"metadata": {"namespace": ns, "name": name}, "spec": spec}
    if lb_ips:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb_ips]}}
    return obj


def eps(ns, name, endpoints, ports=(("p80", 80, "TCP"),)):
    return {"metadata": {"namespace": ns, "name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]}


def p80(**kw):
    return [dict(name="p80", port=80, protocol="TCP", **kw)]


def rules(services, slices) -> str:
    problems: list[str] = []
    text = render(services, slices, UPSTREAM_TEST_NODE, problems=problems).text
    assert problems == []
    return text


def trace(text, src, dst, port, proto="tcp"):
    return Tracer(parse(text)).trace(Packet(src, dst, port, proto), NODE_IPS)


def check(text, cases):
    for name, src, dst, port, output, masq, *proto in cases:
        got = upstream_output(trace(text, src, dst, port, *proto))
        assert got == (output, masq), name


LOAD_BALANCER = ([svc("ns1", "svc1", ["1.2.3.4", "5.6.7.8"], type="LoadBalancer", clusterIP="172.30.0.41",
                      ports=p80(nodePort=3001),
                      loadBalancerSourceRanges=["192.168.0.0/24", " 203.0.113.0/25"])],
                 [eps("ns1", "svc1", [{"addresses": ["10.180.0.1"]}])])


def _lb_policy(policy):
    return ([svc("ns1", "svc1", ["1.2.3.4"], type="LoadBalancer", externalTrafficPolicy=policy,
                 clusterIP="172.30.0.41", externalIPs=["192.168.99.11"], healthCheckNodePort=30000,
                 ports=p80(nodePort=3001, targetPort=80))],
            [eps("ns1", "svc1", [{"addresses": ["10.180.0.1"]},
                                 {"addresses": ["10.180.2.1"], "nodeName": "test-node"}])])


_BOTH = "10.180.0.1:80, 10.180.2.1:80"
ETP_CLUSTER_CASES = [
    ("pod to cluster IP hits both endpoints, unmasqueraded", "10.0.0.2", "172.30.0.41", 80, _BOTH, False),
    ("pod to external IP hits both endpoints, masqueraded", "10.0.0.2", "192.168.99.11", 80, _BOTH, True),
    ("external to external IP hits both endpoints, masqueraded", EXTERNAL_CLIENT, "192.168.99.11", 80, _BOTH, True),
    ("pod to LB IP hits both endpoints, masqueraded", "10.0.0.2", "1.2.3.4", 80, _BOTH, True),
    ("external to LB IP hits both endpoints, masqueraded", EXTERNAL_CLIENT, "1.2.3.4", 80, _BOTH, True),
    ("pod to NodePort hits both endpoints, masqueraded", "10.0.0.2", NODE_IP, 3001, _BOTH, True),
    ("external to NodePort hits both endpoints, masqueraded", EXTERNAL_CLIENT, NODE_IP, 3001, _BOTH, True),
]

CLUSTER_IP_GENERAL = (
    [svc("ns1", "svc1", clusterIP="172.30.0.41", ports=[dict(name="http", port=80, protocol="TCP")]),
     svc("ns2", "svc2", clusterIP="172.30.0.42", ports=[
         dict(name="http", port=80, protocol="TCP"),
         dict(name="https", port=443, protocol="TCP", targetPort=8443),
         dict(name="dns-udp", port=53, protocol="UDP"),
         dict(name="dns-tcp", port=53, protocol="TCP", targetPort=5353),
         dict(name="dns-sctp", port=53, protocol="SCTP")])],
    [eps("ns1", "svc1", [{"addresses": ["10.180.0.1"], "nodeName": "test-node"}], ports=(("http", 80, "TCP"),)),
     eps("ns2", "svc2", [{"addresses": ["10.180.0.1"], "nodeName": "test-node"},
                         {"addresses": ["10.180.2.1"], "nodeName": "node2"}],
         ports=(("http", 80, "TCP"), ("https", 8443, "TCP"), ("dns-udp", 53, "UDP"),
                ("dns-tcp", 5353, "TCP"), ("dns-sctp", 53, "SCTP")))])
CLUSTER_IP_GENERAL_CASES = [
    ("simple clusterIP", "10.180.0.2", "172.30.0.41", 80, "10.180.0.1:80", False),
    ("hairpin to cluster IP", "10.180.0.1", "172.30.0.41", 80, "10.180.0.1:80", True),
    ("clusterIP with multiple endpoints", "10.180.0.2", "172.30.0.42", 80, "10.180.0.1:80, 10.180.2.1:80", False),
    ("clusterIP with TargetPort", "10.180.0.2", "172.30.0.42", 443, "10.180.0.1:8443, 10.180.2.1:8443", False),
    ("clusterIP with TCP, UDP, and SCTP on same port (TCP)", "10.180.0.2", "172.30.0.42", 53,
     "10.180.0.1:5353, 10.180.2.1:5353", False, "tcp"),
    ("clusterIP with TCP, UDP, and SCTP on same port (UDP)", "10.180.0.2", "172.30.0.42", 53,
     "10.180.0.1:53, 10.180.2.1:53", False, "udp"),
    ("clusterIP with TCP, UDP, and SCTP on same port (SCTP)", "10.180.0.2", "172.30.0.42", 53,
     "10.180.0.1:53, 10.180.2.1:53", False, "sctp"),
    ("TCP-only port does not match UDP traffic", "10.180.0.2", "172.30.0.42", 80, "", False, "udp"),
    ("svc1 does not accept svc2's ports", "10.180.0.2", "172.30.0.41", 443, "", False),
]

NODE_PORTS = ([svc("ns1", "svc1", type="NodePort", clusterIP="172.30.0.41", ports=p80(nodePort=3001))],
              [eps("ns1", "svc1", [{"addresses": ["10.180.0.1"]},
                                   {"addresses": ["10.180.2.1"], "nodeName": "test-node"}])])
NODE_PORTS_CASES = [   # upstream TestNodePorts, "ipv4, localhost-nodeports enabled"
    ("pod to cluster IP", "10.0.0.2", "172.30.0.41", 80, _BOTH, False),
    ("external to nodePort", EXTERNAL_CLIENT, NODE_IP, 3001, _BOTH, True),
    ("node to nodePort", NODE_IP, NODE_IP, 3001, _BOTH, True),
    ("localhost to nodePort gets masqueraded", "127.0.0.1", "127.0.0.1", 3001, _BOTH, True),
    ("external to nodePort on secondary IP", EXTERNAL_CLIENT, "192.168.1.2", 3001, _BOTH, True),
]


def test_load_balancer_source_ranges():
    check(rules(*LOAD_BALANCER), LOAD_BALANCER_CASES)


def test_external_traffic_policy_local():
    check(rules(*_lb_policy("Local")), ETP_LOCAL_CASES)


def test_external_traffic_policy_cluster():
    check(rules(*_lb_policy("Cluster")), ETP_CLUSTER_CASES)


def test_no_endpoints_reject():
    services = [svc("ns1", "svc1", ["1.2.3.4"], type="LoadBalancer", clusterIP="172.30.0.41",
                    externalIPs=["192.168.99.11"], ports=p80(nodePort=3001))]
    check(rules(services, []), NO_ENDPOINTS_CASES)


def test_cluster_ip_general():
    check(rules(*CLUSTER_IP_GENERAL), CLUSTER_IP_GENERAL_CASES)


def test_node_ports():
    check(rules(*NODE_PORTS), NODE_PORTS_CASES)


def test_three_endpoints_a_third_each_and_affinity():
    three = [{"addresses": [f"10.180.0.{i}"]} for i in (1, 2, 3)]
    text = rules([svc("ns7", "svc7", clusterIP="172.30.0.47", ports=p80()),
                  svc("ns8", "svc8", clusterIP="172.30.0.48", ports=p80(), sessionAffinity="ClientIP",
                      sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})],
                 [eps("ns7", "svc7", three), eps("ns8", "svc8", three)])
    plain = trace(text, "10.0.0.2", "172.30.0.47", 80)
    assert plain.affinity is None
    assert plain.endpoints() == pytest.approx({f"10.180.0.{i}:80": 1 / 3 for i in (1, 2, 3)})
    sticky = trace(text, "10.0.0.2", "172.30.0.48", 80)
    assert sticky.affinity and "600 s" in sticky.affinity
    assert sticky.endpoints() == pytest.approx({f"10.180.0.{i}:80": 1 / 3 for i in (1, 2, 3)})


def test_etp_local_without_local_endpoints_drops_external_only():
    text = rules([svc("ns2", "svc2", ["1.2.3.4"], type="LoadBalancer", externalTrafficPolicy="Local",
                      clusterIP="172.30.0.42", ports=p80(nodePort=3001), healthCheckNodePort=30000)],
                 [eps("ns2", "svc2", [{"addresses": ["10.180.0.2"]}])])
    assert upstream_output(trace(text, EXTERNAL_CLIENT, "1.2.3.4", 80)) == ("DROP", False)
    assert upstream_output(trace(text, EXTERNAL_CLIENT, NODE_IP, 3001)) == ("DROP", False)
    assert upstream_output(trace(text, "10.0.0.2", "1.2.3.4", 80)) == ("10.180.0.2:80", False)
    assert upstream_output(trace(text, "1.2.3.4", NODE_IP, 30000)) == ("ACCEPT", False)


def test_blocked_source_range_from_builder_names_the_firewall():
    result = trace(rules(*LOAD_BALANCER), EXTERNAL_CLIENT_BLOCKED, "5.6.7.8", 80)
    (o,) = result.outcomes
    assert o.verdict == "DROP" and "KUBE-PROXY-FIREWALL" in o.verdict_by
