"""The nftables rule builder: one Service port in, its chains, sets and map elements out.

A pure port of syncProxyRules() and setupNFTables() of kubernetes v1.32
pkg/proxy/nftables/proxier.go: same table, chains, priorities, rule text, comments, set and map
types, element keys and verdicts, so ``netemu proxy render --mode nftables`` can be diffed
against a real node's ``nft list table ip kube-proxy`` and upstream's test dumps pass as ours.

Unlike the iptables mode, almost nothing is shared between Services: dispatch is a lookup in
the ``service-ips`` / ``service-nodeports`` verdict maps, "no endpoints" and
LoadBalancerSourceRanges are lookups too. So a Service port's contribution (``Part``) is
self-contained -- its own chains plus map elements -- and a sync only has to send the Parts
that changed (transaction.py decides what goes into one transaction).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Sequence

from ..categorize import categorize_endpoints
from ..model import EndpointInfo, NodeInfo, ProxyConfig, ServicePortInfo, ServicePortName
from . import names
from .table import Element

TABLE = "kube-proxy"

# fixed chains, sets and maps (upstream's constants)
FILTER_PREROUTING, FILTER_INPUT, FILTER_FORWARD = "filter-prerouting", "filter-input", "filter-forward"
FILTER_OUTPUT, FILTER_OUTPUT_POST_DNAT = "filter-output", "filter-output-post-dnat"
NAT_PREROUTING, NAT_OUTPUT, NAT_POSTROUTING = "nat-prerouting", "nat-output", "nat-postrouting"
SERVICES, SERVICE_IPS, SERVICE_NODEPORTS = "services", "service-ips", "service-nodeports"
NODEPORT_IPS, CLUSTER_IPS = "nodeport-ips", "cluster-ips"
SERVICE_ENDPOINTS_CHECK, NODEPORT_ENDPOINTS_CHECK = "service-endpoints-check", "nodeport-endpoints-check"
NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS, REJECT_CHAIN = "no-endpoint-services", "no-endpoint-nodeports", "reject-chain"
CLUSTER_IPS_CHECK = "cluster-ips-check"
FIREWALL_IPS, FIREWALL_CHECK = "firewall-ips", "firewall-check"
MARK_MASQ, MASQUERADING = "mark-for-masquerade", "masquerading"

# (name, type, hook, priority): upstream nftablesBaseChains, priorities as numbers (dstnat-10 ...)
BASE_CHAINS: tuple[tuple[str, str, str, int], ...] = (
    (FILTER_PREROUTING, "filter", "prerouting", -110),
    (FILTER_INPUT, "filter", "input", -110),
    (FILTER_FORWARD, "filter", "forward", -110),
    (FILTER_OUTPUT, "filter", "output", -110),
    (FILTER_OUTPUT_POST_DNAT, "filter", "output", -90),
    (NAT_PREROUTING, "nat", "prerouting", -100),
    (NAT_OUTPUT, "nat", "output", -100),
    (NAT_POSTROUTING, "nat", "postrouting", 100),
)
# (destination, source, extra match): upstream nftablesJumpChains, in its order
JUMP_CHAINS: tuple[tuple[str, str, str], ...] = (
    (NODEPORT_ENDPOINTS_CHECK, FILTER_INPUT, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_INPUT, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_FORWARD, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_OUTPUT, "ct state new"),
    (FIREWALL_CHECK, FILTER_PREROUTING, "ct state new"),
    (FIREWALL_CHECK, FILTER_OUTPUT, "ct state new"),
    (SERVICES, NAT_OUTPUT, ""),
    (SERVICES, NAT_PREROUTING, ""),
    (MASQUERADING, NAT_POSTROUTING, ""),
    (CLUSTER_IPS_CHECK, FILTER_FORWARD, "ct state new"),
    (CLUSTER_IPS_CHECK, FILTER_OUTPUT_POST_DNAT, "ct state new"),
)
FIXED_CHAINS = frozenset([c[0] for c in BASE_CHAINS] + [j[0] for j in JUMP_CHAINS]
                         + [CLUSTER_IPS_CHECK, MARK_MASQ, REJECT_CHAIN])
# the containers whose elements are kept per Service (upstream's nftElementStorage)
CONTAINERS = (CLUSTER_IPS, SERVICE_IPS, FIREWALL_IPS, NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS, SERVICE_NODEPORTS)

Rule = tuple[str, "str | None"]         # (rule text, comment)


@dataclass(frozen=True)
class Context:
    """Everything besides the Service that changes the rules (fixed for a sync)."""

    family: str                       # "ip" or "ip6"
    addr_type: str                    # "ipv4_addr" / "ipv6_addr"
    masquerade_mark: str
    masquerade_all: bool
    primary_ip: str | None
    if_local: str | None              # upstream localDetector.IfLocalNFT(), None if not implemented
    if_not_local: str | None
    labels: dict
    nodeport_ips: tuple[str, ...] | None   # None: every local address (MatchAll)
    service_cidrs: tuple[str, ...]


def make_context(node: NodeInfo, config: ProxyConfig | None = None, *, service_cidrs: Sequence[str] = (),
                 masquerade_mark: str | None = None) -> Context:
    """The sync context of ``node``; ``service_cidrs`` of another family are ignored (upstream
    OnServiceCIDRsChanged), ``masquerade_mark`` overrides upstream's "%#08x" spelling."""
    cfg = config or ProxyConfig()
    v6 = node.ip_family == "IPv6"
    fam = "ip6" if v6 else "ip"
    if node.cluster_cidr:
        local = f"{fam} saddr {node.cluster_cidr}"
        not_local = f"{fam} saddr != {node.cluster_cidr}"
    elif node.bridge_interface:
        local, not_local = f"iif {node.bridge_interface}", f"iif != {node.bridge_interface}"
    elif node.interface_prefix:
        local, not_local = f"iifname {node.interface_prefix}*", f"iifname != {node.interface_prefix}*"
    else:
        local = not_local = None
    cidrs = [c.strip() for c in service_cidrs if c.strip() and (":" in c) == v6]
    return Context(fam, "ipv6_addr" if v6 else "ipv4_addr",
                   masquerade_mark or f"{1 << cfg.masquerade_bit:#08x}", cfg.masquerade_all,
                   node.primary_ip, local, not_local, dict(node.labels),
                   _nodeport_ips(node, cfg), tuple(cidrs))


def _nodeport_ips(node: NodeInfo, cfg: ProxyConfig) -> tuple[str, ...] | None:
    """--nodeport-addresses: None for "every address" (no CIDR of our family, or a /0), else
    the node's non-loopback IPs inside them (upstream NodePortAddresses.GetNodeIPs)."""
    v6 = node.ip_family == "IPv6"
    cidrs = []
    for c in cfg.nodeport_addresses:
        net = ipaddress.ip_network(c.strip(), strict=False)
        if (net.version == 6) == v6:
            cidrs.append(net)
    if not cidrs or any(n.prefixlen == 0 for n in cidrs):
        return None
    out = []
    for ip in node.ips:
        addr = ipaddress.ip_address(ip)
        if addr.version == (6 if v6 else 4) and not addr.is_loopback and any(addr in n for n in cidrs):
            out.append(str(addr))
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class Part:
    """One Service port's objects: its chains (in creation order, with their rules), its
    affinity sets, its elements in the shared sets and maps, and the no-local-endpoints counts."""

    chains: tuple[tuple[str, tuple[Rule, ...]], ...]
    affinity_sets: tuple[tuple[str, int], ...]
    elements: tuple[tuple[str, Element], ...]
    no_local_internal: bool = False
    no_local_external: bool = False

    @property
    def chain_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.chains)

    @property
    def rule_count(self) -> int:
        return sum(len(r) for _, r in self.chains)


def build_part(spn: ServicePortName, info: ServicePortInfo, endpoints: Sequence[EndpointInfo],
               ctx: Context) -> Part:
    """Upstream syncProxyRules' loop body for one service port."""
    proto = info.protocol.lower()
    ipx = ctx.family
    name = str(spn)
    base = names.service_base(spn.namespace, spn.name, proto, spn.port)
    cluster_ch, local_ch = names.CLUSTER_PREFIX + base, names.LOCAL_PREFIX + base
    external_ch, fw_ch = names.EXTERNAL_PREFIX + base, names.FIREWALL_PREFIX + base
    cat = categorize_endpoints(endpoints, info, ctx.labels)
    has = cat.has_any
    ep_names = {ep.endpoint: names.endpoint_base(spn.namespace, spn.name, proto, spn.port, ep.ip, ep.port)
                for ep in cat.all_reachable}

    rules: dict[str, list[Rule]] = {}
    for ep in cat.all_reachable:
        rules.setdefault(names.ENDPOINT_PREFIX + ep_names[ep.endpoint], [])
    uses_cluster = bool(cat.cluster) and info.uses_cluster_endpoints
    uses_local = bool(cat.local) and info.uses_local_endpoints
    if uses_cluster:
        rules.setdefault(cluster_ch, [])
    if uses_local:
        rules.setdefault(local_ch, [])
    internal_ch, has_internal = cluster_ch, has
    if info.internal_policy_local:
        internal_ch, has_internal = local_ch, has and bool(cat.local)
    external_policy_ch, has_external = cluster_ch, has
    if info.external_policy_local:
        external_policy_ch, has_external = local_ch, has and bool(cat.local)
    uses_external = has and info.externally_accessible
    if uses_external:
        rules.setdefault(external_ch, [])
    if not has:
        internal_verdict = external_verdict = f"goto {REJECT_CHAIN}"
    else:
        internal_verdict = "drop" if not has_internal else ""
        external_verdict = "drop" if not has_external else ""

    port, els = str(info.port), []
    els.append((CLUSTER_IPS, Element((info.cluster_ip,))))
    if has_internal:
        els.append((SERVICE_IPS, Element((info.cluster_ip, proto, port), (f"goto {internal_ch}",))))
    else:
        els.append((NO_ENDPOINT_SERVICES, Element((info.cluster_ip, proto, port), (internal_verdict,), name)))
    for ip in info.external_ips:
        if has:
            els.append((SERVICE_IPS, Element((ip, proto, port), (f"goto {external_ch}",))))
        if not has_external:
            els.append((NO_ENDPOINT_SERVICES, Element((ip, proto, port), (external_verdict,), name)))
    uses_fw = bool(info.load_balancer_vips) and bool(info.load_balancer_source_ranges)
    if uses_fw:
        rules.setdefault(fw_ch, [])
    for ip in info.load_balancer_vips:
        if has:
            els.append((SERVICE_IPS, Element((ip, proto, port), (f"goto {external_ch}",))))
        if uses_fw:
            els.append((FIREWALL_IPS, Element((ip, proto, port), (f"goto {fw_ch}",))))
    if not has_external:
        for ip in info.load_balancer_vips:
            els.append((NO_ENDPOINT_SERVICES, Element((ip, proto, port), (external_verdict,), name)))
    if info.node_port:
        np = str(info.node_port)
        if has:
            els.append((SERVICE_NODEPORTS, Element((proto, np), (f"goto {external_ch}",))))
        if not has_external:
            els.append((NO_ENDPOINT_NODEPORTS, Element((proto, np), (external_verdict,), name)))

    if has_internal:
        match = f"{ipx} daddr {info.cluster_ip} {proto} dport {info.port}"
        if ctx.masquerade_all:
            rules[internal_ch].append((f"{match} jump {MARK_MASQ}", None))
        elif ctx.if_not_local:
            rules[internal_ch].append((f"{match} {ctx.if_not_local} jump {MARK_MASQ}", None))
    if uses_external:
        _external_rules(rules[external_ch], info, ctx, cluster_ch, external_policy_ch, has_external)
    if uses_fw:
        rules[fw_ch].append((_firewall_rule(info, ctx), None))
    affinity: list[tuple[str, int]] = []
    sticky = info.session_affinity == "ClientIP"
    if sticky:
        affinity = [(names.AFFINITY_PREFIX + ep_names[ep.endpoint], info.sticky_max_age_seconds)
                    for ep in cat.all_reachable]
    if uses_cluster:
        _balance(rules[cluster_ch], cat.cluster, ep_names, ipx, sticky)
    if uses_local:
        _balance(rules[local_ch], cat.local, ep_names, ipx, sticky)
    for ep in cat.all_reachable:
        chain = rules[names.ENDPOINT_PREFIX + ep_names[ep.endpoint]]
        chain.append((f"{ipx} saddr {ep.ip} jump {MARK_MASQ}", None))
        if sticky:
            chain.append((f"update @{names.AFFINITY_PREFIX}{ep_names[ep.endpoint]} {{ {ipx} saddr }}", None))
        chain.append((f"meta l4proto {proto} dnat to {ep.endpoint}", None))
    return Part(tuple((c, tuple(r)) for c, r in rules.items()), tuple(affinity), tuple(els),
                has and not has_internal, has and not has_external)


def _external_rules(out: list[Rule], info: ServicePortInfo, ctx: Context, cluster_ch: str,
                    policy_ch: str, has_external: bool) -> None:
    if not info.external_policy_local:
        out.append((f"jump {MARK_MASQ}", None))
    else:
        if ctx.if_local:
            out.append((f"{ctx.if_local} goto {cluster_ch}", "short-circuit pod traffic"))
        out.append((f"fib saddr type local jump {MARK_MASQ}", "masquerade local traffic"))
        out.append((f"fib saddr type local goto {cluster_ch}", "short-circuit local traffic"))
    if has_external:
        out.append((f"goto {policy_ch}", None))


def _firewall_rule(info: ServicePortInfo, ctx: Context) -> str:
    sources = list(info.load_balancer_source_ranges)
    node_ip = ipaddress.ip_address(ctx.primary_ip) if ctx.primary_ip else None
    if node_ip is not None and any(node_ip in ipaddress.ip_network(c, strict=False) for c in sources):
        sources += list(info.load_balancer_vips)
    return f"{ctx.family} saddr != {{ {' , '.join(sources)} }} drop"


def _balance(out: list[Rule], eps: Sequence[EndpointInfo], ep_names: dict, ipx: str, sticky: bool) -> None:
    """Upstream writeServiceToEndpointRules: affinity lookups, then one numgen vmap."""
    if sticky:
        for ep in eps:
            b = ep_names[ep.endpoint]
            out.append((f"{ipx} saddr @{names.AFFINITY_PREFIX}{b} goto {names.ENDPOINT_PREFIX}{b}", None))
    entries = " , ".join(f"{i} : goto {names.ENDPOINT_PREFIX}{ep_names[ep.endpoint]}" for i, ep in enumerate(eps))
    out.append((f"numgen random mod {len(eps)} vmap {{ {entries} }}", None))
