"""The iptables rule builder: Services + endpoints -> one ``iptables-restore`` input.

A pure port of syncProxyRules() from kubernetes v1.32 pkg/proxy/iptables/proxier.go: same
chains, same rule order inside each chain, same comments, probabilities, marks and chain
names, so our output can be diffed line by line against a real node's. Two deliberate
differences: Services are written in sorted order (upstream iterates a Go map, so its order
between Services is random; within a Service it is fixed) and stale chains come from
``previous_chains`` instead of an ``iptables-save`` call, keeping this module free of effects.

Partial syncs (KEP-3453): with ``changed`` set, the top-level chains are rewritten whole but
the per-Service chains (KUBE-SVC/SVL/EXT/FW/SEP) of unchanged Services are left out of the
input -- only counted, like upstream's discard buffers -- so iptables keeps them untouched.

Speed: 10k Services x 5 endpoints is the target scale, so rules are f-strings appended to
lists and joined once; chain names come from a memoised hash; there are no per-rule objects.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple, Sequence

from ..categorize import categorize_endpoints
from ..hashing import endpoint_chain, is_service_chain, service_chains
from ..model import (EndpointInfo, NodeInfo, ProxyConfig, ServiceName, ServicePortInfo,
                     ServicePortName)
from .chains import (FILTER_TOP_CHAINS, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_MARK_MASQ,
                     KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_PROXY_FIREWALL, KUBE_SERVICES,
                     KUBELET_FIREWALL, NAT_TOP_CHAINS, NFACCT_CT_INVALID, NFACCT_LOCALHOST_NODEPORTS)

_PROBS: list[str] = ["<bad value>"] + ["%0.10f" % (1.0 / n) for n in range(1, 1001)]


def probability(n: int) -> str:
    """1/n as upstream prints it ("%0.10f"), precomputed like upstream's cache."""
    while n >= len(_PROBS):
        _PROBS.append("%0.10f" % (1.0 / len(_PROBS)))
    return _PROBS[n]


@dataclass(frozen=True)
class RuleSet:
    """One sync's output.

    ``text``: the ``iptables-restore --noflush`` input (filter then nat, as upstream).
    ``chains``: per table, the KUBE-* chains that exist once it is applied (for the next
    sync's ``previous_chains`` and for cleanup). ``rule_counts``: per table, the rules the
    tables hold afterwards (metric kubeproxy_sync_proxy_rules_iptables_total); for a partial
    sync this includes the unchanged Services' rules. ``written_counts``: rules in ``text``
    (kubeproxy_sync_proxy_rules_iptables_last). ``deleted_chains``: stale chains removed.
    """

    text: str
    chains: Mapping[str, frozenset[str]]
    rule_counts: Mapping[str, int]
    written_counts: Mapping[str, int]
    deleted_chains: tuple[str, ...]
    partial: bool
    large_cluster: bool
    no_local_endpoints: Mapping[str, int]  # {"internal": n, "external": n}


class _Plan(NamedTuple):
    """What upstream's per-service-port locals decide, computed once per service port."""

    name: str
    proto: str
    svc_chain: str
    svl_chain: str
    ext_chain: str
    fw_chain: str
    cluster: tuple[EndpointInfo, ...]
    local: tuple[EndpointInfo, ...]
    reachable: tuple[EndpointInfo, ...]
    has_any: bool
    has_internal: bool
    has_external: bool
    uses_ext: bool
    uses_fw: bool
    uses_cluster_chain: bool
    uses_local_chain: bool


def plan_service_port(spn_str: str, info: ServicePortInfo, endpoints: Sequence[EndpointInfo],
                      node_labels: Mapping[str, str]) -> _Plan:
    """Which chains a service port gets and which endpoints go in them."""
    proto = info.protocol.lower()
    svc, svl, ext, fw = service_chains(spn_str, proto)
    cat = categorize_endpoints(endpoints, info, node_labels)
    has_internal = cat.has_any and not (info.internal_policy_local and not cat.local)
    has_external = cat.has_any and not (info.external_policy_local and not cat.local)
    return _Plan(
        spn_str, proto, svc, svl, ext, fw, cat.cluster, cat.local, cat.all_reachable,
        cat.has_any, has_internal, has_external,
        uses_ext=cat.has_any and info.externally_accessible,
        uses_fw=cat.has_any and bool(info.load_balancer_vips) and bool(info.load_balancer_source_ranges),
        uses_cluster_chain=bool(cat.cluster) and info.uses_cluster_endpoints,
        uses_local_chain=bool(cat.local) and info.uses_local_endpoints)


def _spn_str(spn: ServicePortName) -> str:
    return f"{spn.namespace}/{spn.name}:{spn.port}" if spn.port else f"{spn.namespace}/{spn.name}"


def _top_rules(p: _Plan, info: ServicePortInfo, localhost_nfacct: bool, fr: list[str], nr: list[str]) -> None:
    """Rules in the top-level chains (always written, also on partial syncs)."""
    name, proto = p.name, p.proto
    m = f"-m {proto} -p {proto}"
    port = info.port
    ext_target = ext_comment = ""
    if not p.has_any:
        ext_target, ext_comment = "REJECT", f'"{name} has no endpoints"'
        int_target, int_comment = ext_target, ext_comment
    else:
        int_target, int_comment = "DROP", f'"{name} has no local endpoints"'
        if not p.has_external:
            ext_target, ext_comment = int_target, int_comment

    if p.has_internal:
        nr.append(f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" {m} -d {info.cluster_ip} '
                  f'--dport {port} -j {p.svl_chain if info.internal_policy_local else p.svc_chain}')
    else:
        fr.append(f"-A KUBE-SERVICES -m comment --comment {int_comment} {m} -d {info.cluster_ip} "
                  f"--dport {port} -j {int_target}")
    for ip in info.external_ips:
        if p.has_any:
            nr.append(f'-A KUBE-SERVICES -m comment --comment "{name} external IP" {m} -d {ip} '
                      f'--dport {port} -j {p.ext_chain}')
        if not p.has_external:
            fr.append(f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} {m} -d {ip} "
                      f"--dport {port} -j {ext_target}")
    lb_chain = p.fw_chain if p.uses_fw else p.ext_chain
    for ip in info.load_balancer_vips:
        if p.has_any:
            nr.append(f'-A KUBE-SERVICES -m comment --comment "{name} loadbalancer IP" {m} -d {ip} '
                      f'--dport {port} -j {lb_chain}')
        if p.uses_fw:
            fr.append(f'-A KUBE-PROXY-FIREWALL -m comment --comment "{name} traffic not accepted by '
                      f'{p.fw_chain}" {m} -d {ip} --dport {port} -j DROP')
    if not p.has_external:
        for ip in info.load_balancer_vips:
            fr.append(f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} {m} -d {ip} "
                      f"--dport {port} -j {ext_target}")
    if info.node_port:
        if p.has_any:
            if localhost_nfacct:
                nr.append(f"-A KUBE-NODEPORTS -m comment --comment {name} {m} -d 127.0.0.0/8 "
                          f"--dport {info.node_port} -m nfacct --nfacct-name {NFACCT_LOCALHOST_NODEPORTS} "
                          f"-j {p.ext_chain}")
            nr.append(f"-A KUBE-NODEPORTS -m comment --comment {name} {m} --dport {info.node_port} "
                      f"-j {p.ext_chain}")
        if not p.has_external:
            fr.append(f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} -m addrtype "
                      f"--dst-type LOCAL {m} --dport {info.node_port} -j {ext_target}")
    if info.health_check_node_port:
        fr.append(f'-A KUBE-NODEPORTS -m comment --comment "{name} health check node port" -m tcp -p tcp '
                  f"--dport {info.health_check_node_port} -j ACCEPT")


def _service_chains(p: _Plan, info: ServicePortInfo, node: NodeInfo, cfg: ProxyConfig, large: bool,
                    nc: list[str], nr: list[str], active: set[str]) -> None:
    """The Service's own chains: KUBE-SVC/SVL (balancing), KUBE-EXT, KUBE-FW, KUBE-SEP."""
    name, proto = p.name, p.proto
    if p.has_internal and (cfg.masquerade_all or node.detects_local):
        chain = p.svl_chain if info.internal_policy_local else p.svc_chain
        cond = "" if cfg.masquerade_all else " " + " ".join(node.if_not_local())
        nr.append(f'-A {chain} -m comment --comment "{name} cluster IP" -m {proto} -p {proto} '
                  f"-d {info.cluster_ip} --dport {info.port}{cond} -j KUBE-MARK-MASQ")
    if p.uses_ext:
        _ext_chain(p, info, node, nc, nr, active)
    if p.uses_fw:
        _fw_chain(p, info, node, nc, nr, active)
    sep_of = {ep.endpoint: endpoint_chain(name, proto, ep.endpoint) for ep in p.reachable}
    if p.uses_cluster_chain:
        nc.append(f":{p.svc_chain} - [0:0]")
        active.add(p.svc_chain)
        _balance(p, info, p.svc_chain, p.cluster, sep_of, large, nr)
    if p.uses_local_chain:
        nc.append(f":{p.svl_chain} - [0:0]")
        active.add(p.svl_chain)
        _balance(p, info, p.svl_chain, p.local, sep_of, large, nr)
    comment = "" if large else f" -m comment --comment {name}"
    recent = info.session_affinity == "ClientIP"
    for ep in p.reachable:
        sep = sep_of[ep.endpoint]
        nc.append(f":{sep} - [0:0]")
        active.add(sep)
        nr.append(f"-A {sep}{comment} -s {ep.ip} -j KUBE-MARK-MASQ")
        aff = f" -m recent --name {sep} --set" if recent else ""
        nr.append(f"-A {sep}{comment}{aff} -m {proto} -p {proto} -j DNAT --to-destination {ep.endpoint}")


def _ext_chain(p: _Plan, info: ServicePortInfo, node: NodeInfo,
               nc: list[str], nr: list[str], active: set[str]) -> None:
    ext, name = p.ext_chain, p.name
    nc.append(f":{ext} - [0:0]")
    active.add(ext)
    if not info.external_policy_local:
        nr.append(f'-A {ext} -m comment --comment "masquerade traffic for {name} external destinations" '
                  f"-j KUBE-MARK-MASQ")
    else:
        if node.detects_local:
            nr.append(f'-A {ext} -m comment --comment "pod traffic for {name} external destinations" '
                      f'{" ".join(node.if_local())} -j {p.svc_chain}')
        nr.append(f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {name} external '
                  f'destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ')
        nr.append(f'-A {ext} -m comment --comment "route LOCAL traffic for {name} external '
                  f'destinations" -m addrtype --src-type LOCAL -j {p.svc_chain}')
    if p.has_external:
        nr.append(f"-A {ext} -j {p.svl_chain if info.external_policy_local else p.svc_chain}")


def _fw_chain(p: _Plan, info: ServicePortInfo, node: NodeInfo,
              nc: list[str], nr: list[str], active: set[str]) -> None:
    """loadBalancerSourceRanges: allowed sources go on to KUBE-EXT; the rest falls through
    and is dropped by KUBE-PROXY-FIREWALL in filter (it was never DNATed)."""
    fw, name = p.fw_chain, p.name
    nc.append(f":{fw} - [0:0]")
    active.add(fw)
    head = f'-A {fw} -m comment --comment "{name} loadbalancer IP"'
    for cidr in info.load_balancer_source_ranges:
        nr.append(f"{head} -s {cidr} -j {p.ext_chain}")
    if _any_contains(info.load_balancer_source_ranges, node.primary_ip):
        for ip in info.load_balancer_vips:
            nr.append(f"{head} -s {ip} -j {p.ext_chain}")
    nr.append(f'-A {fw} -m comment --comment "other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL"')


def _any_contains(cidrs: Iterable[str], ip: str | None) -> bool:
    if not ip:
        return False
    addr = ipaddress.ip_address(ip)
    return any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)


def _balance(p: _Plan, info: ServicePortInfo, chain: str, eps: Sequence[EndpointInfo],
             sep_of: Mapping[str, str], large: bool, nr: list[str]) -> None:
    """Affinity checks first, then one rule per endpoint with probability 1/(n-i), last none.

    (Cluster and local endpoints are subsets of the reachable ones, so ``sep_of`` names them.)"""
    name = p.name
    seps = [sep_of[ep.endpoint] for ep in eps]
    if info.session_affinity == "ClientIP":
        secs = info.sticky_max_age_seconds
        for ep, sep in zip(eps, seps):
            c = "" if large else f' -m comment --comment "{name} -> {ep.endpoint}"'
            nr.append(f"-A {chain}{c} -m recent --name {sep} --rcheck --seconds {secs} --reap -j {sep}")
    n = len(eps)
    for i, (ep, sep) in enumerate(zip(eps, seps)):
        c = "" if large else f' -m comment --comment "{name} -> {ep.endpoint}"'
        if i < n - 1:
            nr.append(f"-A {chain}{c} -m statistic --mode random --probability {probability(n - i)} -j {sep}")
        else:
            nr.append(f"-A {chain}{c} -j {sep}")


def _count_service_chains(p: _Plan, info: ServicePortInfo, node: NodeInfo, cfg: ProxyConfig,
                          active: set[str]) -> int:
    """Rules _service_chains() would write (for the metric), without building them."""
    n = 1 if p.has_internal and (cfg.masquerade_all or node.detects_local) else 0
    if p.uses_ext:
        active.add(p.ext_chain)
        n += (2 + (1 if node.detects_local else 0)) if info.external_policy_local else 1
        n += 1 if p.has_external else 0
    if p.uses_fw:
        active.add(p.fw_chain)
        n += len(info.load_balancer_source_ranges) + 1
        if _any_contains(info.load_balancer_source_ranges, node.primary_ip):
            n += len(info.load_balancer_vips)
    per_ep = 2 if info.session_affinity == "ClientIP" else 1
    if p.uses_cluster_chain:
        active.add(p.svc_chain)
        n += per_ep * len(p.cluster)
    if p.uses_local_chain:
        active.add(p.svl_chain)
        n += per_ep * len(p.local)
    for ep in p.reachable:
        active.add(endpoint_chain(p.name, p.proto, ep.endpoint))
    return n + 2 * len(p.reachable)


def _localhost_nodeports(node: NodeInfo, cfg: ProxyConfig) -> bool:
    """Upstream turns localhost NodePorts off unless nodePortAddresses admits 127.0.0.1 (IPv4 only)."""
    if not cfg.localhost_nodeports or node.ip_family != "IPv4":
        return False
    return not cfg.nodeport_addresses or _any_contains(cfg.nodeport_addresses, "127.0.0.1")


def _nodeport_jumps(node: NodeInfo, cfg: ProxyConfig, localhost: bool) -> list[str]:
    """The KUBE-SERVICES -> KUBE-NODEPORTS tail call(s); must be the chain's last rules."""
    comment = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
    if not cfg.nodeport_addresses:
        dest = "-m addrtype --dst-type LOCAL"
        if node.ip_family == "IPv6":
            dest += " ! -d ::1/128"
        elif not localhost:
            dest += " ! -d 127.0.0.0/8"
        return [f"-A KUBE-SERVICES {comment} {dest} -j KUBE-NODEPORTS"]
    ips = [ip for ip in node.ips if _any_contains(cfg.nodeport_addresses, ip)]
    if localhost:
        ips.append("127.0.0.1")
    return [f"-A KUBE-SERVICES {comment} -d {ip} -j KUBE-NODEPORTS" for ip in ips]


def _forward_rules(cfg: ProxyConfig) -> list[str]:
    mark = cfg.masquerade_mark
    out = []
    if not cfg.conntrack_tcp_liberal:
        acct = f" -m nfacct --nfacct-name {NFACCT_CT_INVALID}" if cfg.nfacct else ""
        out.append(f"-A KUBE-FORWARD -m conntrack --ctstate INVALID{acct} -j DROP")
    out.append(f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" '
               f"-m mark --mark {mark}/{mark} -j ACCEPT")
    out.append('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
               "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    return out


def _fixed_nat_rules(cfg: ProxyConfig) -> list[str]:
    mark = cfg.masquerade_mark
    masq = '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE'
    return [f"-A KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN",
            f"-A KUBE-POSTROUTING -j MARK --xor-mark {mark}",
            masq + (" --random-fully" if cfg.random_fully else ""),
            f"-A KUBE-MARK-MASQ -j MARK --or-mark {mark}"]


def build(services: Mapping[ServicePortName, ServicePortInfo],
          endpoints: Mapping[ServicePortName, Sequence[EndpointInfo]],
          node: NodeInfo, config: ProxyConfig | None = None, *,
          changed: Iterable[ServiceName] | None = None,
          previous_chains: Iterable[str] | None = None) -> RuleSet:
    """Build the restore input for filter and nat (upstream syncProxyRules, minus the I/O).

    ``changed=None``: full sync. A set of ServiceNames: partial sync, writing the per-Service
    chains of those Services only. ``previous_chains``: nat chains present before this sync
    (the previous RuleSet's ``chains`` or its ``["nat"]``, or an iptables-save); our stale service
    chains among them are declared then deleted with -X. None: delete nothing.
    """
    cfg = config or ProxyConfig()
    changed_set = None if changed is None else {ServiceName(*s) for s in changed}
    localhost = _localhost_nodeports(node, cfg)
    localhost_nfacct = localhost and cfg.nfacct
    labels = node.labels

    fc = [f":{c} - [0:0]" for c in FILTER_TOP_CHAINS]
    nc = [f":{c} - [0:0]" for c in NAT_TOP_CHAINS]
    fr: list[str] = []
    nr = _fixed_nat_rules(cfg)
    if localhost:
        fc.append(f":{KUBELET_FIREWALL} - [0:0]")
        fr.append('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" '
                  "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")

    active: set[str] = set()
    order = sorted(services)
    total_eps = sum(len(endpoints.get(spn, ())) for spn in order)
    large = total_eps > cfg.large_cluster_threshold
    skipped_rules = 0
    no_local = {"internal": 0, "external": 0}
    for spn in order:
        info = services[spn]
        p = plan_service_port(_spn_str(spn), info, endpoints.get(spn, ()), labels)
        if p.has_any:
            no_local["internal"] += not p.has_internal
            no_local["external"] += not p.has_external
        _top_rules(p, info, localhost_nfacct, fr, nr)
        if changed_set is not None and (spn.namespace, spn.name) not in changed_set:
            skipped_rules += _count_service_chains(p, info, node, cfg, active)
        else:
            _service_chains(p, info, node, cfg, large, nc, nr, active)

    if isinstance(previous_chains, Mapping):  # a previous RuleSet.chains
        previous_chains = previous_chains.get("nat", ())
    deleted = tuple(sorted(c for c in set(previous_chains or ()) - active if is_service_chain(c)))
    for chain in deleted:
        nc.append(f":{chain} - [0:0]")
        nr.append(f"-X {chain}")
    nr.extend(_nodeport_jumps(node, cfg, localhost))
    fr.extend(_forward_rules(cfg))

    text = "\n".join(["*filter", *fc, *fr, "COMMIT", "*nat", *nc, *nr, "COMMIT", ""])
    filter_chains = frozenset(FILTER_TOP_CHAINS) | ({KUBELET_FIREWALL} if localhost else frozenset())
    return RuleSet(
        text=text,
        chains={"filter": filter_chains, "nat": frozenset(NAT_TOP_CHAINS) | active},
        rule_counts={"filter": len(fr), "nat": len(nr) + skipped_rules - len(deleted)},
        written_counts={"filter": len(fr), "nat": len(nr) - len(deleted)},
        deleted_chains=deleted, partial=changed_set is not None, large_cluster=large,
        no_local_endpoints=no_local)
