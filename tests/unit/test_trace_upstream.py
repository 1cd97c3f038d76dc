"""Packet-flow tables ported literally from upstream kube-proxy's proxier_test.go.

Each case is upstream's packetFlowTest (name, source, destination, port, expected output and
masquerade) run through our tracer over the matching dump (see test_trace_fixtures). Upstream's
"output" is the DNAT destinations joined by ", ", or DROP/REJECT/ACCEPT when the filter table
decides, or "" when nothing of kube-proxy's applies; `upstream_output` reads ours the same way.
"""

from __future__ import annotations

import pytest

from netemu.agent.proxy.xtables.dump import parse
from netemu.agent.proxy.iptables.trace import Tracer
from netemu.agent.proxy.tracing import Packet
from tests.unit.test_trace_fixtures import (EXTERNAL_CLIENT, EXTERNAL_CLIENT_BLOCKED, ETP_LOCAL,
                                            LOAD_BALANCER, NO_ENDPOINTS, NODE_IP, NODE_IPS,
                                            THREE_ENDPOINTS, UPSTREAM_OVERALL,
                                            UPSTREAM_TRACE_PACKET)


def upstream_output(result) -> tuple[str, bool]:
    parts: list[str] = []
    for o in result.outcomes:
        if o.verdict in ("DROP", "REJECT"):
            parts.append(o.verdict)
        elif o.destination:
            parts.append(o.destination)
        elif o.verdict_by:
            parts.append("ACCEPT")
    return ", ".join(dict.fromkeys(parts)), any(o.masquerade for o in result.outcomes)


def run(dump: str, src: str, dst: str, port: int, proto: str = "tcp"):
    return Tracer(parse(dump)).trace(Packet(src, dst, port, proto), NODE_IPS)


# (name, source, destination, port, output, masq)
TRACE_PACKET = [
    ("no match", "10.0.0.2", "10.0.0.3", 80, "", False),
    ("single endpoint", "10.0.0.2", "172.30.0.41", 80, "10.180.0.1:80", False),
    ("multiple endpoints", "10.0.0.2", "172.30.0.44", 80, "10.180.0.4:80, 10.180.0.5:80", False),
    ("LOCAL, KUBE-MARK-MASQ", NODE_IP, "192.168.99.22", 80, "10.180.0.2:80", True),
    ("DROP", EXTERNAL_CLIENT, "192.168.99.22", 80, "DROP", False),
    ("ACCEPT (NodePortHealthCheck)", NODE_IP, NODE_IP, 30000, "ACCEPT", False),
    ("REJECT", "10.0.0.2", "172.30.0.46", 80, "REJECT", False),
]

LOAD_BALANCER_CASES = [
    ("pod to cluster IP", "10.0.0.2", "172.30.0.41", 80, "10.180.0.1:80", False),
    ("external to nodePort", EXTERNAL_CLIENT, NODE_IP, 3001, "10.180.0.1:80", True),
    ("nodePort bypasses LoadBalancerSourceRanges", EXTERNAL_CLIENT_BLOCKED, NODE_IP, 3001, "10.180.0.1:80", True),
    ("accepted external to LB1", EXTERNAL_CLIENT, "1.2.3.4", 80, "10.180.0.1:80", True),
    ("accepted external to LB2", EXTERNAL_CLIENT, "5.6.7.8", 80, "10.180.0.1:80", True),
    ("blocked external to LB1", EXTERNAL_CLIENT_BLOCKED, "1.2.3.4", 80, "DROP", False),
    ("blocked external to LB2", EXTERNAL_CLIENT_BLOCKED, "5.6.7.8", 80, "DROP", False),
    ("pod to LB1 (blocked by LoadBalancerSourceRanges)", "10.0.0.2", "1.2.3.4", 80, "DROP", False),
    ("pod to LB2 (blocked by LoadBalancerSourceRanges)", "10.0.0.2", "5.6.7.8", 80, "DROP", False),
    ("node to LB1 (allowed by LoadBalancerSourceRanges)", NODE_IP, "1.2.3.4", 80, "10.180.0.1:80", True),
    ("node to LB2 (allowed by LoadBalancerSourceRanges)", NODE_IP, "5.6.7.8", 80, "10.180.0.1:80", True),
    ("same node to LB1, SNATted to LB1 (implicitly allowed)", "1.2.3.4", "1.2.3.4", 80, "10.180.0.1:80", True),
    ("same node to LB2, SNATted to LB2 (implicitly allowed)", "5.6.7.8", "5.6.7.8", 80, "10.180.0.1:80", True),
]

_BOTH = "10.180.0.1:80, 10.180.2.1:80"
_LOCAL = "10.180.2.1:80"
ETP_LOCAL_CASES = [
    ("pod to cluster IP hits both endpoints, unmasqueraded", "10.0.0.2", "172.30.0.41", 80, _BOTH, False),
    ("pod to external IP hits both endpoints, unmasqueraded", "10.0.0.2", "192.168.99.11", 80, _BOTH, False),
    ("external to external IP hits only local endpoint, unmasqueraded", EXTERNAL_CLIENT, "192.168.99.11", 80, _LOCAL, False),
    ("pod to LB IP hits only both endpoints, unmasqueraded", "10.0.0.2", "1.2.3.4", 80, _BOTH, False),
    ("external to LB IP hits only local endpoint, unmasqueraded", EXTERNAL_CLIENT, "1.2.3.4", 80, _LOCAL, False),
    ("pod to NodePort hits both endpoints, unmasqueraded", "10.0.0.2", NODE_IP, 3001, _BOTH, False),
    ("external to NodePort hits only local endpoint, unmasqueraded", EXTERNAL_CLIENT, NODE_IP, 3001, _LOCAL, False),
]

NO_ENDPOINTS_CASES = [
    ("pod to cluster IP with no endpoints", "10.0.0.2", "172.30.0.41", 80, "REJECT", False),
    ("external to external IP with no endpoints", EXTERNAL_CLIENT, "192.168.99.11", 80, "REJECT", False),
    ("pod to NodePort with no endpoints", "10.0.0.2", NODE_IP, 3001, "REJECT", False),
    ("external to NodePort with no endpoints", EXTERNAL_CLIENT, NODE_IP, 3001, "REJECT", False),
    ("pod to LoadBalancer IP with no endpoints", "10.0.0.2", "1.2.3.4", 80, "REJECT", False),
    ("external to LoadBalancer IP with no endpoints", EXTERNAL_CLIENT, "1.2.3.4", 80, "REJECT", False),
]

# Our own cases over upstream's TestOverallIPTablesRules output (no built-in chains in it).
OVERALL_CASES = [
    ("hairpin to cluster IP", "10.180.0.1", "172.30.0.41", 80, "10.180.0.1:80", True),
    ("non-pod source to cluster IP is masqueraded", "192.168.0.5", "172.30.0.41", 80, "10.180.0.1:80", True),
    ("external to NodePort (Cluster policy)", EXTERNAL_CLIENT, NODE_IP, 3003, "10.180.0.3:80", True),
    ("external to ETP-Local LB IP without local endpoints", EXTERNAL_CLIENT, "1.2.3.4", 80, "DROP", False),
    ("external to ETP-Local NodePort without local endpoints", EXTERNAL_CLIENT, NODE_IP, 3001, "DROP", False),
    ("pod to ETP-Local LB IP goes to the cluster endpoints", "10.0.0.2", "1.2.3.4", 80, "10.180.0.2:80", False),
    ("allowed source to firewalled LB", EXTERNAL_CLIENT, "5.6.7.8", 80, "10.180.0.3:80", True),
    ("blocked source to firewalled LB", EXTERNAL_CLIENT_BLOCKED, "5.6.7.8", 80, "DROP", False),
    ("health check node port", "1.2.3.4", NODE_IP, 30000, "ACCEPT", False),
    ("no endpoints", "10.0.0.2", "172.30.0.46", 80, "REJECT", False),
    ("wrong port", "10.0.0.2", "172.30.0.41", 81, "", False),
]


def _ids(cases):
    return [c[0] for c in cases]


@pytest.mark.parametrize("name,src,dst,port,output,masq", TRACE_PACKET, ids=_ids(TRACE_PACKET))
def test_upstream_trace_packet(name, src, dst, port, output, masq):
    assert upstream_output(run(UPSTREAM_TRACE_PACKET, src, dst, port)) == (output, masq)


@pytest.mark.parametrize("name,src,dst,port,output,masq", LOAD_BALANCER_CASES, ids=_ids(LOAD_BALANCER_CASES))
def test_upstream_load_balancer_source_ranges(name, src, dst, port, output, masq):
    assert upstream_output(run(LOAD_BALANCER, src, dst, port)) == (output, masq)


@pytest.mark.parametrize("name,src,dst,port,output,masq", ETP_LOCAL_CASES, ids=_ids(ETP_LOCAL_CASES))
def test_upstream_external_traffic_policy_local(name, src, dst, port, output, masq):
    assert upstream_output(run(ETP_LOCAL, src, dst, port)) == (output, masq)


@pytest.mark.parametrize("name,src,dst,port,output,masq", NO_ENDPOINTS_CASES, ids=_ids(NO_ENDPOINTS_CASES))
def test_upstream_no_endpoints_reject(name, src, dst, port, output, masq):
    assert upstream_output(run(NO_ENDPOINTS, src, dst, port)) == (output, masq)


@pytest.mark.parametrize("name,src,dst,port,output,masq", OVERALL_CASES, ids=_ids(OVERALL_CASES))
def test_overall_rules(name, src, dst, port, output, masq):
    assert upstream_output(run(UPSTREAM_OVERALL, src, dst, port)) == (output, masq)


def test_three_endpoints_have_a_third_each():
    result = run(THREE_ENDPOINTS, "10.0.0.2", "172.30.0.47", 80)
    eps = result.endpoints()
    assert sorted(eps) == ["10.180.0.1:80", "10.180.0.2:80", "10.180.0.3:80"]
    for p in eps.values():
        assert p == pytest.approx(1 / 3, abs=1e-9)
    # the first rule's endpoint is reached with the rule's own probability
    assert [o.destination for o in result.outcomes][0] == "10.180.0.1:80"
    assert result.outcomes[0].endpoint_chain == "KUBE-SEP-WKF2XPYBSFUPCTHA"


def test_two_endpoints_chain_path_and_probabilities():
    result = run(UPSTREAM_TRACE_PACKET, "10.0.0.2", "172.30.0.44", 80)
    assert result.endpoints() == {"10.180.0.4:80": 0.5, "10.180.0.5:80": 0.5}
    first = result.outcomes[0]
    assert first.chains[:4] == ["nat:PREROUTING", "nat:KUBE-SERVICES", "nat:KUBE-SVC-4SW47YFZTEDKD3PK",
                                "nat:KUBE-SEP-UKSFD7AGPMPPLUHC"]
    assert first.route == "forward" and not first.masquerade


def test_affinity_first_connection_then_sticky():
    result = run(UPSTREAM_OVERALL, "10.0.0.2", "172.30.0.45", 80)
    assert result.affinity and "later ones stick to the endpoint chosen" in result.affinity
    assert "10800" in result.affinity
    assert result.endpoints() == {"10.180.0.3:80": 1.0}


def test_etp_local_external_keeps_source_and_uses_local_endpoint_only():
    result = run(ETP_LOCAL, EXTERNAL_CLIENT, NODE_IP, 3001)
    assert result.endpoints() == {"10.180.2.1:80": 1.0}
    assert [o.masquerade for o in result.outcomes] == [False]
    assert "nat:KUBE-SVL-XPGD46QRK7WJZT7O" in result.outcomes[0].chains


def test_firewall_drop_names_the_rule():
    result = run(LOAD_BALANCER, EXTERNAL_CLIENT_BLOCKED, "1.2.3.4", 80)
    (o,) = result.outcomes
    assert o.verdict == "DROP" and "KUBE-PROXY-FIREWALL" in o.verdict_by
    assert "nat:KUBE-FW-XPGD46QRK7WJZT7O" in o.chains
