"""Upstream kube-proxy's nftables test fixtures (no tests here): objects, the expected table of
TestOverallNFTablesRules, and helpers shaped like upstream's proxier_test.go / helpers_test.go.

Ported from kubernetes pkg/proxy/nftables/proxier_test.go of the v1.32 cycle, read from the
fork RebelloPrinston/CustomScheduler at commit c80d399fcc9ec94116965814fb18a2107c77dbe4 (its
nftables proxier carries v1.32's nftElementStorage partial syncs, ConntrackCleanupRequired and
filter-output-post-dnat, and not v1.33's ip_family metric labels). That fork adds an experimental
flowtable (``add flowtable ... kube-proxy-flowtable`` and a ``flow offload`` rule in
filter-forward) which upstream never shipped: those two lines are left out here, nothing else.
Upstream's fake proxier: node "test-hostname" with addresses 192.168.0.2 (node IP),
192.168.1.2, 192.168.99.11; pod CIDR 10.0.0.0/8; --nodeport-addresses 192.168.0.2/32 and
2001:db8::1/128; Service CIDR 172.30.0.0/16; masquerade mark spelled "0x4000".
"""

from __future__ import annotations

import textwrap

from netemu.agent.proxy.model import endpoints_by_service_port, service_port_map
from netemu.agent.proxy.nftables import (UPSTREAM_TEST_CONFIG, UPSTREAM_TEST_MARK, UPSTREAM_TEST_NODE,
                                         UPSTREAM_TEST_SERVICE_CIDRS, render)
from netemu.agent.proxy.nftables.builder import make_context
from netemu.agent.proxy.nftables.trace import Tracer
from netemu.agent.proxy.tracing import Packet

HOST = "test-hostname"
NODE_IP = "192.168.0.2"
NODE_IP_ALT = "192.168.1.2"
EXTERNAL_IP = "192.168.99.11"
NODE_IPS = [NODE_IP, NODE_IP_ALT, EXTERNAL_IP, "2001:db8::1", "2001:db8:1::2"]
EXTERNAL_CLIENT = "203.0.113.2"
EXTERNAL_CLIENT_BLOCKED = "203.0.113.130"


def svc(ns, name, lb_ips=(), **spec):
    obj = {"metadata": {"namespace": ns, "name": name}, "spec": spec}
    if lb_ips:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb_ips]}}
    return obj


def port(name="p80", number=80, proto="TCP", **kw):
    return dict(name=name, port=number, protocol=proto, **kw)


def ep(ip, node=None, ready=None, serving=None, terminating=None):
    out = {"addresses": [ip]}
    if node:
        out["nodeName"] = node
    cond = {k: v for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating)) if v is not None}
    if cond:
        out["conditions"] = cond
    return out


def eps(ns, name, endpoints, ports=None, family="IPv4"):
    return {"metadata": {"namespace": ns, "name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
            "addressType": family, "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "p80", "port": 80, "protocol": "TCP"}]}


def eport(name, number, proto="TCP"):
    return {"name": name, "port": number, "protocol": proto}


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


# ---- upstream helpers_test.go: sortNFTablesTransaction / diffNFTablesTransaction -----------

_ORDER = {"table": 10, "chain": 9, "rule": 8, "set": 7, "map": 6, "element": 5}


def sort_transaction(text: str) -> list[str]:
    """Upstream's sortNFTablesTransaction: by object type, then object name, rules kept in
    their order, other lines by their text; blank lines and comments dropped."""
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    keyed = []
    for n, line in enumerate(lines):
        w = line.split(" ")
        kind, name = (w[1], w[4]) if len(w) >= 5 else ("", "")
        keyed.append((-_ORDER.get(kind, 0), name, n if kind == "rule" else 0, line if kind != "rule" else ""))
    return [lines[i] for _, i in sorted((k, i) for i, k in enumerate(keyed))]


def assert_tables_equal(expected: str, actual: str) -> None:
    assert sort_transaction(actual) == sort_transaction(expected)


# ---- upstream's fake proxier, as our builder's inputs --------------------------------------

def upstream_table(services, slices, *, node=UPSTREAM_TEST_NODE, config=UPSTREAM_TEST_CONFIG,
                   service_cidrs=UPSTREAM_TEST_SERVICE_CIDRS):
    return render(services, slices, node, config, service_cidrs=service_cidrs, masquerade_mark=UPSTREAM_TEST_MARK)


def maps(services, slices, node=UPSTREAM_TEST_NODE):
    return service_port_map(services, node), endpoints_by_service_port(slices, node)


def upstream_context(node=UPSTREAM_TEST_NODE, config=UPSTREAM_TEST_CONFIG):
    return make_context(node, config, service_cidrs=UPSTREAM_TEST_SERVICE_CIDRS, masquerade_mark=UPSTREAM_TEST_MARK)


def upstream_output(result) -> tuple[str, bool]:
    """Our TraceResult read the way upstream's tracePacket reports: the DNAT destinations joined
    by ", " (or DROP/REJECT), and whether the packet was marked for masquerade."""
    parts: list[str] = []
    for o in result.outcomes:
        if o.verdict in ("DROP", "REJECT"):
            parts.append(o.verdict)
        elif o.destination:
            parts.append(o.destination)
    return ", ".join(dict.fromkeys(parts)), any(o.masquerade_mark or o.masquerade for o in result.outcomes)


def flow(table, src, dst, dport, proto="tcp", node_ips=NODE_IPS):
    return upstream_output(Tracer(table).trace(Packet(src, dst, dport, proto), node_ips))


BASE_RULES = dedent("""
    add table ip kube-proxy { comment "rules for kube-proxy" ; }

    add chain ip kube-proxy cluster-ips-check
    add chain ip kube-proxy filter-prerouting { type filter hook prerouting priority -110 ; }
    add chain ip kube-proxy filter-forward { type filter hook forward priority -110 ; }
    add chain ip kube-proxy filter-input { type filter hook input priority -110 ; }
    add chain ip kube-proxy filter-output { type filter hook output priority -110 ; }
    add chain ip kube-proxy filter-output-post-dnat { type filter hook output priority -90 ; }
    add chain ip kube-proxy firewall-check
    add chain ip kube-proxy mark-for-masquerade
    add chain ip kube-proxy masquerading
    add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
    add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
    add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
    add chain ip kube-proxy nodeport-endpoints-check
    add chain ip kube-proxy reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }
    add chain ip kube-proxy services
    add chain ip kube-proxy service-endpoints-check

    add rule ip kube-proxy cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
    add rule ip kube-proxy cluster-ips-check ip daddr { 172.30.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"
    add rule ip kube-proxy filter-prerouting ct state new jump firewall-check
    add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check
    add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check
    add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check
    add rule ip kube-proxy filter-input ct state new jump service-endpoints-check
    add rule ip kube-proxy filter-output ct state new jump service-endpoints-check
    add rule ip kube-proxy filter-output ct state new jump firewall-check
    add rule ip kube-proxy filter-output-post-dnat ct state new jump cluster-ips-check
    add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
    add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000
    add rule ip kube-proxy masquerading mark and 0x4000 == 0 return
    add rule ip kube-proxy masquerading mark set mark xor 0x4000
    add rule ip kube-proxy masquerading masquerade fully-random
    add rule ip kube-proxy nat-output jump services
    add rule ip kube-proxy nat-postrouting jump masquerading
    add rule ip kube-proxy nat-prerouting jump services
    add rule ip kube-proxy nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
    add rule ip kube-proxy reject-chain reject
    add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
    add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
    add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
    add set ip kube-proxy nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }
    add element ip kube-proxy nodeport-ips { 192.168.0.2 }
    add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services

    add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }
    add map ip kube-proxy no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }
    add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }
    add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }
    add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }
""")
