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
With a BuildCache (cache.py; the proxier keeps one) a build renders only the service ports whose
inputs changed and joins the others' cached lines, so a one-Service partial build at 10k costs
milliseconds; it then also returns ``delta``, the text minus unchanged top-level chains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import Iterable, Mapping, Sequence

from ..hashing import is_service_chain
from ..model import EndpointInfo, NodeInfo, ProxyConfig, ServiceName, ServicePortInfo, ServicePortName
from .cache import BuildCache, chain_groups
from ..xtables.dump import no_gc
from .chains import (FILTER_TOP_CHAINS, KUBELET_FIREWALL, NAT_TOP_CHAINS, NFACCT_CT_INVALID)
from .service_rules import (any_contains, count_service_chains, plan_service_port, probability, spn_str,
                            write_service_chains, write_top_rules)

__all__ = ["BuildCache", "EMPTY_RESTORE", "RuleSet", "build", "minimal_delta", "probability"]


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
    # Partial builds with a BuildCache that saw the previous build: ``text`` without the
    # top-level chains whose rules did not change since then (what a restore on top of the
    # previous build needs). None otherwise. Not compared.
    delta: str | None = field(default=None, compare=False)
    # With a delta: the Service chains it writes whose rules are the same as in the previous
    # build (minimal_delta leaves them out too). Not compared.
    unchanged_chains: frozenset[str] = field(default=frozenset(), compare=False)
    # minimal_delta's text when the builder made it directly (no top-level chain changed)
    minimal: str | None = field(default=None, compare=False, repr=False)



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

    if cache is not None:
        with no_gc():  # a cold cache allocates ~10 containers per service port: no GC rescans
            return _build_cached(services, endpoints, node, cfg, changed_set, previous_chains, cache,
                                 localhost, localhost_nfacct, fc, fr, nc, nr)
    active: set[str] = set()
    order = sorted(services)
    total_eps = sum(len(endpoints.get(spn, ())) for spn in order)
    large = total_eps > cfg.large_cluster_threshold
    skipped_rules = 0
    no_local = {"internal": 0, "external": 0}
    for spn in order:
        info = services[spn]
        eps = endpoints.get(spn, ())
        skip = changed_set is not None and (spn.namespace, spn.name) not in changed_set
        p = plan_service_port(spn_str(spn), info, eps, labels)
        if p.has_any:
            no_local["internal"] += not p.has_internal
            no_local["external"] += not p.has_external
        write_top_rules(p, info, localhost_nfacct, fr, nr)
        if skip:
            skipped_rules += count_service_chains(p, info, node, cfg, active)
        else:
            write_service_chains(p, info, node, cfg, large, nc, nr, active)

    if isinstance(previous_chains, Mapping):  # a previous RuleSet.chains
        previous_chains = previous_chains.get("nat", ())
    deleted = tuple(sorted(c for c in set(previous_chains or ()) - active if is_service_chain(c)))
    for c in deleted:
        nc.append(f":{c} - [0:0]")
        nr.append(f"-X {c}")
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


def _build_cached(services, endpoints, node: NodeInfo, cfg: ProxyConfig, changed_set, previous_chains,
                  cache: BuildCache, localhost: bool, localhost_nfacct: bool,
                  fc: list[str], fr: list[str], nc: list[str], nr: list[str]) -> RuleSet:
    """build() with a BuildCache: only changed service ports are rendered, in Python; the rest
    of the text is the cached lines joined at C speed (map/attrgetter/chain, no Python loop
    over 10k Services). Same text, counts and chains as the uncached path."""
    if isinstance(previous_chains, Mapping):
        previous_chains = previous_chains.get("nat", ())
    prev_nat = cache.nat_chains
    ref = cache.refresh(services, endpoints, node, cfg, localhost_nfacct, changed_set)
    ents = cache.ordered
    active = cache.active
    if not ref.rebuilt and previous_chains is not None and previous_chains is prev_nat:
        gone: set[str] = set()   # the previous build's chains: only replaced entries lost any
        for old, _ in ref.replaced.values():
            if old is not None:
                gone.update(old.chains)
        deleted = tuple(sorted(c for c in gone - active if is_service_chain(c)))
    else:
        deleted = tuple(sorted(c for c in set(previous_chains or ()) - active if is_service_chain(c)))

    fwd, jumps = _forward_rules(cfg), _nodeport_jumps(node, cfg, localhost)
    drops = [f"-X {c}" for c in deleted]
    t = cache.totals
    n_top, n_fixed = len(nc), len(nr)
    written_rules: list[str] = []
    written: list[tuple[ServicePortName, object]] = []   # (port, entry) whose chains the text holds
    unchanged: frozenset[str] = frozenset()
    minimal: str | None = None
    if changed_set is None:
        fr.extend(chain.from_iterable(map(attrgetter("top_filter"), ents)))
        fr.extend(fwd)
        nc.extend(chain.from_iterable(map(attrgetter("chain_lines"), ents)))
        nr.extend(chain.from_iterable(chain.from_iterable(map(attrgetter("top_nat", "chain_rules"), ents))))
        nc.extend(f":{c} - [0:0]" for c in deleted)
        text = "\n".join(["*filter", *fc, *fr, "COMMIT", "*nat", *nc, *nr, *drops, *jumps, "COMMIT", ""])
        written_chain_rules = t[2]
    else:
        # the cached top-level text, with the written ports' chain rules spliced in after
        # their own top-level lines (where the uncached builder writes them)
        nat_top, ends, filter_top = cache.top_texts()
        pieces, last = [], 0
        for i in sorted({cache.position(spn) for s in changed_set for spn in cache.ports_of(s)}):
            e = ents[i]
            written.append((cache.order[i], e))
            nc.extend(e.chain_lines)
            if e.chain_rules:
                written_rules.extend(e.chain_rules)
                pieces += [nat_top[last:ends[i]], "\n".join(e.chain_rules), "\n"]
                last = ends[i]
        pieces.append(nat_top[last:])
        nc.extend(f":{c} - [0:0]" for c in deleted)
        text = "".join(["\n".join(["*filter", *fc, *fr, ""]), filter_top,
                        "\n".join([*fwd, "COMMIT", "*nat", *nc, *nr, ""]), *pieces,
                        "\n".join([*drops, *jumps, "COMMIT", ""])])
        fr.extend(fwd)   # for the count: the filter table holds these plus the cached lines
        written_chain_rules = len(written_rules)
    n_filter = len(fr) + (t[0] if changed_set is not None else 0)
    n_nat = n_fixed + t[1] + len(jumps)

    delta = None
    if changed_set is not None and not ref.rebuilt:
        top_changed = _top_changed(ref.replaced)
        delta = _delta(top_changed, localhost, text, [*nc[n_top:], *written_rules, *drops])
        if cache.chains_as_built:
            unchanged = frozenset(_unchanged_chains(written, ref.replaced))
            if not top_changed:                    # the usual case: only Service chains to write
                minimal = _minimal_tail(nc[n_top:], written, unchanged, drops)
    if ref.rebuilt:   # re-rendered all, wrote all only if full (a partial one crossed the large mode)
        cache.chains_as_built = changed_set is None
    cache.nat_chains = frozenset(NAT_TOP_CHAINS) | active
    filter_chains = frozenset(FILTER_TOP_CHAINS) | ({KUBELET_FIREWALL} if localhost else frozenset())
    return RuleSet(
        text=text, chains={"filter": filter_chains, "nat": cache.nat_chains},
        rule_counts={"filter": n_filter, "nat": n_nat + t[2]},
        written_counts={"filter": n_filter, "nat": n_nat + written_chain_rules},
        deleted_chains=deleted, partial=changed_set is not None, large_cluster=cache.large,
        no_local_endpoints={"internal": t[3], "external": t[4]}, delta=delta,
        unchanged_chains=unchanged if delta is not None else frozenset(), minimal=minimal)


def _rule_chain(line: str) -> str:
    return line.split(" ", 2)[1]


def _top_changed(replaced) -> set[tuple[str, str]]:
    """(table, chain) of top-level chains whose rules differ from the previous build: only the
    replaced entries' lines can differ, chain by chain."""
    out: set[tuple[str, str]] = set()
    for old, new in replaced.values():
        for table, attr in (("filter", "top_filter"), ("nat", "top_nat")):
            a = getattr(old, attr) if old is not None else []
            b = getattr(new, attr) if new is not None else []
            if a == b:
                continue
            for c in {_rule_chain(line) for line in (*a, *b)}:
                if [x for x in a if _rule_chain(x) == c] != [x for x in b if _rule_chain(x) == c]:
                    out.add((table, c))
    return out


def _unchanged_chains(written, replaced) -> set[str]:
    """Service chains in the text whose rules are the same as in the previous build, i.e. as in
    the kernel: those of written ports the cache did not replace, and those of replaced ports
    whose rules did not change (a pod turning Ready changes its Service's KUBE-SVC chain, and
    adds one KUBE-SEP chain; the other endpoints' KUBE-SEP chains stay as they are)."""
    same: set[str] = set()
    for spn, entry in written:
        old = replaced[spn][0] if spn in replaced else entry
        if old is None:
            continue
        if old is entry:
            same.update(entry.chains)
            continue
        before, after = chain_groups(old), chain_groups(entry)
        same.update(c for c in entry.chains & old.chains if before.get(c) == after.get(c))
    return same


def _minimal_tail(decls: list[str], written, unchanged: frozenset[str], drops: list[str]) -> str:
    """The restore when no top-level chain changed: the written Services' changed chains
    (declarations first, then each chain's rules in order) and the stale chains' deletion."""
    rules = [line for _, entry in written for chain, lines in chain_groups(entry).items()
             if chain not in unchanged for line in lines]
    kept = [line for line in decls if line[1:].split(" ", 1)[0] not in unchanged]
    return "\n".join(["*filter", "COMMIT", "*nat", *kept, *rules, *drops, "COMMIT", ""])


def _delta(changed_top: set[tuple[str, str]], localhost: bool, text: str, nat_tail: list[str]) -> str:
    """The restore text minus the top-level chains (declaration and rules) whose rules are the
    same as in the previous build, i.e. as in the kernel once that build was restored, computed
    from what changed instead of by reading the text again.
    The usual one-Service change touches no top-level chain: then the delta is only that
    Service's chains (``nat_tail``), built without visiting the others."""
    same = {("filter", c) for c in (*FILTER_TOP_CHAINS, *((KUBELET_FIREWALL,) if localhost else ()))}
    same |= {("nat", c) for c in NAT_TOP_CHAINS}
    same -= changed_top
    if not same:
        return text
    if not changed_top:
        return "\n".join(["*filter", "COMMIT", "*nat", *nat_tail, "COMMIT", ""])
    return "\n".join(_keep(text.split("\n"), same))


def minimal_delta(ruleset: RuleSet) -> str | None:
    """``ruleset.delta`` without the written Services' chains whose rules did not change
    either (``unchanged_chains``): what the kernel needs on top of the previous build. Upstream
    rewrites them; the kernel ends up the same, only their packet counters are not reset.
    "*filter COMMIT *nat COMMIT" alone (``EMPTY_RESTORE``) means: nothing to restore."""
    if getattr(ruleset, "minimal", None) is not None:
        return ruleset.minimal
    if ruleset.delta is None or not ruleset.unchanged_chains:
        return ruleset.delta
    same = {("nat", c) for c in ruleset.unchanged_chains}
    return "\n".join(_keep(ruleset.delta.split("\n"), same))


def _keep(lines: list[str], same: set[tuple[str, str]]) -> list[str]:
    """``lines`` without the declarations and rules of the (table, chain)s in ``same``."""
    out, table = [], ""
    for line in lines:
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            if (table, line[1:].split(" ", 1)[0]) in same:
                continue
        elif line.startswith("-A ") and (table, _rule_chain(line)) in same:
            continue
        out.append(line)
    return out


EMPTY_RESTORE = "*filter\nCOMMIT\n*nat\nCOMMIT\n"
