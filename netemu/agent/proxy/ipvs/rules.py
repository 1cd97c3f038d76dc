"""The IPVS mode's iptables rules (kubernetes v1.32 pkg/proxy/ipvs/proxier.go: iptablesJumpChain,
iptablesChains, ipsetWithIptablesChain, writeIptablesRules, acceptIPVSTraffic).

IPVS balances but neither masquerades nor filters, so a few fixed chains do that, matching the
ipsets (sets.py) instead of naming Services: their number does not grow with the cluster. What
varies is only which rules exist (a rule matching an empty set is left out, as upstream does) and
one DROP per load-balancer IP whose source ranges exclude the node (KUBE-IPVS-OUT-FILTER).

``restore_text`` is the ``iptables-restore --noflush`` input of a sync (nat then filter, as
upstream writes it: each declared chain is flushed and rewritten whole); ``jump_rules`` are the
jumps from the built-in chains that upstream ensures with ``iptables -I`` on every sync.
"""

from __future__ import annotations

from typing import Iterable

from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.agent.proxy.xtables.apply import JumpRule, spec

from . import sets as S

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_SOURCE_RANGES_FIREWALL = "KUBE-SOURCE-RANGES-FIREWALL"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_NODE_PORT = "KUBE-NODE-PORT"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_LOAD_BALANCER = "KUBE-LOAD-BALANCER"
KUBE_IPVS_FILTER = "KUBE-IPVS-FILTER"
KUBE_IPVS_OUT_FILTER = "KUBE-IPVS-OUT-FILTER"

# upstream iptablesChains, in order
NAT_CHAINS = (KUBE_SERVICES, KUBE_POSTROUTING, KUBE_NODE_PORT, KUBE_LOAD_BALANCER, KUBE_MARK_MASQ)
FILTER_CHAINS = (KUBE_FORWARD, KUBE_NODE_PORT, KUBE_PROXY_FIREWALL, KUBE_SOURCE_RANGES_FIREWALL,
                 KUBE_IPVS_FILTER, KUBE_IPVS_OUT_FILTER)

# upstream iptablesJumpChain: (table, from, to, comment), in order
_JUMPS = (
    ("nat", "OUTPUT", KUBE_SERVICES, "kubernetes service portals"),
    ("nat", "PREROUTING", KUBE_SERVICES, "kubernetes service portals"),
    ("nat", "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules"),
    ("filter", "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules"),
    ("filter", "INPUT", KUBE_NODE_PORT, "kubernetes health check rules"),
    ("filter", "INPUT", KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    ("filter", "FORWARD", KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    ("filter", "INPUT", KUBE_IPVS_FILTER, "kubernetes ipvs access filter"),
    ("filter", "OUTPUT", KUBE_IPVS_OUT_FILTER, "kubernetes ipvs access filter"),
)

# upstream ipsetWithIptablesChain: (set, table, from chain, target, match type, protocol match)
_SET_RULES = (
    (S.LOOP_BACK, "nat", KUBE_POSTROUTING, "MASQUERADE", "dst,dst,src", ""),
    (S.LOAD_BALANCER, "nat", KUBE_SERVICES, KUBE_LOAD_BALANCER, "dst,dst", ""),
    (S.LOAD_BALANCER_LOCAL, "nat", KUBE_LOAD_BALANCER, "RETURN", "dst,dst", ""),
    (S.NODE_PORT_LOCAL_TCP, "nat", KUBE_NODE_PORT, "RETURN", "dst", "tcp"),
    (S.NODE_PORT_TCP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst", "tcp"),
    (S.NODE_PORT_LOCAL_UDP, "nat", KUBE_NODE_PORT, "RETURN", "dst", "udp"),
    (S.NODE_PORT_UDP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst", "udp"),
    (S.NODE_PORT_LOCAL_SCTP, "nat", KUBE_NODE_PORT, "RETURN", "dst,dst", "sctp"),
    (S.NODE_PORT_SCTP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst,dst", "sctp"),
    (S.LOAD_BALANCER_FW, "filter", KUBE_PROXY_FIREWALL, KUBE_SOURCE_RANGES_FIREWALL, "dst,dst", ""),
    (S.LOAD_BALANCER_SOURCE_CIDR, "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src", ""),
    (S.LOAD_BALANCER_SOURCE_IP, "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src", ""),
)


def jump_rules() -> list[JumpRule]:
    """The jumps from built-in chains, in the order upstream ensures them (each prepended)."""
    return [JumpRule(t, src, dst, ("-m", "comment", "--comment", c, "-j", dst)) for t, src, dst, c in _JUMPS]


def saved_jumps() -> dict[tuple[str, str], tuple[str, ...]]:
    """The jumps as ``iptables-save`` shows them on a node, per built-in chain (prepending puts
    the last ensured first): what the tracer assumes for a dump without built-in chains."""
    out: dict[tuple[str, str], list[str]] = {}
    for r in jump_rules():
        out.setdefault((r.table, r.src_chain), []).insert(0, spec(r.args))
    return {k: tuple(v) for k, v in out.items()}


def _comment(name: str) -> str:
    return f'-m comment --comment "{S.BY_NAME[name].comment}"'


def restore_text(nonempty: Iterable[str], no_node_access: Iterable[tuple[str, str, int]],
                 node: NodeInfo, config: ProxyConfig) -> str:
    """The nat and filter input of one sync. ``nonempty``: the (IPv4) names of the sets that
    hold entries; ``no_node_access``: (LB IP, protocol, port) whose source ranges exclude the
    node's IP, so the node itself may not reach them (upstream issue 119656)."""
    full = set(nonempty)
    ipv6 = node.ip_family == "IPv6"
    n = lambda name: S.name_for(name, ipv6)  # noqa: E731
    mark = config.masquerade_mark
    nat = [f"-A {KUBE_SERVICES} -s {'::1/128' if ipv6 else '127.0.0.0/8'} -j RETURN"]
    filt: list[str] = []
    for name, table, chain, target, match, proto in _SET_RULES:
        if name in full:
            p = f" -p {proto}" if proto else ""
            (nat if table == "nat" else filt).append(
                f"-A {chain}{p} {_comment(name)} -m set --match-set {n(name)} {match} -j {target}")
    if S.CLUSTER_IP in full:
        head = f"-A {KUBE_SERVICES} {_comment(S.CLUSTER_IP)} -m set --match-set {n(S.CLUSTER_IP)}"
        if config.masquerade_all:
            nat.append(f"{head} dst,dst -j {KUBE_MARK_MASQ}")
        elif node.detects_local:
            nat.append(f"{head} dst,dst {' '.join(node.if_not_local())} -j {KUBE_MARK_MASQ}")
        else:   # no local-traffic detection: masquerade node traffic sourced from a VIP
            nat.append(f"{head} src,dst -j {KUBE_MARK_MASQ}")
    for name, masquerade in ((S.EXTERNAL_IP, True), (S.EXTERNAL_IP_LOCAL, False)):
        if name in full:
            head = f"-A {KUBE_SERVICES} {_comment(name)} -m set --match-set {n(name)} dst,dst"
            if masquerade:
                nat.append(f"{head} -j {KUBE_MARK_MASQ}")
            nat.append(f"{head} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT")
            nat.append(f"{head} -m addrtype --dst-type LOCAL -j ACCEPT")
    nat.append(f"-A {KUBE_SERVICES} -m addrtype --dst-type LOCAL -j {KUBE_NODE_PORT}")
    nat.append(f"-A {KUBE_LOAD_BALANCER} -j {KUBE_MARK_MASQ}")
    filt.append(f"-A {KUBE_SOURCE_RANGES_FIREWALL} -j DROP")
    for ip, proto, port in no_node_access:
        filt.append(f"-A {KUBE_IPVS_OUT_FILTER} -s {ip} -m ipvs --vaddr {ip} --vproto {proto} "
                    f"--vport {port} -j DROP")
    for name in (S.CLUSTER_IP, S.LOAD_BALANCER):       # acceptIPVSTraffic: the end of KUBE-SERVICES
        if name in full:
            nat.append(f"-A {KUBE_SERVICES} -m set --match-set {n(name)} dst,dst -j ACCEPT")
    filt += [f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" -m mark --mark {mark}/{mark} '
             "-j ACCEPT",
             f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack '
             "--ctstate RELATED,ESTABLISHED -j ACCEPT",
             f"-A {KUBE_NODE_PORT} {_comment(S.HEALTH_CHECK_NODE_PORT)} -m set --match-set "
             f"{n(S.HEALTH_CHECK_NODE_PORT)} dst -j ACCEPT"]
    for name, match in ((S.LOAD_BALANCER, "dst,dst"), (S.CLUSTER_IP, "dst,dst"), (S.EXTERNAL_IP, "dst,dst"),
                        (S.EXTERNAL_IP_LOCAL, "dst,dst"), (S.HEALTH_CHECK_NODE_PORT, "dst")):
        filt.append(f"-A {KUBE_IPVS_FILTER} -m set --match-set {n(name)} {match} -j RETURN")
    filt.append(f"-A {KUBE_IPVS_FILTER} -m conntrack --ctstate NEW -m set --match-set {n(S.IPVS_IPS)} dst -j REJECT")
    nat += [f"-A {KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
            f"-A {KUBE_POSTROUTING} -j MARK --xor-mark {mark}",
            f'-A {KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE'
            + (" --random-fully" if config.random_fully else ""),
            f"-A {KUBE_MARK_MASQ} -j MARK --or-mark {mark}"]
    return "\n".join(["*nat", *(f":{c} - [0:0]" for c in NAT_CHAINS), *nat, "COMMIT",
                      "*filter", *(f":{c} - [0:0]" for c in FILTER_CHAINS), *filt, "COMMIT", ""])
