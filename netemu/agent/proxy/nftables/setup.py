"""The fixed part of kube-proxy's table (upstream setupNFTables): what every full sync rewrites.

The table, its base chains at upstream's priorities, the jump rules into the helper chains, the
masquerading chains, the ``cluster-ips`` and ``nodeport-ips`` sets, the verdict maps and the
rules that look them up. A full sync sends these lines first, each chain added then flushed so
the transaction's result does not depend on what the kernel held; the first sync of a process
also adds and deletes the base chains once, so a priority that changed between versions is
recreated instead of failing the whole transaction (upstream's ``flushed``).
"""

from __future__ import annotations

from .builder import (BASE_CHAINS, CLUSTER_IPS, CLUSTER_IPS_CHECK, CONTAINERS, FIREWALL_CHECK, FIREWALL_IPS,
                      JUMP_CHAINS, MARK_MASQ, MASQUERADING, NO_ENDPOINT_NODEPORTS, NO_ENDPOINT_SERVICES,
                      NODEPORT_ENDPOINTS_CHECK, NODEPORT_IPS, REJECT_CHAIN, SERVICE_ENDPOINTS_CHECK, SERVICE_IPS,
                      SERVICE_NODEPORTS, SERVICES, TABLE, Context)
from .table import quote

# (container, kind, key type, comment) of the shared sets and maps
CONTAINER_SPECS = {
    CLUSTER_IPS: ("set", "{addr}", "Active ClusterIPs"),
    NO_ENDPOINT_SERVICES: ("map", "{addr} . inet_proto . inet_service : verdict",
                           "vmap to drop or reject packets to services with no endpoints"),
    NO_ENDPOINT_NODEPORTS: ("map", "inet_proto . inet_service : verdict",
                            "vmap to drop or reject packets to service nodeports with no endpoints"),
    FIREWALL_IPS: ("map", "{addr} . inet_proto . inet_service : verdict",
                   "destinations that are subject to LoadBalancerSourceRanges"),
    SERVICE_IPS: ("map", "{addr} . inet_proto . inet_service : verdict",
                  "ClusterIP, ExternalIP and LoadBalancer IP traffic"),
    SERVICE_NODEPORTS: ("map", "inet_proto . inet_service : verdict", "NodePort traffic"),
}


def setup_lines(ctx: Context, *, recreate_base_chains: bool) -> list[str]:
    """The fixed objects as transaction lines, in upstream's order (flushes included)."""
    p = f"{ctx.family} {TABLE}"
    out = [f'add table {p} {{ comment "rules for kube-proxy" ; }}']
    if recreate_base_chains:
        for name, *_ in BASE_CHAINS:
            out += [f"add chain {p} {name}", f"delete chain {p} {name}"]
    for name, kind, hook, prio in BASE_CHAINS:
        out += [f"add chain {p} {name} {{ type {kind} hook {hook} priority {prio} ; }}", f"flush chain {p} {name}"]
    created: set[str] = set()

    def ensure(chain: str) -> None:
        if chain not in created:
            created.add(chain)
            out.extend([f"add chain {p} {chain}", f"flush chain {p} {chain}"])

    for dst, src, extra in JUMP_CHAINS:
        ensure(dst)
        out.append(f"add rule {p} {src} {extra + ' ' if extra else ''}jump {dst}")
    for chain in (SERVICES, CLUSTER_IPS_CHECK, MASQUERADING, MARK_MASQ):
        ensure(chain)
    mark = ctx.masquerade_mark
    out += [f"add rule {p} {MARK_MASQ} mark set mark or {mark}",
            f"add rule {p} {MASQUERADING} mark and {mark} == 0 return",
            f"add rule {p} {MASQUERADING} mark set mark xor {mark}",
            f"add rule {p} {MASQUERADING} masquerade fully-random"]
    out.append(_container(p, CLUSTER_IPS, ctx))
    out.append(f"add rule {p} {CLUSTER_IPS_CHECK} {ctx.family} daddr @{CLUSTER_IPS} reject "
               f"comment {quote('Reject traffic to invalid ports of ClusterIPs')}")
    if ctx.service_cidrs:
        out.append(f"add rule {p} {CLUSTER_IPS_CHECK} {ctx.family} daddr {{ {','.join(ctx.service_cidrs)} }} drop "
                   f"comment {quote('Drop traffic to unallocated ClusterIPs')}")
    out.append(f"add set {p} {NODEPORT_IPS} {{ type {ctx.addr_type} ; comment \"IPs that accept NodePort traffic\" ; }}")
    if ctx.nodeport_ips is None:
        out.append(f"delete set {p} {NODEPORT_IPS}")
    else:
        out.append(f"flush set {p} {NODEPORT_IPS}")
        out += [f"add element {p} {NODEPORT_IPS} {{ {ip} }}" for ip in ctx.nodeport_ips]
    out += [_container(p, NO_ENDPOINT_SERVICES, ctx), _container(p, NO_ENDPOINT_NODEPORTS, ctx)]
    out += [f'add chain {p} {REJECT_CHAIN} {{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }}',
            f"flush chain {p} {REJECT_CHAIN}", f"add rule {p} {REJECT_CHAIN} reject"]
    out.append(f"add rule {p} {SERVICE_ENDPOINTS_CHECK} {ctx.family} daddr . meta l4proto . th dport "
               f"vmap @{NO_ENDPOINT_SERVICES}")
    out.append(f"add rule {p} {NODEPORT_ENDPOINTS_CHECK} {_nodeport_match(ctx)} meta l4proto . th dport "
               f"vmap @{NO_ENDPOINT_NODEPORTS}")
    out.append(_container(p, FIREWALL_IPS, ctx))
    out.append(f"add rule {p} {FIREWALL_CHECK} {ctx.family} daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}")
    out += [_container(p, SERVICE_IPS, ctx), _container(p, SERVICE_NODEPORTS, ctx)]
    out.append(f"add rule {p} {SERVICES} {ctx.family} daddr . meta l4proto . th dport vmap @{SERVICE_IPS}")
    local = "fib daddr type local " if ctx.nodeport_ips is None else ""
    out.append(f"add rule {p} {SERVICES} {local}{_nodeport_match(ctx)} meta l4proto . th dport "
               f"vmap @{SERVICE_NODEPORTS}")
    for name in CONTAINERS:           # upstream's nftElementStorage.reset()
        out.append(f"flush {CONTAINER_SPECS[name][0]} {p} {name}")
    return out


def _nodeport_match(ctx: Context) -> str:
    if ctx.nodeport_ips is None:
        return "ip6 daddr != ::1" if ctx.family == "ip6" else "ip daddr != 127.0.0.0/8"
    return f"{ctx.family} daddr @{NODEPORT_IPS}"


def _container(p: str, name: str, ctx: Context) -> str:
    kind, key_type, comment = CONTAINER_SPECS[name]
    return f"add {kind} {p} {name} {{ type {key_type.format(addr=ctx.addr_type)} ; comment {quote(comment)} ; }}"


def fixed_rule_count(ctx: Context) -> int:
    """Rules the fixed chains hold (for the rule-count metrics)."""
    return sum(1 for line in setup_lines(ctx, recreate_base_chains=False) if line.startswith("add rule "))
