"""Builder behaviour per feature: balancing, policies, fallbacks, protocols, modes, bad input."""

from __future__ import annotations

import re

import pytest

from netemu.agent.proxy.iptables import UPSTREAM_TEST_NODE, build, canary_chains, jump_rules, probability, render
from netemu.agent.proxy.xtables.dump import parse
from netemu.agent.proxy.model import (NodeInfo, ProxyConfig, ServiceName, endpoints_by_service_port,
                                      service_port_map)


def svc(ns="ns1", name="svc1", lb_ip=None, **spec):
    spec.setdefault("clusterIP", "172.30.0.41")
    spec.setdefault("ports", [{"name": "p80", "port": 80, "protocol": "TCP"}])
    obj = {"metadata": {"namespace": ns, "name": name}, "spec": spec}
    if lb_ip:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}
    return obj


def ep(ip, node=None, **cond):
    out = {"addresses": [ip]}
    if node:
        out["nodeName"] = node
    if cond:
        out["conditions"] = cond
    return out


def sl(ns, name, endpoints, ports=None):
    return {"metadata": {"namespace": ns, "name": name + "-x", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": ports or [{"name": "p80", "port": 80, "protocol": "TCP"}]}


def chain(text, table, name):
    t = parse(text, strict=True).table(table)
    if t is None:
        raise AssertionError(table)
    c = t.chain(name)
    return None if c is None else [r.raw for r in c.rules]


def only(rules, pattern):
    return [r for r in rules if re.search(pattern, r)]


def check_jumps(text: str) -> None:
    """Port of upstream checkIPTablesRuleJumps: every jump target and every filled chain is
    declared, no jump to an empty chain, no declared chain left unused."""
    builtin = {"ACCEPT", "REJECT", "DROP", "MARK", "RETURN", "DNAT", "SNAT", "MASQUERADE"}
    top = {"KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-FORWARD",
           "KUBE-MARK-MASQ", "KUBE-PROXY-FIREWALL", "KUBE-FIREWALL"}
    for t in parse(text, strict=True).tables.values():
        created = set(t.chains)                  # declared and not deleted (-X) by the text
        filled = {c.name for c in t.chains.values() if c.rules}
        jumped = {m for c in t.chains.values() for r in c.rules for m in re.findall(r"-j (\S+)", r.raw)} - builtin
        assert not (jumped | filled) - created, f"{t.name}: used but not created"
        assert not jumped - filled - {"KUBE-NODEPORTS"}, f"{t.name}: jump to empty chain"
        assert not created - jumped - top, f"{t.name}: created but unused"


def test_three_endpoints_probabilities_and_hairpin():
    rs = render([svc()], [sl("ns1", "svc1", [ep("10.180.0.1"), ep("10.180.0.2"), ep("10.180.0.3")])])
    svc_rules = chain(rs.text, "nat", "KUBE-SVC-XPGD46QRK7WJZT7O")
    assert len(svc_rules) == 4
    assert "--probability 0.3333333333 -j KUBE-SEP-" in svc_rules[1]
    assert "--probability 0.5000000000 -j KUBE-SEP-" in svc_rules[2]
    assert "statistic" not in svc_rules[3] and '"ns1/svc1:p80 -> 10.180.0.3:80"' in svc_rules[3]
    seps = re.findall(r"-j (KUBE-SEP-\S+)", "\n".join(svc_rules))
    for sep, ip in zip(seps, ("10.180.0.1", "10.180.0.2", "10.180.0.3")):
        first, dnat = chain(rs.text, "nat", sep)
        assert first.endswith(f"-s {ip} -j KUBE-MARK-MASQ")              # hairpin
        assert dnat.endswith(f"-j DNAT --to-destination {ip}:80")
    check_jumps(rs.text)


def test_probability_format():
    assert [probability(n) for n in (2, 3, 7)] == ["0.5000000000", "0.3333333333", "0.1428571429"]
    assert probability(2000) == "%0.10f" % (1 / 2000)


def test_session_affinity_rules_come_first():
    s = svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}})
    rs = render([s], [sl("ns1", "svc1", [ep("10.180.0.1"), ep("10.180.0.2")])])
    rules = chain(rs.text, "nat", "KUBE-SVC-XPGD46QRK7WJZT7O")
    assert [("--rcheck --seconds 30 --reap" in r) for r in rules] == [False, True, True, False, False]
    for sep in re.findall(r"--name (KUBE-SEP-\S+) --rcheck", "\n".join(rules)):
        assert f"-m recent --name {sep} --set -m tcp -p tcp -j DNAT" in chain(rs.text, "nat", sep)[1]


def test_etp_local_with_local_endpoint_uses_svl_without_snat():
    s = svc(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30000, lb_ip="1.2.3.4",
            ports=[{"name": "p80", "port": 80, "nodePort": 3001}])
    rs = render([s], [sl("ns1", "svc1", [ep("10.180.0.1", "test-node"), ep("10.180.1.1", "remote")])])
    ext = chain(rs.text, "nat", "KUBE-EXT-XPGD46QRK7WJZT7O")
    assert ext[-1] == "-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVL-XPGD46QRK7WJZT7O"
    assert "-s 10.0.0.0/8 -j KUBE-SVC-XPGD46QRK7WJZT7O" in ext[0]           # pod short-circuit
    assert not only(ext, r"masquerade traffic for")                          # no blanket SNAT
    svl = chain(rs.text, "nat", "KUBE-SVL-XPGD46QRK7WJZT7O")
    assert len(svl) == 1 and "10.180.0.1:80" in svl[0]                      # local endpoint only
    assert len(chain(rs.text, "nat", "KUBE-SVC-XPGD46QRK7WJZT7O")) == 3     # masq + 2 endpoints
    assert only(chain(rs.text, "filter", "KUBE-NODEPORTS"), "--dport 30000 -j ACCEPT")
    assert chain(rs.text, "filter", "KUBE-EXTERNAL-SERVICES") == []
    assert rs.no_local_endpoints == {"internal": 0, "external": 0}
    check_jumps(rs.text)


def test_internal_traffic_policy_local_without_local_endpoints_drops():
    s = svc(internalTrafficPolicy="Local")
    rs = render([s], [sl("ns1", "svc1", [ep("10.180.1.1", "remote")])])
    (drop,) = chain(rs.text, "filter", "KUBE-SERVICES")
    assert '"ns1/svc1:p80 has no local endpoints"' in drop and drop.endswith("-j DROP")
    assert "KUBE-SVC-XPGD46QRK7WJZT7O" not in rs.text and "KUBE-SEP-" not in rs.text
    assert rs.no_local_endpoints["internal"] == 1
    check_jumps(rs.text)


def test_internal_traffic_policy_local_with_local_endpoint():
    s = svc(internalTrafficPolicy="Local")
    rs = render([s], [sl("ns1", "svc1", [ep("10.180.0.1", "test-node"), ep("10.180.1.1", "remote")])])
    assert "-j KUBE-SVL-XPGD46QRK7WJZT7O" in chain(rs.text, "nat", "KUBE-SERVICES")[0]
    svl = chain(rs.text, "nat", "KUBE-SVL-XPGD46QRK7WJZT7O")
    assert "! -s 10.0.0.0/8 -j KUBE-MARK-MASQ" in svl[0] and "10.180.0.1:80" in svl[1] and len(svl) == 2
    check_jumps(rs.text)


def test_terminating_endpoints_used_only_when_no_ready_ones():
    eps = [ep("10.0.1.2", "test-node", ready=False, serving=True, terminating=True),
           ep("10.0.1.3", "test-node", ready=False, serving=True, terminating=True),
           ep("10.0.1.4", "another-node", ready=False, serving=False, terminating=True),
           ep("10.0.1.5", "another-node", ready=False, serving=True, terminating=True)]
    rs = render([svc()], [sl("ns1", "svc1", eps)])
    targets = re.findall(r"-> (\S+):80", "\n".join(chain(rs.text, "nat", "KUBE-SVC-XPGD46QRK7WJZT7O")))
    assert targets == ["10.0.1.2", "10.0.1.3", "10.0.1.5"]
    rs = render([svc()], [sl("ns1", "svc1", eps + [ep("10.0.1.9", "another-node")])])
    targets = re.findall(r"-> (\S+):80", "\n".join(chain(rs.text, "nat", "KUBE-SVC-XPGD46QRK7WJZT7O")))
    assert targets == ["10.0.1.9"]


def test_no_usable_endpoints_rejects_everywhere():
    s = svc(type="LoadBalancer", lb_ip="1.2.3.4", externalIPs=["192.168.99.11"],
            ports=[{"name": "p80", "port": 80, "nodePort": 3001}])
    rs = render([s], [sl("ns1", "svc1", [ep("10.0.1.5", "test-node", ready=False, serving=False, terminating=True)])])
    rejects = only(chain(rs.text, "filter", "KUBE-SERVICES") + chain(rs.text, "filter", "KUBE-EXTERNAL-SERVICES"),
                   r'"ns1/svc1:p80 has no endpoints".*-j REJECT$')
    assert len(rejects) == 4                          # clusterIP, external IP, LB IP, NodePort
    assert "KUBE-SVC-" not in rs.text and "KUBE-EXT-" not in rs.text
    check_jumps(rs.text)


def test_source_ranges_admit_vip_when_node_is_inside():
    s = svc(type="LoadBalancer", lb_ip="5.6.7.8", loadBalancerSourceRanges=["192.168.0.0/24", "203.0.113.0/25"],
            ports=[{"name": "p80", "port": 80, "nodePort": 3002}])
    rs = render([s], [sl("ns1", "svc1", [ep("10.180.0.1")])])
    fw = chain(rs.text, "nat", "KUBE-FW-XPGD46QRK7WJZT7O")
    assert [re.search(r"-s (\S+)", r).group(1) if "-s " in r else None for r in fw] == \
        ["192.168.0.0/24", "203.0.113.0/25", "5.6.7.8", None]
    check_jumps(rs.text)


def test_udp_sctp_and_multiple_ports():
    s = svc(ports=[{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53},
                   {"name": "sctp", "port": 9999, "protocol": "SCTP"}])
    ports = [{"name": "dns", "port": 5353, "protocol": "UDP"}, {"name": "dns-tcp", "port": 5353, "protocol": "TCP"},
             {"name": "sctp", "port": 9999, "protocol": "SCTP"}]
    rs = render([s], [sl("ns1", "svc1", [ep("10.180.0.1")], ports)])
    services = chain(rs.text, "nat", "KUBE-SERVICES")
    assert only(services, r'"ns1/svc1:dns cluster IP" -m udp -p udp -d 172.30.0.41 --dport 53 ')
    assert only(services, r'"ns1/svc1:dns-tcp cluster IP" -m tcp -p tcp .* --dport 53 ')
    assert only(services, r'"ns1/svc1:sctp cluster IP" -m sctp -p sctp .* --dport 9999 ')
    assert "-m udp -p udp -j DNAT --to-destination 10.180.0.1:5353" in rs.text
    assert len(re.findall(r"^:KUBE-SVC-", rs.text, re.M)) == 3
    check_jumps(rs.text)


def test_large_cluster_mode_drops_endpoint_comments():
    slices = [sl("ns1", "svc1", [ep(f"10.1.{i // 250}.{i % 250 + 1}") for i in range(1001)])]
    rs = render([svc()], slices)
    assert rs.large_cluster
    sep_rules = [r for r in rs.text.splitlines() if r.startswith("-A KUBE-SEP-")]
    assert len(sep_rules) == 2002 and not only(sep_rules, "--comment")
    assert not only(chain(rs.text, "nat", "KUBE-SVC-XPGD46QRK7WJZT7O")[1:], "--comment")
    assert not render([svc()], [sl("ns1", "svc1", [ep("10.1.0.1")])]).large_cluster


def test_masquerade_all_and_no_local_detection():
    rs = render([svc()], [sl("ns1", "svc1", [ep("10.180.0.1")])], config=ProxyConfig(masquerade_all=True))
    assert chain(rs.text, "nat", "KUBE-SVC-XPGD46QRK7WJZT7O")[0].endswith("--dport 80 -j KUBE-MARK-MASQ")
    rs = render([svc()], [sl("ns1", "svc1", [ep("10.180.0.1")])], node=NodeInfo("test-node", ("192.168.0.2",)))
    assert len(chain(rs.text, "nat", "KUBE-SVC-XPGD46QRK7WJZT7O")) == 1      # no masq rule at all


def test_nodeport_addresses_and_localhost_off():
    cfg = ProxyConfig(nodeport_addresses=("192.168.0.0/24",))
    rs = render([svc()], [], node=NodeInfo("n", ("192.168.0.2", "172.18.0.2"), "10.0.0.0/8"), config=cfg)
    last = chain(rs.text, "nat", "KUBE-SERVICES")[-1]
    assert last.endswith("-d 192.168.0.2 -j KUBE-NODEPORTS") and "KUBE-FIREWALL" not in rs.text
    rs = render([svc()], [], config=ProxyConfig(localhost_nodeports=False))
    assert chain(rs.text, "nat", "KUBE-SERVICES")[-1].endswith("LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS")


def test_stale_chains_deleted_on_full_sync_and_foreign_chains_kept():
    first = render([svc(), svc(name="svc2", clusterIP="172.30.0.42")],
                   [sl("ns1", "svc1", [ep("10.180.0.1")]), sl("ns1", "svc2", [ep("10.180.0.2")])])
    services = service_port_map([svc()])
    eps = endpoints_by_service_port([sl("ns1", "svc1", [ep("10.180.0.1")])])
    rs = build(services, eps, UPSTREAM_TEST_NODE, previous_chains=first.chains["nat"] | {"MY-CHAIN"})
    assert len(rs.deleted_chains) == 2 and all(c.startswith(("KUBE-SVC-", "KUBE-SEP-")) for c in rs.deleted_chains)
    assert "MY-CHAIN" not in rs.text and rs.chains["nat"] < first.chains["nat"]
    assert rs.rule_counts["nat"] == first.rule_counts["nat"] - 5


def test_partial_sync_only_touches_changed_service():
    services = [svc(), svc(name="svc2", clusterIP="172.30.0.42")]
    slices = [sl("ns1", "svc1", [ep("10.180.0.1")]), sl("ns1", "svc2", [ep("10.180.0.2"), ep("10.180.0.3")])]
    sm, em = service_port_map(services), endpoints_by_service_port(slices)
    full = build(sm, em, UPSTREAM_TEST_NODE)
    part = build(sm, em, UPSTREAM_TEST_NODE, changed={ServiceName("ns1", "svc2")}, previous_chains=full.chains)
    declared = set(re.findall(r"^:(KUBE-(?:SVC|SEP)-\S+)", part.text, re.M))
    assert declared and all(r.endswith("ns1/svc2:p80") or "svc2" in r
                            for c in declared for r in chain(part.text, "nat", c))
    assert "KUBE-SVC-XPGD46QRK7WJZT7O" not in declared
    assert part.rule_counts == full.rule_counts and part.chains == full.chains
    assert part.written_counts["nat"] < full.written_counts["nat"]


def test_jump_rules_match_upstream_list():
    rules = jump_rules()
    assert len(rules) == 14
    pre = [r for r in rules if r.src_chain == "PREROUTING"][0]
    assert (pre.table, pre.dst_chain, pre.args) == (
        "nat", "KUBE-SERVICES", ("-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"))
    fwd = [r for r in rules if r.table == "filter" and r.src_chain == "FORWARD" and r.dst_chain == "KUBE-SERVICES"][0]
    assert fwd.args[:4] == ("-m", "conntrack", "--ctstate", "NEW")
    assert rules[-1].args == ("-j", "KUBE-FIREWALL")
    assert jump_rules() == rules


def test_bad_objects_are_skipped_and_the_rest_is_built():
    problems: list[str] = []
    services = [svc(), svc(name="bad", clusterIP="172.30.0.50", ports=[{"name": "x", "port": 0},
                                                                      {"name": "y", "port": 81, "protocol": "ICMP"}]),
                {"metadata": {"namespace": "ns1"}, "spec": {}}]
    slices = [sl("ns1", "svc1", [ep("10.180.0.1"), {"addresses": ["not-an-ip"]}]),
              sl("ns1", "missing", [ep("10.9.9.9")])]
    rs = render(services, slices, problems=problems)
    assert "KUBE-SVC-XPGD46QRK7WJZT7O" in rs.text and "10.9.9.9" not in rs.text and "bad" not in rs.text
    assert len(problems) == 4, problems
    check_jumps(rs.text)


@pytest.mark.parametrize("local", [True, False])
def test_loadbalancer_and_nodeport_structure_is_consistent(local):
    s = svc(type="LoadBalancer", lb_ip="1.2.3.4", externalIPs=["192.168.99.22"],
            externalTrafficPolicy="Local" if local else "Cluster", healthCheckNodePort=30000,
            loadBalancerSourceRanges=["203.0.113.0/25"], ports=[{"name": "p80", "port": 80, "nodePort": 3001}])
    rs = render([s], [sl("ns1", "svc1", [ep("10.180.0.1", "test-node"), ep("10.180.0.2")])])
    check_jumps(rs.text)
    assert only(chain(rs.text, "nat", "KUBE-SERVICES"), r"loadbalancer IP.*-j KUBE-FW-")


@pytest.mark.parametrize("itp", ["Local", "Cluster"])
@pytest.mark.parametrize("etp", ["Local", "Cluster"])
@pytest.mark.parametrize("eps", [[], [("10.180.0.1", "test-node")], [("10.180.0.2", "remote")],
                                 [("10.180.0.1", "test-node"), ("10.180.0.2", "remote")]])
def test_every_policy_combination_has_consistent_jumps(itp, etp, eps):
    s = svc(type="NodePort", internalTrafficPolicy=itp, externalTrafficPolicy=etp,
            ports=[{"name": "p80", "port": 80, "nodePort": 3001}])
    rs = render([s], [sl("ns1", "svc1", [ep(ip, node) for ip, node in eps])] if eps else [])
    check_jumps(rs.text)


def test_ipv6_node_uses_its_family_only():
    node = NodeInfo("n6", ("fd00:18::2",), "fd00:10::/64", ip_family="IPv6")
    s = svc(name="s6", clusterIP="10.96.0.9", clusterIPs=["10.96.0.9", "fd00:96::9"], type="NodePort",
            ports=[{"name": "p80", "port": 80, "nodePort": 30080}])
    v6 = {**sl("ns1", "s6", [ep("fd00:10::5")]), "addressType": "IPv6"}
    v4 = sl("ns1", "s6", [ep("10.0.0.5")])
    rs = render([s], [v6, v4], node=node)
    assert "-d fd00:96::9 --dport 80" in rs.text and "10.96.0.9" not in rs.text and "10.0.0.5" not in rs.text
    assert "--to-destination [fd00:10::5]:80" in rs.text and "! -s fd00:10::/64" in rs.text
    assert chain(rs.text, "nat", "KUBE-SERVICES")[-1].endswith("LOCAL ! -d ::1/128 -j KUBE-NODEPORTS")
    assert "KUBE-FIREWALL" not in rs.text                      # localhost NodePorts are IPv4 only
    check_jumps(rs.text)


def test_canary_chains_in_three_tables():
    assert canary_chains() == [("mangle", "KUBE-PROXY-CANARY"), ("nat", "KUBE-PROXY-CANARY"),
                               ("filter", "KUBE-PROXY-CANARY")]


@pytest.mark.parametrize("addresses, last", [
    (("0.0.0.0/0",), "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"),           # zero CIDR: all
    (("fd00::/64",), "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"),           # other family only
    (("127.0.0.0/8", "192.168.0.0/24"), "-d 127.0.0.1 -j KUBE-NODEPORTS"),
])
def test_nodeport_addresses_like_upstream(addresses, last):
    rs = render([svc()], [], config=ProxyConfig(nodeport_addresses=addresses))
    assert chain(rs.text, "nat", "KUBE-SERVICES")[-1].endswith(last)
    assert "KUBE-FIREWALL" in rs.text                                              # localhost admitted
