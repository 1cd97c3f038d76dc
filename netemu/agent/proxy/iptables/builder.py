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

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from ..hashing import is_service_chain
from ..model import EndpointInfo, NodeInfo, ProxyConfig, ServiceName, ServicePortInfo, ServicePortName
from .cache import BuildCache, make_entry
from .chains import (FILTER_TOP_CHAINS, KUBELET_FIREWALL, NAT_TOP_CHAINS, NFACCT_CT_INVALID)
from .service_rules import (any_contains, count_service_chains, plan_service_port, probability, spn_str,
                            write_service_chains, write_top_rules)

__all__ = ["BuildCache", "RuleSet", "build", "probability"]


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



def _nodeport_cidrs(node: NodeInfo, cfg: ProxyConfig) -> tuple[str, ...] | None:
    """--nodeport-addresses of the node's family; None means every address (upstream
    NodePortAddresses: no CIDR of the family, or a zero-masked one, matches all)."""
    v6 = node.ip_family == "IPv6"
    cidrs = tuple(c for c in cfg.nodeport_addresses if (":" in c) == v6)
    if not cidrs or any(c.strip().endswith("/0") for c in cidrs):
        return None
    return cidrs


def _localhost_nodeports(node: NodeInfo, cfg: ProxyConfig) -> bool:
    """Upstream turns localhost NodePorts off unless nodePortAddresses admits 127.0.0.1 (IPv4 only)."""
    if not cfg.localhost_nodeports or node.ip_family != "IPv4":
        return False
    cidrs = _nodeport_cidrs(node, cfg)
    return cidrs is None or any_contains(cidrs, "127.0.0.1")


def _nodeport_jumps(node: NodeInfo, cfg: ProxyConfig, localhost: bool) -> list[str]:
    """The KUBE-SERVICES -> KUBE-NODEPORTS tail call(s); must be the chain's last rules."""
    comment = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
    cidrs = _nodeport_cidrs(node, cfg)
    if cidrs is None:
        dest = "-m addrtype --dst-type LOCAL"
        if node.ip_family == "IPv6":
            dest += " ! -d ::1/128"
        elif not localhost:
            dest += " ! -d 127.0.0.0/8"
        return [f"-A KUBE-SERVICES {comment} {dest} -j KUBE-NODEPORTS"]
    ips = [ip for ip in node.ips if any_contains(cidrs, ip)]
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
          previous_chains: Iterable[str] | None = None,
          cache: BuildCache | None = None) -> RuleSet:
    """Build the restore input for filter and nat (upstream syncProxyRules, minus the I/O).

    ``changed=None``: full sync. A set of ServiceNames: partial sync, writing the per-Service
    chains of those Services only. ``previous_chains``: nat chains present before this sync
    (the previous RuleSet's ``chains`` or its ``["nat"]``, or an iptables-save); our stale service
    chains among them are declared then deleted with -X. None: delete nothing. ``cache``: a
    BuildCache kept by the caller across syncs (same output, less work).
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
    entries = cache.begin((node, cfg, large, localhost_nfacct)) if cache is not None else None
    for spn in order:
        info = services[spn]
        eps = endpoints.get(spn, ())
        skip = changed_set is not None and (spn.namespace, spn.name) not in changed_set
        if entries is not None:
            e = cache.get(spn, info, eps)
            if e is None:
                e = make_entry(spn, info, eps, node, cfg, large, localhost_nfacct)
            entries[spn] = e
            no_local["internal"] += e.no_local[0]
            no_local["external"] += e.no_local[1]
            fr.extend(e.top_filter)
            nr.extend(e.top_nat)
            active.update(e.chains)
            if skip:
                skipped_rules += len(e.chain_rules)
            else:
                nc.extend(e.chain_lines)
                nr.extend(e.chain_rules)
            continue
        p = plan_service_port(spn_str(spn), info, eps, labels)
        if p.has_any:
            no_local["internal"] += not p.has_internal
            no_local["external"] += not p.has_external
        write_top_rules(p, info, localhost_nfacct, fr, nr)
        if skip:
            skipped_rules += count_service_chains(p, info, node, cfg, active)
        else:
            write_service_chains(p, info, node, cfg, large, nc, nr, active)
    if cache is not None:
        cache.commit(entries)

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
