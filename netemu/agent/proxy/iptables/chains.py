"""Fixed chain names and the jump rules from the built-in chains (kubernetes v1.32
pkg/proxy/iptables/proxier.go: iptablesJumpChains, iptablesKubeletJumpChains).

The jump rules (PREROUTING -> KUBE-SERVICES, ...) are not part of the restore input: kube-proxy
must not own whole built-in chains, so upstream ensures each jump with its own
``iptables -C`` / ``-I`` call on full syncs. ``jump_rules()`` returns them as data for the
applier to ensure the same way.
"""

from __future__ import annotations

from netemu.agent.proxy.xtables.apply import JumpRule, spec

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"
KUBELET_FIREWALL = "KUBE-FIREWALL"

# Top-level chains declared (and so flushed) by every sync, in upstream's order.
FILTER_TOP_CHAINS = (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL)
NAT_TOP_CHAINS = (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ)

# upstream ipt.Monitor() creates this empty chain in each table and resyncs if it vanishes.
CANARY_TABLES = ("mangle", "nat", "filter")

NFACCT_CT_INVALID = "ct_state_invalid_dropped_pkts"
NFACCT_LOCALHOST_NODEPORTS = "localhost_nps_accepted_pkts"


_NEW = ("-m", "conntrack", "--ctstate", "NEW")

# (table, dst, src, comment, extra args): upstream's iptablesJumpChains, in order.
_JUMPS = (
    ("filter", KUBE_EXTERNAL_SERVICES, "INPUT", "kubernetes externally-visible service portals", _NEW),
    ("filter", KUBE_EXTERNAL_SERVICES, "FORWARD", "kubernetes externally-visible service portals", _NEW),
    ("filter", KUBE_NODEPORTS, "INPUT", "kubernetes health check service ports", ()),
    ("filter", KUBE_SERVICES, "FORWARD", "kubernetes service portals", _NEW),
    ("filter", KUBE_SERVICES, "OUTPUT", "kubernetes service portals", _NEW),
    ("filter", KUBE_FORWARD, "FORWARD", "kubernetes forwarding rules", ()),
    ("filter", KUBE_PROXY_FIREWALL, "INPUT", "kubernetes load balancer firewall", _NEW),
    ("filter", KUBE_PROXY_FIREWALL, "OUTPUT", "kubernetes load balancer firewall", _NEW),
    ("filter", KUBE_PROXY_FIREWALL, "FORWARD", "kubernetes load balancer firewall", _NEW),
    ("nat", KUBE_SERVICES, "OUTPUT", "kubernetes service portals", ()),
    ("nat", KUBE_SERVICES, "PREROUTING", "kubernetes service portals", ()),
    ("nat", KUBE_POSTROUTING, "POSTROUTING", "kubernetes postrouting rules", ()),
    # iptablesKubeletJumpChains: duplicates of kubelet's, no comment.
    ("filter", KUBELET_FIREWALL, "INPUT", "", ()),
    ("filter", KUBELET_FIREWALL, "OUTPUT", "", ()),
)


def jump_rules() -> list[JumpRule]:
    """The rules upstream ensures in built-in chains, in the order it ensures them.

    Idempotent by construction: the applier checks each with ``-C`` and inserts (``-I``, i.e.
    prepends, as upstream) only the missing ones, after creating ``dst_chain`` with ``-N``.
    The comment is passed as one argv element (no shell, no quoting).
    """
    out = []
    for table, dst, src, comment, extra in _JUMPS:
        args = tuple(extra) + (("-m", "comment", "--comment", comment) if comment else ()) + ("-j", dst)
        out.append(JumpRule(table, src, dst, args))
    return out


def saved_jumps() -> dict[tuple[str, str], tuple[str, ...]]:
    """The jump rules as ``iptables-save`` shows them on a node, per (table, built-in chain), in
    the order of the chains in a save: kube-proxy prepends each (``-I``), so per chain the last
    ensured comes first; the kubelet's KUBE-FIREWALL jumps come last (the kubelet made them
    before kube-proxy started, and kube-proxy finds them in place)."""
    from netemu.agent.proxy.xtables.dump import BUILTIN_CHAINS

    rules = jump_rules()
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for table in ("filter", "nat"):
        for src in BUILTIN_CHAINS[table]:
            mine = [r for r in rules if (r.table, r.src_chain) == (table, src)]
            ours = [spec(r.args) for r in reversed(mine) if r.dst_chain != KUBELET_FIREWALL]
            kubelet = [spec(r.args) for r in mine if r.dst_chain == KUBELET_FIREWALL]
            if mine:
                out[(table, src)] = (*ours, *kubelet)
    return out


def canary_chains() -> list[tuple[str, str]]:
    """(table, chain) pairs upstream's ipt.Monitor creates empty and polls: if one vanishes,
    something flushed iptables behind kube-proxy's back and a full sync must follow."""
    return [(table, KUBE_PROXY_CANARY) for table in CANARY_TABLES]
