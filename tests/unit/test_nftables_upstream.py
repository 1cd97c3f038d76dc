"""The nftables builder and tracer against upstream kube-proxy's own nftables tests.

TestOverallNFTablesRules' expected table (compared as upstream compares, with its
sortNFTablesTransaction), and the packet-flow tables of TestNoEndpointsReject,
TestClusterIPGeneral, TestLoadBalancer, TestNodePorts, TestExternalTrafficPolicyLocal/Cluster,
TestInternalTrafficPolicy, TestTerminatingEndpointsTrafficPolicyLocal/Cluster and
TestInternalExternalMasquerade, run through our tracer over our builder's table. Source and
commit of the port: nft_upstream_cases.py.
"""

from __future__ import annotations

import pytest

from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from tests.unit.nft_upstream_cases import (BASE_RULES, EXTERNAL_CLIENT, EXTERNAL_CLIENT_BLOCKED, EXTERNAL_IP, HOST,
                                           NODE_IP, NODE_IP_ALT, assert_tables_equal, dedent, ep, eport, eps, flow,
                                           port, svc, upstream_table)

OVERALL_SERVICES = [
    svc("ns1", "svc1", clusterIP="172.30.0.41", ports=[port()]),
    svc("ns2", "svc2", ["1.2.3.4"], type="LoadBalancer", externalTrafficPolicy="Local", clusterIP="172.30.0.42",
        ports=[port(nodePort=3001)], externalIPs=["192.168.99.22"], healthCheckNodePort=30000),
    svc("ns3", "svc3", type="NodePort", clusterIP="172.30.0.43", ports=[port(nodePort=3003)]),
    svc("ns4", "svc4", type="NodePort", clusterIP="172.30.0.44", externalIPs=["192.168.99.33"],
        ports=[port(targetPort=80)]),
    svc("ns5", "svc5", ["5.6.7.8"], type="LoadBalancer", externalTrafficPolicy="Cluster", clusterIP="172.30.0.45",
        ports=[port(nodePort=3002)], healthCheckNodePort=30000, loadBalancerSourceRanges=[" 203.0.113.0/25"],
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}}),
    svc("ns6", "svc6", type="ClusterIP", clusterIP="172.30.0.46", ports=[port(targetPort=80)]),
]
OVERALL_SLICES = [
    eps("ns1", "svc1", [ep("10.180.0.1")]),
    eps("ns2", "svc2", [ep("10.180.0.2")]),
    eps("ns3", "svc3", [ep("10.180.0.3")]),
    eps("ns4", "svc4", [ep("10.180.0.4"), ep("10.180.0.5", HOST)]),
    eps("ns5", "svc5", [ep("10.180.0.3")]),
]

OVERALL_EXPECTED = BASE_RULES + dedent("""
    # svc1
    add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
    add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }

    add chain ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
    add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 ip saddr 10.180.0.1 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80

    add element ip kube-proxy cluster-ips { 172.30.0.41 }
    add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }

    # svc2
    add chain ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80
    add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 ip daddr 172.30.0.42 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 }
    add chain ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80
    add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 ip saddr 10.0.0.0/8 goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit pod traffic"
    add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
    add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit local traffic"
    add chain ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80
    add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 ip saddr 10.180.0.2 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 meta l4proto tcp dnat to 10.180.0.2:80

    add element ip kube-proxy cluster-ips { 172.30.0.42 }
    add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 80 : goto service-42NFTM6N-ns2/svc2/tcp/p80 }
    add element ip kube-proxy service-ips { 192.168.99.22 . tcp . 80 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
    add element ip kube-proxy service-ips { 1.2.3.4 . tcp . 80 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
    add element ip kube-proxy service-nodeports { tcp . 3001 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }

    add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment "ns2/svc2:p80" : drop }
    add element ip kube-proxy no-endpoint-services { 1.2.3.4 . tcp . 80 comment "ns2/svc2:p80" : drop }
    add element ip kube-proxy no-endpoint-services { 192.168.99.22 . tcp . 80 comment "ns2/svc2:p80" : drop }

    # svc3
    add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
    add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 }
    add chain ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80
    add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 jump mark-for-masquerade
    add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 goto service-4AT6LBPK-ns3/svc3/tcp/p80
    add chain ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80
    add rule ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 meta l4proto tcp dnat to 10.180.0.3:80

    add element ip kube-proxy cluster-ips { 172.30.0.43 }
    add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
    add element ip kube-proxy service-nodeports { tcp . 3003 : goto external-4AT6LBPK-ns3/svc3/tcp/p80 }

    # svc4
    add chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80
    add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 ip daddr 172.30.0.44 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 , 1 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }
    add chain ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80
    add rule ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80 jump mark-for-masquerade
    add rule ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80 goto service-LAUZTJTB-ns4/svc4/tcp/p80
    add chain ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80
    add rule ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 ip saddr 10.180.0.5 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 meta l4proto tcp dnat to 10.180.0.5:80
    add chain ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80
    add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 ip saddr 10.180.0.4 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 meta l4proto tcp dnat to 10.180.0.4:80

    add element ip kube-proxy cluster-ips { 172.30.0.44 }
    add element ip kube-proxy service-ips { 172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80 }
    add element ip kube-proxy service-ips { 192.168.99.33 . tcp . 80 : goto external-LAUZTJTB-ns4/svc4/tcp/p80 }

    # svc5
    add set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
    add chain ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80
    add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip daddr 172.30.0.45 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
    add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 }
    add chain ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80
    add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 jump mark-for-masquerade
    add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 goto service-HVFWP5L3-ns5/svc5/tcp/p80

    add chain ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
    add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 update @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { ip saddr }
    add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 meta l4proto tcp dnat to 10.180.0.3:80

    add chain ip kube-proxy firewall-HVFWP5L3-ns5/svc5/tcp/p80
    add rule ip kube-proxy firewall-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr != { 203.0.113.0/25 } drop

    add element ip kube-proxy cluster-ips { 172.30.0.45 }
    add element ip kube-proxy service-ips { 172.30.0.45 . tcp . 80 : goto service-HVFWP5L3-ns5/svc5/tcp/p80 }
    add element ip kube-proxy service-ips { 5.6.7.8 . tcp . 80 : goto external-HVFWP5L3-ns5/svc5/tcp/p80 }
    add element ip kube-proxy service-nodeports { tcp . 3002 : goto external-HVFWP5L3-ns5/svc5/tcp/p80 }
    add element ip kube-proxy firewall-ips { 5.6.7.8 . tcp . 80 : goto firewall-HVFWP5L3-ns5/svc5/tcp/p80 }

    # svc6
    add element ip kube-proxy cluster-ips { 172.30.0.46 }
    add element ip kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain }
""")


def test_overall_nftables_rules():
    table = upstream_table(OVERALL_SERVICES, OVERALL_SLICES)
    assert_tables_equal(OVERALL_EXPECTED, table.dump())


def test_the_comparison_sees_a_missing_line_and_a_reordered_rule():
    """upstream's Test_diffNFTablesTransaction: equal tables compare equal, others do not."""
    dump = upstream_table(OVERALL_SERVICES, OVERALL_SLICES).dump()
    lines = dump.splitlines()
    with pytest.raises(AssertionError):
        assert_tables_equal(OVERALL_EXPECTED, "\n".join(l for l in lines if "svc3" not in l))
    swapped = [l for l in lines if "masquerading" not in l or "add rule" not in l]
    swapped += ["add rule ip kube-proxy masquerading mark set mark xor 0x4000",
                "add rule ip kube-proxy masquerading mark and 0x4000 == 0 return",
                "add rule ip kube-proxy masquerading masquerade fully-random"]
    with pytest.raises(AssertionError):
        assert_tables_equal(OVERALL_EXPECTED, "\n".join(swapped))


# ---- packet flows: (name, source, destination, port, output, masquerade[, protocol]) -----------

def _run(table, cases):
    for case in cases:
        name, src, dst, dport, output, masq, *proto = case
        assert flow(table, src, dst, dport, *(p.lower() for p in proto)) == (output, masq), name


def test_no_endpoints_reject():
    table = upstream_table([svc("ns1", "svc1", ["1.2.3.4"], type="LoadBalancer", clusterIP="172.30.0.41",
                                externalIPs=[EXTERNAL_IP], ports=[port(nodePort=3001)])], [])
    _run(table, [
        ("pod to cluster IP with no endpoints", "10.0.0.2", "172.30.0.41", 80, "REJECT", False),
        ("external to external IP with no endpoints", EXTERNAL_CLIENT, EXTERNAL_IP, 80, "REJECT", False),
        ("pod to NodePort with no endpoints", "10.0.0.2", NODE_IP, 3001, "REJECT", False),
        ("external to NodePort with no endpoints", EXTERNAL_CLIENT, NODE_IP, 3001, "REJECT", False),
        ("pod to LoadBalancer IP with no endpoints", "10.0.0.2", "1.2.3.4", 80, "REJECT", False),
        ("external to LoadBalancer IP with no endpoints", EXTERNAL_CLIENT, "1.2.3.4", 80, "REJECT", False),
    ])


def test_cluster_ip_general():
    services = [
        svc("ns1", "svc1", clusterIP="172.30.0.41", ports=[port("http")]),
        svc("ns2", "svc2", clusterIP="172.30.0.42", ports=[
            port("http"), port("https", 443, targetPort=8443), port("dns-udp", 53, "UDP"),
            port("dns-tcp", 53, targetPort=5353), port("dns-sctp", 53, "SCTP")]),
    ]
    slices = [
        eps("ns1", "svc1", [ep("10.180.0.1", HOST)], [eport("http", 80)]),
        eps("ns2", "svc2", [ep("10.180.0.1", HOST), ep("10.180.2.1", "host2")],
            [eport("http", 80), eport("https", 8443), eport("dns-udp", 53, "UDP"), eport("dns-tcp", 5353),
             eport("dns-sctp", 53, "SCTP")]),
    ]
    _run(upstream_table(services, slices), [
        ("simple clusterIP", "10.180.0.2", "172.30.0.41", 80, "10.180.0.1:80", False),
        ("hairpin to cluster IP", "10.180.0.1", "172.30.0.41", 80, "10.180.0.1:80", True),
        ("clusterIP with multiple endpoints", "10.180.0.2", "172.30.0.42", 80, "10.180.0.1:80, 10.180.2.1:80", False),
        ("clusterIP with TargetPort", "10.180.0.2", "172.30.0.42", 443, "10.180.0.1:8443, 10.180.2.1:8443", False),
        ("clusterIP with TCP, UDP, and SCTP on same port (TCP)", "10.180.0.2", "172.30.0.42", 53,
         "10.180.0.1:5353, 10.180.2.1:5353", False, "TCP"),
        ("clusterIP with TCP, UDP, and SCTP on same port (UDP)", "10.180.0.2", "172.30.0.42", 53,
         "10.180.0.1:53, 10.180.2.1:53", False, "UDP"),
        ("clusterIP with TCP, UDP, and SCTP on same port (SCTP)", "10.180.0.2", "172.30.0.42", 53,
         "10.180.0.1:53, 10.180.2.1:53", False, "SCTP"),
        ("TCP-only port does not match UDP traffic", "10.180.0.2", "172.30.0.42", 80, "REJECT", False, "UDP"),
        ("svc1 does not accept svc2's ports", "10.180.0.2", "172.30.0.41", 443, "REJECT", False),
        ("packet to unallocated cluster ip", "10.180.0.2", "172.30.0.50", 80, "DROP", False),
    ])


def test_load_balancer():
    table = upstream_table(
        [svc("ns1", "svc1", ["1.2.3.4", "5.6.7.8"], type="LoadBalancer", clusterIP="172.30.0.41",
             ports=[port(nodePort=3001)], loadBalancerSourceRanges=["192.168.0.0/24", " 203.0.113.0/25"])],
        [eps("ns1", "svc1", [ep("10.180.0.1")])])
    e = "10.180.0.1:80"
    _run(table, [
        ("pod to cluster IP", "10.0.0.2", "172.30.0.41", 80, e, False),
        ("external to nodePort", EXTERNAL_CLIENT, NODE_IP, 3001, e, True),
        ("nodePort bypasses LoadBalancerSourceRanges", EXTERNAL_CLIENT_BLOCKED, NODE_IP, 3001, e, True),
        ("accepted external to LB1", EXTERNAL_CLIENT, "1.2.3.4", 80, e, True),
        ("accepted external to LB2", EXTERNAL_CLIENT, "5.6.7.8", 80, e, True),
        ("blocked external to LB1", EXTERNAL_CLIENT_BLOCKED, "1.2.3.4", 80, "DROP", False),
        ("blocked external to LB2", EXTERNAL_CLIENT_BLOCKED, "5.6.7.8", 80, "DROP", False),
        ("pod to LB1 (blocked by LoadBalancerSourceRanges)", "10.0.0.2", "1.2.3.4", 80, "DROP", False),
        ("pod to LB2 (blocked by LoadBalancerSourceRanges)", "10.0.0.2", "5.6.7.8", 80, "DROP", False),
        ("node to LB1 (allowed by LoadBalancerSourceRanges)", NODE_IP, "1.2.3.4", 80, e, True),
        ("node to LB2 (allowed by LoadBalancerSourceRanges)", NODE_IP, "5.6.7.8", 80, e, True),
        ("same node to LB1, SNATted to LB1 (implicitly allowed)", "1.2.3.4", "1.2.3.4", 80, e, True),
        ("same node to LB2, SNATted to LB2 (implicitly allowed)", "5.6.7.8", "5.6.7.8", 80, e, True),
    ])


@pytest.mark.parametrize("family,nodeport_addresses,allow_alt", [
    ("IPv4", None, False),
    ("IPv4", ("192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64"), True),
    ("IPv6", None, False),
    ("IPv6", ("192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64", "2001:db8:1::2/128"), True),
], ids=["ipv4", "ipv4, multiple nodeport-addresses", "ipv6", "ipv6, multiple nodeport-addresses"])
def test_node_ports(family, nodeport_addresses, allow_alt):
    v4 = family == "IPv4"
    svc_ip, ep1, ep2 = ("172.30.0.41", "10.180.0.1", "10.180.2.1") if v4 else \
        ("fd00:172:30::41", "fd00:10:180::1", "fd00:10:180::2:1")
    node = NodeInfo(HOST, (NODE_IP, NODE_IP_ALT, EXTERNAL_IP) if v4 else ("2001:db8::1", "2001:db8:1::2"),
                    "10.0.0.0/8" if v4 else "fd00:10::/64", ip_family=family)
    cfg = ProxyConfig(nodeport_addresses=nodeport_addresses or ("192.168.0.2/32", "2001:db8::1/128"))
    table = upstream_table([svc("ns1", "svc1", type="NodePort", clusterIP=svc_ip, ports=[port(nodePort=3001)])],
                           [eps("ns1", "svc1", [ep(ep1), ep(ep2, HOST)], family=family)],
                           node=node, config=cfg, service_cidrs=("172.30.0.0/16", "fd00:10:96::/112"))
    pod, client, node_ip, alt = ("10.0.0.2", EXTERNAL_CLIENT, NODE_IP, NODE_IP_ALT) if v4 else \
        ("fd00:10::2", "2600:5200::1", "2001:db8::1", "2001:db8:1::2")
    out = f"{ep1}:80, {ep2}:80" if v4 else f"[{ep1}]:80, [{ep2}]:80"
    _run(table, [
        ("pod to cluster IP", pod, svc_ip, 80, out, False),
        ("external to nodePort", client, node_ip, 3001, out, True),
        ("node to nodePort", node_ip, node_ip, 3001, out, True),
        ("external to nodePort on secondary IP", client, alt, 3001, out if allow_alt else "", allow_alt),
    ])


def _etp_table(policy):
    return upstream_table(
        [svc("ns1", "svc1", ["1.2.3.4"], type="LoadBalancer", externalTrafficPolicy=policy, clusterIP="172.30.0.41",
             externalIPs=[EXTERNAL_IP], ports=[port(nodePort=3001, targetPort=80)], healthCheckNodePort=30000)],
        [eps("ns1", "svc1", [ep("10.180.0.1"), ep("10.180.2.1", HOST)])])


BOTH, LOCAL = "10.180.0.1:80, 10.180.2.1:80", "10.180.2.1:80"


def test_external_traffic_policy_local():
    _run(_etp_table("Local"), [
        ("pod to cluster IP hits both endpoints, unmasqueraded", "10.0.0.2", "172.30.0.41", 80, BOTH, False),
        ("pod to external IP hits both endpoints, unmasqueraded", "10.0.0.2", EXTERNAL_IP, 80, BOTH, False),
        ("external to external IP hits only local endpoint, unmasqueraded", EXTERNAL_CLIENT, EXTERNAL_IP, 80, LOCAL, False),
        ("pod to LB IP hits only both endpoints, unmasqueraded", "10.0.0.2", "1.2.3.4", 80, BOTH, False),
        ("external to LB IP hits only local endpoint, unmasqueraded", EXTERNAL_CLIENT, "1.2.3.4", 80, LOCAL, False),
        ("pod to NodePort hits both endpoints, unmasqueraded", "10.0.0.2", NODE_IP, 3001, BOTH, False),
        ("external to NodePort hits only local endpoint, unmasqueraded", EXTERNAL_CLIENT, NODE_IP, 3001, LOCAL, False),
    ])


def test_external_traffic_policy_cluster():
    _run(_etp_table("Cluster"), [
        ("pod to cluster IP hits both endpoints, unmasqueraded", "10.0.0.2", "172.30.0.41", 80, BOTH, False),
        ("pod to external IP hits both endpoints, masqueraded", "10.0.0.2", EXTERNAL_IP, 80, BOTH, True),
        ("external to external IP hits both endpoints, masqueraded", EXTERNAL_CLIENT, EXTERNAL_IP, 80, BOTH, True),
        ("pod to LB IP hits both endpoints, masqueraded", "10.0.0.2", "1.2.3.4", 80, BOTH, True),
        ("external to LB IP hits both endpoints, masqueraded", EXTERNAL_CLIENT, "1.2.3.4", 80, BOTH, True),
        ("pod to NodePort hits both endpoints, masqueraded", "10.0.0.2", NODE_IP, 3001, BOTH, True),
        ("external to NodePort hits both endpoints, masqueraded", EXTERNAL_CLIENT, NODE_IP, 3001, BOTH, True),
    ])


@pytest.mark.parametrize("itp,endpoints,output", [
    ("Cluster", [("10.0.1.1", HOST), ("10.0.1.2", "host1"), ("10.0.1.3", "host2")],
     "10.0.1.1:80, 10.0.1.2:80, 10.0.1.3:80"),
    ("Local", [("10.0.1.1", HOST), ("10.0.1.2", "host1"), ("10.0.1.3", "host2")], "10.0.1.1:80"),
    ("Local", [("10.0.1.1", HOST), ("10.0.1.2", HOST), ("10.0.1.3", "host2")], "10.0.1.1:80, 10.0.1.2:80"),
    ("Local", [("10.0.1.1", "host0"), ("10.0.1.2", "host1"), ("10.0.1.3", "host2")], "DROP"),
], ids=["cluster", "local, one local endpoint", "local, several local endpoints", "local, no local endpoints"])
def test_internal_traffic_policy(itp, endpoints, output):
    service = svc("ns1", "svc1", clusterIP="172.30.1.1", internalTrafficPolicy=itp, ports=[port("", 80)])
    slices = [eps("ns1", "svc1", [ep(ip, host, ready=True) for ip, host in endpoints], [eport("", 80)])]
    _run(upstream_table([service], slices), [("pod to ClusterIP", "10.0.0.2", "172.30.1.1", 80, output, False)])
    _run(upstream_table([service], []), [("endpoints deleted", "10.0.0.2", "172.30.1.1", 80, "REJECT", False)])


def _terminating_service(policy):
    return svc("ns1", "svc1", ["1.2.3.4"], type="LoadBalancer", externalTrafficPolicy=policy, clusterIP="172.30.1.1",
               ports=[port("", 80, targetPort=80)], healthCheckNodePort=30000)


READY, SERVING_TERMINATING, NOT_SERVING = (True, True, False), (False, True, True), (False, False, True)


def _cond_ep(ip, node, cond):
    return ep(ip, node, *cond)


TERMINATING_LOCAL = [
    ("ready endpoints exist",
     [("10.0.1.1", HOST, READY), ("10.0.1.2", HOST, READY), ("10.0.1.3", HOST, SERVING_TERMINATING),
      ("10.0.1.4", HOST, NOT_SERVING), ("10.0.1.5", "host-1", READY)],
     ("10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80", False), ("10.0.1.1:80, 10.0.1.2:80", False)),
    ("only terminating endpoints exist",
     [("10.0.1.2", HOST, SERVING_TERMINATING), ("10.0.1.3", HOST, SERVING_TERMINATING),
      ("10.0.1.4", HOST, NOT_SERVING), ("10.0.1.5", "host-1", READY)],
     ("10.0.1.5:80", False), ("10.0.1.2:80, 10.0.1.3:80", False)),
    ("terminating endpoints on remote node", [("10.0.1.5", "host-1", SERVING_TERMINATING)],
     ("10.0.1.5:80", False), ("DROP", False)),
    ("no usable endpoints on any node",
     [("10.0.1.5", HOST, NOT_SERVING), ("10.0.1.5", "host-1", NOT_SERVING)],
     ("REJECT", False), ("REJECT", False)),
]
TERMINATING_CLUSTER = [
    ("ready endpoints exist",
     [("10.0.1.1", HOST, READY), ("10.0.1.2", HOST, READY), ("10.0.1.3", "another-host", SERVING_TERMINATING),
      ("10.0.1.4", "another-host", NOT_SERVING), ("10.0.1.5", "another-host", READY)],
     ("10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80", False), ("10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80", True)),
    ("only terminating endpoints exist",
     [("10.0.1.2", HOST, SERVING_TERMINATING), ("10.0.1.3", HOST, SERVING_TERMINATING),
      ("10.0.1.4", "another-host", NOT_SERVING), ("10.0.1.5", "another-host", SERVING_TERMINATING)],
     ("10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80", False), ("10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80", True)),
    ("terminating endpoints on remote node", [("10.0.1.5", "host-1", SERVING_TERMINATING)],
     ("10.0.1.5:80", False), ("10.0.1.5:80", True)),
    ("no usable endpoints on any node",
     [("10.0.1.5", HOST, NOT_SERVING), ("10.0.1.5", "host-1", NOT_SERVING)],
     ("REJECT", False), ("REJECT", False)),
]


@pytest.mark.parametrize("policy,name,endpoints,to_cluster_ip,to_lb",
                         [("Local", *c) for c in TERMINATING_LOCAL] + [("Cluster", *c) for c in TERMINATING_CLUSTER],
                         ids=[f"Local: {c[0]}" for c in TERMINATING_LOCAL] + [f"Cluster: {c[0]}" for c in TERMINATING_CLUSTER])
def test_terminating_endpoints(policy, name, endpoints, to_cluster_ip, to_lb):
    service = _terminating_service(policy)
    slices = [eps("ns1", "svc1", [_cond_ep(*e) for e in endpoints], [eport("", 80)])]
    _run(upstream_table([service], slices), [
        ("pod to clusterIP", "10.0.0.2", "172.30.1.1", 80, *to_cluster_ip),
        ("external to LB", EXTERNAL_CLIENT, "1.2.3.4", 80, *to_lb),
    ])
    _run(upstream_table([service], []), [
        ("pod to clusterIP after endpoints deleted", "10.0.0.2", "172.30.1.1", 80, "REJECT", False),
        ("external to LB after endpoints deleted", EXTERNAL_CLIENT, "1.2.3.4", 80, "REJECT", False),
    ])


# ---- TestInternalExternalMasquerade: one table, four proxier configurations ---------------------

_MASQ_SERVICES = [
    svc("ns1", "svc1", ["1.2.3.4"], type="LoadBalancer", clusterIP="172.30.0.41", ports=[port(nodePort=3001)],
        healthCheckNodePort=30001),
    svc("ns2", "svc2", ["5.6.7.8"], type="LoadBalancer", clusterIP="172.30.0.42", ports=[port(nodePort=3002)],
        healthCheckNodePort=30002, externalTrafficPolicy="Local"),
    svc("ns3", "svc3", ["9.10.11.12"], type="LoadBalancer", clusterIP="172.30.0.43", ports=[port(nodePort=3003)],
        healthCheckNodePort=30003, internalTrafficPolicy="Local"),
]
_MASQ_SLICES = [eps(f"ns{i}", f"svc{i}", [ep(f"10.180.0.{i}", HOST), ep(f"10.180.1.{i}", "remote")])
                for i in (1, 2, 3)]
_S1, _S2, _S3 = "10.180.0.1:80, 10.180.1.1:80", "10.180.0.2:80, 10.180.1.2:80", "10.180.0.3:80, 10.180.1.3:80"
MASQ_FLOWS = [
    ("pod to ClusterIP", "10.0.0.2", "172.30.0.41", 80, _S1, False),
    ("pod to NodePort", "10.0.0.2", NODE_IP, 3001, _S1, True),
    ("pod to LB", "10.0.0.2", "1.2.3.4", 80, _S1, True),
    ("node to ClusterIP", NODE_IP, "172.30.0.41", 80, _S1, True),
    ("node to NodePort", NODE_IP, NODE_IP, 3001, _S1, True),
    ("node to LB", NODE_IP, "1.2.3.4", 80, _S1, True),
    ("external to ClusterIP", EXTERNAL_CLIENT, "172.30.0.41", 80, _S1, True),
    ("external to NodePort", EXTERNAL_CLIENT, NODE_IP, 3001, _S1, True),
    ("external to LB", EXTERNAL_CLIENT, "1.2.3.4", 80, _S1, True),
    ("pod to ClusterIP with eTP:Local", "10.0.0.2", "172.30.0.42", 80, _S2, False),
    ("pod to NodePort with eTP:Local", "10.0.0.2", NODE_IP, 3002, _S2, False),
    ("pod to LB with eTP:Local", "10.0.0.2", "5.6.7.8", 80, _S2, False),
    ("node to ClusterIP with eTP:Local", NODE_IP, "172.30.0.42", 80, _S2, True),
    ("node to NodePort with eTP:Local", NODE_IP, NODE_IP, 3001, _S1, True),
    ("node to LB with eTP:Local", NODE_IP, "5.6.7.8", 80, _S2, True),
    ("external to ClusterIP with eTP:Local", EXTERNAL_CLIENT, "172.30.0.42", 80, _S2, True),
    ("external to NodePort with eTP:Local", EXTERNAL_CLIENT, NODE_IP, 3002, "10.180.0.2:80", False),
    ("external to LB with eTP:Local", EXTERNAL_CLIENT, "5.6.7.8", 80, "10.180.0.2:80", False),
    ("pod to ClusterIP with iTP:Local", "10.0.0.2", "172.30.0.43", 80, "10.180.0.3:80", False),
    ("pod to NodePort with iTP:Local", "10.0.0.2", NODE_IP, 3003, _S3, True),
    ("pod to LB with iTP:Local", "10.0.0.2", "9.10.11.12", 80, _S3, True),
    ("node to ClusterIP with iTP:Local", NODE_IP, "172.30.0.43", 80, "10.180.0.3:80", True),
    ("node to NodePort with iTP:Local", NODE_IP, NODE_IP, 3003, _S3, True),
    ("node to LB with iTP:Local", NODE_IP, "9.10.11.12", 80, _S3, True),
    ("external to ClusterIP with iTP:Local", EXTERNAL_CLIENT, "172.30.0.43", 80, "10.180.0.3:80", True),
    ("external to NodePort with iTP:Local", EXTERNAL_CLIENT, NODE_IP, 3003, _S3, True),
    ("external to LB with iTP:Local", EXTERNAL_CLIENT, "9.10.11.12", 80, _S3, True),
]
_NO_DETECTOR = {"node to ClusterIP": (None, False), "node to ClusterIP with eTP:Local": (None, False),
                "node to ClusterIP with iTP:Local": (None, False), "external to ClusterIP": (None, False),
                "external to ClusterIP with eTP:Local": (None, False),
                "external to ClusterIP with iTP:Local": (None, False),
                "pod to NodePort with eTP:Local": ("10.180.0.2:80", None),
                "pod to LB with eTP:Local": ("10.180.0.2:80", None)}
_MASQ_ALL = {"pod to ClusterIP": (None, True), "pod to ClusterIP with eTP:Local": (None, True),
             "pod to ClusterIP with iTP:Local": (None, True)}
MASQ_CASES = {
    "base": (False, True, {}),
    "no LocalTrafficDetector": (False, False, _NO_DETECTOR),
    "masqueradeAll": (True, True, _MASQ_ALL),
    "masqueradeAll, no LocalTrafficDetector": (True, False, {
        **_MASQ_ALL, "pod to NodePort with eTP:Local": ("10.180.0.2:80", None),
        "pod to LB with eTP:Local": ("10.180.0.2:80", None)}),
}


@pytest.mark.parametrize("case", list(MASQ_CASES))
def test_internal_external_masquerade(case):
    masquerade_all, detector, overrides = MASQ_CASES[case]
    node = NodeInfo(HOST, (NODE_IP, NODE_IP_ALT, EXTERNAL_IP), "10.0.0.0/8" if detector else None)
    cfg = ProxyConfig(masquerade_all=masquerade_all, nodeport_addresses=("192.168.0.2/32", "2001:db8::1/128"))
    table = upstream_table(_MASQ_SERVICES, _MASQ_SLICES, node=node, config=cfg)
    applied = 0
    flows = []
    for name, src, dst, dport, output, masq in MASQ_FLOWS:
        if name in overrides:
            applied += 1
            new_out, new_masq = overrides[name]
            assert (new_out, new_masq) != (output, masq)        # upstream: an override changes something
            output = new_out if new_out is not None else output
            masq = new_masq if new_masq is not None else masq
        flows.append((name, src, dst, dport, output, masq))
    assert applied == len(overrides)
    _run(table, flows)
