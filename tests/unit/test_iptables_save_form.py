"""Our rules in iptables-save form equal what the kernel hands back (iptables 1.8.9).

SAVED below is real output: the scenario (upstream's TestOverallIPTablesRules plus a UDP+SCTP
Service with internalTrafficPolicy Local and three endpoints) was rendered with the default
config, loaded with ``iptables-restore --noflush`` into a scratch network namespace, and read
back with ``iptables-save`` -- the same with the nft and the legacy backend (rules per chain in
the same order). A user diffing ``netemu proxy render --save-form`` against a real node's
``iptables-save`` sees only real differences.
"""

from __future__ import annotations

import shlex

from netemu.agent.proxy.iptables import UPSTREAM_TEST_NODE, render
from netemu.agent.proxy.iptables.normalize import save_form, to_save_form
from netemu.agent.proxy.model import ProxyConfig

from .test_iptables_upstream import OVERALL_SERVICES, OVERALL_SLICES

EXTRA_SERVICE = {"metadata": {"namespace": "ns7", "name": "svc7"},
                 "spec": {"clusterIP": "172.30.0.47", "internalTrafficPolicy": "Local",
                          "ports": [{"name": "u", "port": 53, "protocol": "UDP"},
                                    {"name": "s", "port": 99, "protocol": "SCTP"}]}}
EXTRA_SLICE = {"metadata": {"namespace": "ns7", "name": "svc7-1", "labels": {"kubernetes.io/service-name": "svc7"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": [ip], "nodeName": "test-node"}
                             for ip in ("10.180.0.7", "10.180.0.8", "10.180.0.9")],
               "ports": [{"name": "u", "port": 53, "protocol": "UDP"}, {"name": "s", "port": 99, "protocol": "SCTP"}]}

SAVED = r"""
-A KUBE-EXTERNAL-SERVICES -d 192.168.99.22/32 -p tcp -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -d 1.2.3.4/32 -p tcp -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 3001 -j DROP
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-NODEPORTS -p tcp -m comment --comment "ns2/svc2:p80 health check node port" -m tcp --dport 30000 -j ACCEPT
-A KUBE-PROXY-FIREWALL -d 5.6.7.8/32 -p tcp -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp --dport 80 -j DROP
-A KUBE-SERVICES -d 172.30.0.46/32 -p tcp -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -s 10.0.0.0/8 -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-FW-NUKIZ6OKUXPJNT4C -s 203.0.113.0/25 -m comment --comment "ns5/svc5:p80 loadbalancer IP" -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -p tcp -m comment --comment "ns2/svc2:p80" -m tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -p tcp -m comment --comment "ns3/svc3:p80" -m tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-NODEPORTS -p tcp -m comment --comment "ns5/svc5:p80" -m tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-7S3LZO6GWLTRT42K -s 10.180.0.7/32 -m comment --comment "ns7/svc7:s" -j KUBE-MARK-MASQ
-A KUBE-SEP-7S3LZO6GWLTRT42K -p sctp -m comment --comment "ns7/svc7:s" -m sctp -j DNAT --to-destination 10.180.0.7:99
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -s 10.180.0.5/32 -m comment --comment "ns4/svc4:p80" -j KUBE-MARK-MASQ
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -p tcp -m comment --comment "ns4/svc4:p80" -m tcp -j DNAT --to-destination 10.180.0.5:80
-A KUBE-SEP-CYZT6Z7Z2PXELOA7 -s 10.180.0.8/32 -m comment --comment "ns7/svc7:s" -j KUBE-MARK-MASQ
-A KUBE-SEP-CYZT6Z7Z2PXELOA7 -p sctp -m comment --comment "ns7/svc7:s" -m sctp -j DNAT --to-destination 10.180.0.8:99
-A KUBE-SEP-I77PXRDZVX7PMWMN -s 10.180.0.3/32 -m comment --comment "ns5/svc5:p80" -j KUBE-MARK-MASQ
-A KUBE-SEP-I77PXRDZVX7PMWMN -p tcp -m comment --comment "ns5/svc5:p80" -m recent --set --name KUBE-SEP-I77PXRDZVX7PMWMN --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-ISLWYB23XSE5ONL6 -s 10.180.0.7/32 -m comment --comment "ns7/svc7:u" -j KUBE-MARK-MASQ
-A KUBE-SEP-ISLWYB23XSE5ONL6 -p udp -m comment --comment "ns7/svc7:u" -m udp -j DNAT --to-destination 10.180.0.7:53
-A KUBE-SEP-OYPFS5VJICHGATKP -s 10.180.0.3/32 -m comment --comment "ns3/svc3:p80" -j KUBE-MARK-MASQ
-A KUBE-SEP-OYPFS5VJICHGATKP -p tcp -m comment --comment "ns3/svc3:p80" -m tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-R5FSZYNIHGYY3FBK -s 10.180.0.9/32 -m comment --comment "ns7/svc7:s" -j KUBE-MARK-MASQ
-A KUBE-SEP-R5FSZYNIHGYY3FBK -p sctp -m comment --comment "ns7/svc7:s" -m sctp -j DNAT --to-destination 10.180.0.9:99
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -s 10.180.0.2/32 -m comment --comment "ns2/svc2:p80" -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -p tcp -m comment --comment "ns2/svc2:p80" -m tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -s 10.180.0.1/32 -m comment --comment "ns1/svc1:p80" -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -p tcp -m comment --comment "ns1/svc1:p80" -m tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-UKSFD7AGPMPPLUHC -s 10.180.0.4/32 -m comment --comment "ns4/svc4:p80" -j KUBE-MARK-MASQ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -p tcp -m comment --comment "ns4/svc4:p80" -m tcp -j DNAT --to-destination 10.180.0.4:80
-A KUBE-SEP-UV7C6RFAFNKICJUC -s 10.180.0.8/32 -m comment --comment "ns7/svc7:u" -j KUBE-MARK-MASQ
-A KUBE-SEP-UV7C6RFAFNKICJUC -p udp -m comment --comment "ns7/svc7:u" -m udp -j DNAT --to-destination 10.180.0.8:53
-A KUBE-SEP-ZN27EJSHR3ZPE3WV -s 10.180.0.9/32 -m comment --comment "ns7/svc7:u" -j KUBE-MARK-MASQ
-A KUBE-SEP-ZN27EJSHR3ZPE3WV -p udp -m comment --comment "ns7/svc7:u" -m udp -j DNAT --to-destination 10.180.0.9:53
-A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -d 172.30.0.42/32 -p tcp -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -d 192.168.99.22/32 -p tcp -m comment --comment "ns2/svc2:p80 external IP" -m tcp --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -d 1.2.3.4/32 -p tcp -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -d 172.30.0.43/32 -p tcp -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-SERVICES -d 172.30.0.44/32 -p tcp -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -d 192.168.99.33/32 -p tcp -m comment --comment "ns4/svc4:p80 external IP" -m tcp --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -d 172.30.0.45/32 -p tcp -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -d 5.6.7.8/32 -p tcp -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -d 172.30.0.47/32 -p sctp -m comment --comment "ns7/svc7:s cluster IP" -m sctp --dport 99 -j KUBE-SVL-4BKCF2MPNTRJCK6G
-A KUBE-SERVICES -d 172.30.0.47/32 -p udp -m comment --comment "ns7/svc7:u cluster IP" -m udp --dport 53 -j KUBE-SVL-U7RJSVL32D6C7AVE
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-4SW47YFZTEDKD3PK ! -s 10.0.0.0/8 -d 172.30.0.44/32 -p tcp -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT ! -s 10.0.0.0/8 -d 172.30.0.42/32 -p tcp -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C ! -s 10.0.0.0/8 -d 172.30.0.45/32 -p tcp -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-I77PXRDZVX7PMWMN --mask 255.255.255.255 --rsource -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-X27LE4BHSL4DOUIK ! -s 10.0.0.0/8 -d 172.30.0.43/32 -p tcp -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
-A KUBE-SVC-XPGD46QRK7WJZT7O ! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
-A KUBE-SVL-4BKCF2MPNTRJCK6G ! -s 10.0.0.0/8 -d 172.30.0.47/32 -p sctp -m comment --comment "ns7/svc7:s cluster IP" -m sctp --dport 99 -j KUBE-MARK-MASQ
-A KUBE-SVL-4BKCF2MPNTRJCK6G -m comment --comment "ns7/svc7:s -> 10.180.0.7:99" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-7S3LZO6GWLTRT42K
-A KUBE-SVL-4BKCF2MPNTRJCK6G -m comment --comment "ns7/svc7:s -> 10.180.0.8:99" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-CYZT6Z7Z2PXELOA7
-A KUBE-SVL-4BKCF2MPNTRJCK6G -m comment --comment "ns7/svc7:s -> 10.180.0.9:99" -j KUBE-SEP-R5FSZYNIHGYY3FBK
-A KUBE-SVL-U7RJSVL32D6C7AVE ! -s 10.0.0.0/8 -d 172.30.0.47/32 -p udp -m comment --comment "ns7/svc7:u cluster IP" -m udp --dport 53 -j KUBE-MARK-MASQ
-A KUBE-SVL-U7RJSVL32D6C7AVE -m comment --comment "ns7/svc7:u -> 10.180.0.7:53" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-ISLWYB23XSE5ONL6
-A KUBE-SVL-U7RJSVL32D6C7AVE -m comment --comment "ns7/svc7:u -> 10.180.0.8:53" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-UV7C6RFAFNKICJUC
-A KUBE-SVL-U7RJSVL32D6C7AVE -m comment --comment "ns7/svc7:u -> 10.180.0.9:53" -j KUBE-SEP-ZN27EJSHR3ZPE3WV
"""


def by_chain(lines):
    out: dict[str, list[str]] = {}
    for line in lines:
        out.setdefault(line.split()[1], []).append(line)
    return out


def test_save_form_equals_kernel_iptables_save():
    rs = render(OVERALL_SERVICES + [EXTRA_SERVICE], OVERALL_SLICES + [EXTRA_SLICE], UPSTREAM_TEST_NODE, ProxyConfig())
    ours = [to_save_form(line) for line in rs.text.splitlines() if line.startswith("-A ")]
    saved = SAVED.strip().splitlines()
    assert by_chain(ours) == by_chain(saved)


def test_save_form_details():
    assert to_save_form('-A X -m comment --comment ns1/svc1:p80 -s 10.0.0.1 -j KUBE-MARK-MASQ') == \
        '-A X -s 10.0.0.1/32 -m comment --comment "ns1/svc1:p80" -j KUBE-MARK-MASQ'
    assert to_save_form("-A X -m statistic --mode random --probability 0.3333333333 -j Y") == \
        "-A X -m statistic --mode random --probability 0.33333333349 -j Y"
    assert to_save_form("-A X -j MARK --xor-mark 0x4000") == "-A X -j MARK --set-xmark 0x4000/0x0"
    assert to_save_form("-A X ! -d 127.0.0.0/8 -j Y") == "-A X ! -d 127.0.0.0/8 -j Y"
    text = save_form("*nat\n:X - [0:0]\n-A X -s 10.0.0.1 -j Y\nCOMMIT\n")
    assert text == "*nat\n:X - [0:0]\n-A X -s 10.0.0.1/32 -j Y\nCOMMIT\n"
    for line in SAVED.strip().splitlines():       # save form is a fixed point
        assert shlex.split(to_save_form(line)) == shlex.split(line)


def test_compare_ignores_service_order_but_not_chain_order():
    from netemu.agent.proxy.iptables.normalize import compare
    rs = render(OVERALL_SERVICES + [EXTRA_SERVICE], OVERALL_SLICES + [EXTRA_SLICE], UPSTREAM_TEST_NODE, ProxyConfig())
    theirs = save_form(rs.text).splitlines()
    nat = theirs.index("*nat")
    services = [i for i, line in enumerate(theirs) if i > nat and line.startswith("-A KUBE-SERVICES ")]
    first, second = services[0], services[1]
    theirs[first], theirs[second] = theirs[second], theirs[first]     # Go-map order: irrelevant
    assert compare(rs.text, "\n".join(theirs)) == []

    svc_rules = [i for i, line in enumerate(theirs) if line.startswith("-A KUBE-SVC-NUKIZ6OKUXPJNT4C ")]
    swapped = list(theirs)
    swapped[svc_rules[1]], swapped[svc_rules[2]] = swapped[svc_rules[2]], swapped[svc_rules[1]]
    assert compare(rs.text, "\n".join(swapped)) == ["nat KUBE-SVC-NUKIZ6OKUXPJNT4C: same rules, different order"]

    dropped = theirs[svc_rules[1]]
    missing = [line for line in theirs if line != dropped]
    assert compare(rs.text, "\n".join(missing)) == [f"nat KUBE-SVC-NUKIZ6OKUXPJNT4C: only in ours: {dropped}"]


def test_ipv6_save_form():
    # as ip6tables-save 1.8.9 printed it (checked in a scratch netns, both backends)
    assert to_save_form("-A KUBE-SEP-X -m comment --comment ns/s6:p -s fd00:10::5 -j KUBE-MARK-MASQ", ipv6=True) == \
        '-A KUBE-SEP-X -s fd00:10::5/128 -m comment --comment "ns/s6:p" -j KUBE-MARK-MASQ'
    assert to_save_form("-A KUBE-SVC-X -m recent --name KUBE-SEP-X --rcheck --seconds 60 --reap -j KUBE-SEP-X",
                        ipv6=True) == ("-A KUBE-SVC-X -m recent --rcheck --seconds 60 --reap --name KUBE-SEP-X "
                                       "--mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -j KUBE-SEP-X")
    assert to_save_form("-A KUBE-SERVICES -d fd00::6 -j REJECT", ipv6=True) == \
        "-A KUBE-SERVICES -d fd00::6/128 -j REJECT --reject-with icmp6-port-unreachable"
