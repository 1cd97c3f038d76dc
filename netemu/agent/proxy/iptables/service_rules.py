"""The rules of one service port (kubernetes v1.32 pkg/proxy/iptables/proxier.go, the body of
syncProxyRules' per-service loop and writeServiceToEndpointRules).

``plan_service_port`` decides, from the endpoints categorised by traffic policy, which chains a
service port gets; ``write_top_rules`` writes its rules in the top-level chains (KUBE-SERVICES,
KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES, KUBE-PROXY-FIREWALL: always written, also on partial
syncs); ``write_service_chains`` its own chains (KUBE-SVC/SVL/EXT/FW/SEP), and
``count_service_chains`` only counts those for a partial sync that leaves them untouched.
Every rule is one f-string appended to a list: at 10k Services there is no room for objects.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Mapping, NamedTuple, Sequence

from ..categorize import categorize_endpoints
from ..hashing import endpoint_chain, service_chains
from ..model import EndpointInfo, NodeInfo, ProxyConfig, ServicePortInfo, ServicePortName
from .chains import NFACCT_LOCALHOST_NODEPORTS

_PROBS: list[str] = ["<bad value>"] + ["%0.10f" % (1.0 / n) for n in range(1, 1001)]


def probability(n: int) -> str:
    """1/n as upstream prints it ("%0.10f"), precomputed like upstream's cache."""
    while n >= len(_PROBS):
        _PROBS.append("%0.10f" % (1.0 / len(_PROBS)))
    return _PROBS[n]



class Plan(NamedTuple):
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


def plan_service_port(name: str, info: ServicePortInfo, endpoints: Sequence[EndpointInfo],
                      node_labels: Mapping[str, str]) -> Plan:
    """Which chains a service port gets and which endpoints go in them."""
    proto = info.protocol.lower()
    svc, svl, ext, fw = service_chains(name, proto)
    cat = categorize_endpoints(endpoints, info, node_labels)
    has_internal = cat.has_any and not (info.internal_policy_local and not cat.local)
    has_external = cat.has_any and not (info.external_policy_local and not cat.local)
    return Plan(
        name, proto, svc, svl, ext, fw, cat.cluster, cat.local, cat.all_reachable,
        cat.has_any, has_internal, has_external,
        uses_ext=cat.has_any and info.externally_accessible,
        uses_fw=cat.has_any and bool(info.load_balancer_vips) and bool(info.load_balancer_source_ranges),
        uses_cluster_chain=bool(cat.cluster) and info.uses_cluster_endpoints,
        uses_local_chain=bool(cat.local) and info.uses_local_endpoints)


def spn_str(spn: ServicePortName) -> str:
    return f"{spn.namespace}/{spn.name}:{spn.port}" if spn.port else f"{spn.namespace}/{spn.name}"


def write_top_rules(p: Plan, info: ServicePortInfo, localhost_nfacct: bool, fr: list[str], nr: list[str]) -> None:
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


def write_service_chains(p: Plan, info: ServicePortInfo, node: NodeInfo, cfg: ProxyConfig, large: bool,
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


def _ext_chain(p: Plan, info: ServicePortInfo, node: NodeInfo,
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


def _fw_chain(p: Plan, info: ServicePortInfo, node: NodeInfo,
              nc: list[str], nr: list[str], active: set[str]) -> None:
    """loadBalancerSourceRanges: allowed sources go on to KUBE-EXT; the rest falls through
    and is dropped by KUBE-PROXY-FIREWALL in filter (it was never DNATed)."""
    fw, name = p.fw_chain, p.name
    nc.append(f":{fw} - [0:0]")
    active.add(fw)
    head = f'-A {fw} -m comment --comment "{name} loadbalancer IP"'
    for cidr in info.load_balancer_source_ranges:
        nr.append(f"{head} -s {cidr} -j {p.ext_chain}")
    if any_contains(info.load_balancer_source_ranges, node.primary_ip):
        for ip in info.load_balancer_vips:
            nr.append(f"{head} -s {ip} -j {p.ext_chain}")
    nr.append(f'-A {fw} -m comment --comment "other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL"')


def any_contains(cidrs: Iterable[str], ip: str | None) -> bool:
    if not ip:
        return False
    addr = ipaddress.ip_address(ip)
    return any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)


def _balance(p: Plan, info: ServicePortInfo, chain: str, eps: Sequence[EndpointInfo],
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


def count_service_chains(p: Plan, info: ServicePortInfo, node: NodeInfo, cfg: ProxyConfig,
                          active: set[str]) -> int:
    """Rules write_service_chains() would write (for the metric), without building them."""
    n = 1 if p.has_internal and (cfg.masquerade_all or node.detects_local) else 0
    if p.uses_ext:
        active.add(p.ext_chain)
        n += (2 + (1 if node.detects_local else 0)) if info.external_policy_local else 1
        n += 1 if p.has_external else 0
    if p.uses_fw:
        active.add(p.fw_chain)
        n += len(info.load_balancer_source_ranges) + 1
        if any_contains(info.load_balancer_source_ranges, node.primary_ip):
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

