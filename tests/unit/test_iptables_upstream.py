"""The iptables builder against upstream kube-proxy's own expected dumps.

Scenarios and expected text are ported from kubernetes v1.32 pkg/proxy/iptables/proxier_test.go
(TestOverallIPTablesRules, TestSyncProxyRulesRepeated): same Services, same IPs, same node
("test-node", 192.168.0.2, pod CIDR 10.0.0.0/8), so the hashed chain names must match literally.
Upstream's fake iptables has no --random-fully and its fake nfacct counters exist, hence the
config below. Both sides are normalised with upstream's sortIPTablesRules (normalize.py)
because upstream writes Services in random (Go map) order.
"""

from __future__ import annotations

import textwrap

from netemu.agent.proxy.iptables import UPSTREAM_TEST_NODE, build, render
from netemu.agent.proxy.iptables.normalize import sort_like_upstream
from netemu.agent.proxy.model import (ProxyConfig, ServiceName, endpoints_by_service_port,
                                      service_port_map)

UPSTREAM_FAKE = ProxyConfig(random_fully=False, nfacct=True)


def svc(ns, name, status_lb_ip=None, **spec):
    obj = {"metadata": {"namespace": ns, "name": name}, "spec": spec}
    if status_lb_ip:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": status_lb_ip}]}}
    return obj


def eps(ns, name, endpoints, port_name="p80", port=80):
    return {"metadata": {"namespace": ns, "name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}


def ports(name="p80", port=80, **kw):
    return [dict(name=name, port=port, protocol="TCP", **kw)]


def expect(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def assert_rules(expected: str, actual_text: str) -> None:
    got = sort_like_upstream(actual_text)
    assert got.splitlines() == expect(expected).splitlines()


def count_rules(text: str, table: str) -> int:
    current, n = None, 0
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:]
        elif current == table and line.startswith("-A "):
            n += 1
    return n


OVERALL_SERVICES = [
    svc("ns1", "svc1", clusterIP="172.30.0.41", ports=ports()),
    svc("ns2", "svc2", "1.2.3.4", type="LoadBalancer", externalTrafficPolicy="Local", clusterIP="172.30.0.42",
        ports=ports(nodePort=3001), externalIPs=["192.168.99.22"], healthCheckNodePort=30000),
    svc("ns3", "svc3", type="NodePort", clusterIP="172.30.0.43", ports=ports(nodePort=3003)),
    svc("ns4", "svc4", type="NodePort", clusterIP="172.30.0.44", externalIPs=["192.168.99.33"],
        ports=ports(targetPort=80)),
    svc("ns5", "svc5", "5.6.7.8", type="LoadBalancer", externalTrafficPolicy="Cluster", clusterIP="172.30.0.45",
        ports=ports(nodePort=3002), healthCheckNodePort=30000,
        loadBalancerSourceRanges=[" 203.0.113.0/25"],  # whitespace on purpose, as upstream
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}}),
    svc("ns6", "svc6", type="ClusterIP", clusterIP="172.30.0.46", ports=ports(targetPort=80)),
]
OVERALL_SLICES = [
    eps("ns1", "svc1", [{"addresses": ["10.180.0.1"]}]),
    eps("ns2", "svc2", [{"addresses": ["10.180.0.2"]}]),  # no nodeName: not local
    eps("ns3", "svc3", [{"addresses": ["10.180.0.3"]}]),
    eps("ns4", "svc4", [{"addresses": ["10.180.0.4"]}, {"addresses": ["10.180.0.5"], "nodeName": "test-node"}]),
    eps("ns5", "svc5", [{"addresses": ["10.180.0.3"]}]),
]

OVERALL_EXPECTED = """
    *filter
    :KUBE-NODEPORTS - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-EXTERNAL-SERVICES - [0:0]
    :KUBE-FIREWALL - [0:0]
    :KUBE-FORWARD - [0:0]
    :KUBE-PROXY-FIREWALL - [0:0]
    -A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
    -A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
    -A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
    -A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    -A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
    COMMIT
    *nat
    :KUBE-NODEPORTS - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
    :KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
    :KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
    :KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-MARK-MASQ - [0:0]
    :KUBE-POSTROUTING - [0:0]
    :KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
    :KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
    :KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
    :KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
    :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
    :KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
    :KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
    :KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
    :KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
    :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
    -A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3003 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-X27LE4BHSL4DOUIK
    -A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
    -A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3002 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-NUKIZ6OKUXPJNT4C
    -A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
    -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
    -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
    -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
    -A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
    -A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
    -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
    -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
    -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
    -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
    -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
    -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
    -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
    -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
    -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
    -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
    -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
    -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
    -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
    -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
    -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
    -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
    -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
    -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
    -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
    -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
    -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
    COMMIT
"""


def test_overall_rules_match_upstream():
    rs = render(OVERALL_SERVICES, OVERALL_SLICES, UPSTREAM_TEST_NODE, UPSTREAM_FAKE)
    assert_rules(OVERALL_EXPECTED, rs.text)
    assert rs.rule_counts == {"filter": count_rules(rs.text, "filter"), "nat": count_rules(rs.text, "nat")}
    assert not rs.partial and not rs.large_cluster


def test_overall_rules_default_config_adds_random_fully_and_no_nfacct():
    rs = render(OVERALL_SERVICES, OVERALL_SLICES, UPSTREAM_TEST_NODE)
    assert '-j MASQUERADE --random-fully' in rs.text
    assert "nfacct" not in rs.text
    assert "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP" in rs.text


# --- TestSyncProxyRulesRepeated: partial syncs (KEP-3453) -------------------------------

_FILTER_EMPTY = """
    *filter
    :KUBE-NODEPORTS - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-EXTERNAL-SERVICES - [0:0]
    :KUBE-FIREWALL - [0:0]
    :KUBE-FORWARD - [0:0]
    :KUBE-PROXY-FIREWALL - [0:0]
    {extra}-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
    -A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    COMMIT
"""
_NAT_FIXED = """
    -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
    -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
    -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
    -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
"""
_NODEPORTS_LAST = ('    -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
                   'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n')


def _dump(nat_chains: str, services_rules: str, chain_rules: str, deletes: str = "", extra_filter: str = "") -> str:
    filt = textwrap.dedent(_FILTER_EMPTY).format(extra=extra_filter)
    nat = ("*nat\n:KUBE-NODEPORTS - [0:0]\n:KUBE-SERVICES - [0:0]\n"
           + textwrap.dedent(nat_chains).lstrip("\n") + textwrap.dedent(services_rules).lstrip("\n")
           + textwrap.dedent(_NODEPORTS_LAST) + textwrap.dedent(_NAT_FIXED).lstrip("\n")
           + textwrap.dedent(chain_rules).lstrip("\n") + textwrap.dedent(deletes).lstrip("\n") + "COMMIT\n")
    return filt.lstrip("\n") + nat


class _State:
    """Services and slices by name, rebuilt like the proxier's maps on every sync."""

    def __init__(self):
        self.services, self.slices, self.previous = {}, {}, None

    def sync(self, changed=None):
        rs = build(service_port_map(self.services.values(), UPSTREAM_TEST_NODE),
                   endpoints_by_service_port(self.slices.values(), UPSTREAM_TEST_NODE),
                   UPSTREAM_TEST_NODE, UPSTREAM_FAKE, changed=changed, previous_chains=self.previous)
        self.previous = rs.chains
        return rs


SVC1_RULE = '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O\n'
SVC2_RULE = '-A KUBE-SERVICES -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 8080 -j KUBE-SVC-2VJB64SDSIJUP5T6\n'
SVC3_RULE = '-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK\n'
SVC4_RULE = '-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK\n'


def test_repeated_syncs_match_upstream_partial_sync_dumps():
    st = _State()
    st.services["svc1"] = svc("ns1", "svc1", type="ClusterIP", clusterIP="172.30.0.41", ports=ports())
    st.services["svc2"] = svc("ns2", "svc2", type="ClusterIP", clusterIP="172.30.0.42", ports=ports("p8080", 8080))
    st.slices["svc1"] = eps("ns1", "svc1", [{"addresses": ["10.0.1.1"]}])
    st.slices["svc2"] = eps("ns2", "svc2", [{"addresses": ["10.0.2.1"]}], "p8080", 8080)

    rs = st.sync()  # first sync: full
    assert_rules(_dump("""
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-POSTROUTING - [0:0]
        :KUBE-SEP-SNQ3ZNILQDEJNDQO - [0:0]
        :KUBE-SEP-UHEGFW77JX3KXTOV - [0:0]
        :KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]
        :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
        """, SVC1_RULE + SVC2_RULE, """
        -A KUBE-SEP-SNQ3ZNILQDEJNDQO -m comment --comment ns1/svc1:p80 -s 10.0.1.1 -j KUBE-MARK-MASQ
        -A KUBE-SEP-SNQ3ZNILQDEJNDQO -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.1.1:80
        -A KUBE-SEP-UHEGFW77JX3KXTOV -m comment --comment ns2/svc2:p8080 -s 10.0.2.1 -j KUBE-MARK-MASQ
        -A KUBE-SEP-UHEGFW77JX3KXTOV -m comment --comment ns2/svc2:p8080 -m tcp -p tcp -j DNAT --to-destination 10.0.2.1:8080
        -A KUBE-SVC-2VJB64SDSIJUP5T6 -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 8080 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-2VJB64SDSIJUP5T6 -m comment --comment "ns2/svc2:p8080 -> 10.0.2.1:8080" -j KUBE-SEP-UHEGFW77JX3KXTOV
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.0.1.1:80" -j KUBE-SEP-SNQ3ZNILQDEJNDQO
        """), rs.text)
    total = rs.rule_counts["nat"]
    assert total == rs.written_counts["nat"] == count_rules(rs.text, "nat")

    # A new service and its endpoints: only its chains are written.
    st.services["svc3"] = svc("ns3", "svc3", type="ClusterIP", clusterIP="172.30.0.43", ports=ports())
    st.slices["svc3"] = eps("ns3", "svc3", [{"addresses": ["10.0.3.1"]}])
    rs = st.sync(changed={ServiceName("ns3", "svc3")})
    assert_rules(_dump("""
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-POSTROUTING - [0:0]
        :KUBE-SEP-BSWRHOQ77KEXZLNL - [0:0]
        :KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
        """, SVC1_RULE + SVC2_RULE + SVC3_RULE, """
        -A KUBE-SEP-BSWRHOQ77KEXZLNL -m comment --comment ns3/svc3:p80 -s 10.0.3.1 -j KUBE-MARK-MASQ
        -A KUBE-SEP-BSWRHOQ77KEXZLNL -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.3.1:80
        -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.0.3.1:80" -j KUBE-SEP-BSWRHOQ77KEXZLNL
        """), rs.text)
    total += 5
    assert rs.rule_counts["nat"] == total and rs.written_counts["nat"] == count_rules(rs.text, "nat")

    # Delete a service: its stale chains are declared and deleted, nothing else is touched.
    del st.services["svc2"]
    rs = st.sync(changed={ServiceName("ns2", "svc2")})
    assert_rules(_dump("""
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-POSTROUTING - [0:0]
        :KUBE-SEP-UHEGFW77JX3KXTOV - [0:0]
        :KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]
        """, SVC1_RULE + SVC3_RULE, "", """
        -X KUBE-SEP-UHEGFW77JX3KXTOV
        -X KUBE-SVC-2VJB64SDSIJUP5T6
        """), rs.text)
    total -= 5
    assert rs.rule_counts["nat"] == total
    assert rs.deleted_chains == ("KUBE-SEP-UHEGFW77JX3KXTOV", "KUBE-SVC-2VJB64SDSIJUP5T6")

    # A service without endpoints: only a REJECT in filter.
    st.services["svc4"] = svc("ns4", "svc4", type="ClusterIP", clusterIP="172.30.0.44", ports=ports())
    rs = st.sync(changed={ServiceName("ns4", "svc4")})
    reject = ('-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 has no endpoints" -m tcp -p tcp '
              '-d 172.30.0.44 --dport 80 -j REJECT\n')
    assert_rules(_dump("""
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-POSTROUTING - [0:0]
        """, SVC1_RULE + SVC3_RULE, "", extra_filter=reject), rs.text)
    assert rs.rule_counts["nat"] == total

    # ... then its endpoints.
    st.slices["svc4"] = eps("ns4", "svc4", [{"addresses": ["10.0.4.1"]}])
    rs = st.sync(changed={ServiceName("ns4", "svc4")})
    assert_rules(_dump("""
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-POSTROUTING - [0:0]
        :KUBE-SEP-AYCN5HPXMIRJNJXU - [0:0]
        :KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
        """, SVC1_RULE + SVC3_RULE + SVC4_RULE, """
        -A KUBE-SEP-AYCN5HPXMIRJNJXU -m comment --comment ns4/svc4:p80 -s 10.0.4.1 -j KUBE-MARK-MASQ
        -A KUBE-SEP-AYCN5HPXMIRJNJXU -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.4.1:80
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.0.4.1:80" -j KUBE-SEP-AYCN5HPXMIRJNJXU
        """), rs.text)
    total += 5
    assert rs.rule_counts["nat"] == total

    # Change an endpoint: svc3's SVC and SEP chains rewritten, the old SEP deleted.
    st.slices["svc3"] = eps("ns3", "svc3", [{"addresses": ["10.0.3.2"]}])
    rs = st.sync(changed={ServiceName("ns3", "svc3")})
    assert_rules(_dump("""
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-POSTROUTING - [0:0]
        :KUBE-SEP-BSWRHOQ77KEXZLNL - [0:0]
        :KUBE-SEP-DKCFIS26GWF2WLWC - [0:0]
        :KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
        """, SVC1_RULE + SVC3_RULE + SVC4_RULE, """
        -A KUBE-SEP-DKCFIS26GWF2WLWC -m comment --comment ns3/svc3:p80 -s 10.0.3.2 -j KUBE-MARK-MASQ
        -A KUBE-SEP-DKCFIS26GWF2WLWC -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.3.2:80
        -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.0.3.2:80" -j KUBE-SEP-DKCFIS26GWF2WLWC
        """, "-X KUBE-SEP-BSWRHOQ77KEXZLNL\n"), rs.text)
    assert rs.rule_counts["nat"] == total

    # Add an endpoint: two-way split with probability 0.5.
    st.slices["svc3"] = eps("ns3", "svc3", [{"addresses": ["10.0.3.2"]}, {"addresses": ["10.0.3.3"]}])
    rs = st.sync(changed={ServiceName("ns3", "svc3")})
    assert_rules(_dump("""
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-POSTROUTING - [0:0]
        :KUBE-SEP-DKCFIS26GWF2WLWC - [0:0]
        :KUBE-SEP-JVVZVJ7BSEPPRNBS - [0:0]
        :KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
        """, SVC1_RULE + SVC3_RULE + SVC4_RULE, """
        -A KUBE-SEP-DKCFIS26GWF2WLWC -m comment --comment ns3/svc3:p80 -s 10.0.3.2 -j KUBE-MARK-MASQ
        -A KUBE-SEP-DKCFIS26GWF2WLWC -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.3.2:80
        -A KUBE-SEP-JVVZVJ7BSEPPRNBS -m comment --comment ns3/svc3:p80 -s 10.0.3.3 -j KUBE-MARK-MASQ
        -A KUBE-SEP-JVVZVJ7BSEPPRNBS -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.3.3:80
        -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.0.3.2:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-DKCFIS26GWF2WLWC
        -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.0.3.3:80" -j KUBE-SEP-JVVZVJ7BSEPPRNBS
        """), rs.text)
    total += 3
    assert rs.rule_counts["nat"] == total

    # No changes: no per-service chain at all, counts unchanged.
    rs = st.sync(changed=set())
    assert_rules(_dump("""
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-POSTROUTING - [0:0]
        """, SVC1_RULE + SVC3_RULE + SVC4_RULE, ""), rs.text)
    assert rs.rule_counts["nat"] == total
    assert rs.partial and rs.deleted_chains == ()

    # And a full sync of the same state agrees on the totals.
    full = st.sync()
    assert full.rule_counts == rs.rule_counts and full.chains == rs.chains


# --- TestSyncProxyRulesLargeClusterMode ----------------------------------------------------

def _count_endpoints_and_comments(text: str, match: str) -> tuple[str, int, int]:
    """upstream countEndpointsAndComments: DNAT rules in KUBE-SEP chains."""
    matched, n, comments = "", 0, 0
    for line in text.splitlines():
        if line.startswith("-A KUBE-SEP-") and "-j DNAT" in line:
            n += 1
            comments += "--comment" in line
            if match in line:
                matched = line
    return matched, n, comments


def test_large_cluster_mode_matches_upstream():
    st = _State()
    cfg = ProxyConfig(random_fully=False, nfacct=True, masquerade_all=True)

    def sync(changed=None, previous=True):
        rs = build(service_port_map(st.services.values(), UPSTREAM_TEST_NODE),
                   endpoints_by_service_port(st.slices.values(), UPSTREAM_TEST_NODE),
                   UPSTREAM_TEST_NODE, cfg, changed=changed, previous_chains=st.previous if previous else None)
        st.previous = rs.chains
        return rs

    half = 1000 // 2 - 1
    for ns, name, ip, port, pname in (("ns1", "svc1", "172.30.0.41", 80, "p80"),
                                      ("ns2", "svc2", "172.30.0.42", 8080, "p8080"),
                                      ("ns3", "svc3", "172.30.0.43", 8081, "p8081")):
        st.services[name] = svc(ns, name, type="ClusterIP", clusterIP=ip, ports=ports(pname, port))
    st.slices["svc1"] = eps("ns1", "svc1", [{"addresses": [f"10.0.{i % 256}.{i // 256}"]} for i in range(half)])
    st.slices["svc2"] = eps("ns2", "svc2", [{"addresses": [f"10.1.{i % 256}.{i // 256}"]} for i in range(half)],
                            "p8080", 8080)
    rs = sync()
    first, n, comments = _count_endpoints_and_comments(rs.text, "10.0.0.0")
    assert first == ("-A KUBE-SEP-DKGQUZGBKLTPAR56 -m comment --comment ns1/svc1:p80 -m tcp -p tcp "
                     "-j DNAT --to-destination 10.0.0.0:80")
    assert n == comments == 2 * half and not rs.large_cluster

    # Crossing the threshold with a partial sync: only svc3 written, without comments.
    st.slices["svc3"] = eps("ns3", "svc3", [{"addresses": [ip]} for ip in ("203.0.113.4", "203.0.113.8", "203.0.113.12")],
                            "p8081", 8081)
    rs = sync(changed={ServiceName("ns3", "svc3")})
    first, n, comments = _count_endpoints_and_comments(rs.text, "203.0.113.4")
    assert first == "-A KUBE-SEP-RUVVH7YV3PHQBDOS -m tcp -p tcp -j DNAT --to-destination 203.0.113.4:8081"
    assert (n, comments) == (3, 0) and rs.large_cluster

    # A full sync rewrites the older Services without comments too.
    rs = sync()
    first, n, comments = _count_endpoints_and_comments(rs.text, "10.0.0.0")
    assert first == "-A KUBE-SEP-DKGQUZGBKLTPAR56 -m tcp -p tcp -j DNAT --to-destination 10.0.0.0:80"
    assert (n, comments) == (2 * half + 3, 0)

    st.services["svc4"] = svc("ns4", "svc4", type="ClusterIP", clusterIP="172.30.0.44", ports=ports("p8082", 8082))
    st.slices["svc4"] = eps("ns4", "svc4", [{"addresses": ["10.4.0.1"]}], "p8082", 8082)
    rs = sync(changed={ServiceName("ns4", "svc4")})
    line, n, _ = _count_endpoints_and_comments(rs.text, "10.4.0.1")
    assert line == "-A KUBE-SEP-SU5STNODRYEWJAUF -m tcp -p tcp -j DNAT --to-destination 10.4.0.1:8082" and n == 1

    # Upstream skips the (iptables-save based) stale-chain cleanup in large clusters until a
    # sync period has passed; here the caller decides, by passing previous_chains or not.
    del st.services["svc4"]
    kept = st.previous
    rs = sync(changed={ServiceName("ns4", "svc4")}, previous=False)
    assert _count_endpoints_and_comments(rs.text, "10.4.0.1")[1] == 0 and "-X " not in rs.text
    st.previous = kept
    rs = sync(changed={ServiceName("ns4", "svc4")})
    assert "-X KUBE-SVC-EBDQOQU5SJFXRIL3" in rs.text and "-X KUBE-SEP-SU5STNODRYEWJAUF" in rs.text
    assert _count_endpoints_and_comments(sync().text, "10.0.0.0")[1] == 2 * half + 3
