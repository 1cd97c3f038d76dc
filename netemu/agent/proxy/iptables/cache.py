"""Each service port's rendered rules kept between builds, so a partial build costs O(changed).

At 10k Services a one-endpoint change used to cost ~70 ms of Python: the partial build planned,
counted and wrote top-level rules for every Service. With a BuildCache the builder renders only
the service ports whose inputs changed and takes everything else -- rules, chain names, rule
counts, the "no local endpoints" tallies, the sorted order -- from here, kept up to date
incrementally. The output is never different from the uncached builder's (property-tested).

How changed service ports are found without looking at all of them: the snapshots of the last
build's maps are patched at the ports of the Services named in ``changed`` and compared with the
current maps (dict equality: C speed, identity first). If they differ, the keys that appeared or
vanished are patched in too (set differences, C speed); if they still differ, something changed
outside ``changed`` and every port is checked one by one, as the first cache did: the fast path
is an optimisation, never a trust.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate
from operator import attrgetter, itemgetter
from typing import Iterable, Mapping, NamedTuple, Sequence

from ..model import EndpointInfo, NodeInfo, ProxyConfig, ServiceName, ServicePortInfo, ServicePortName
from .service_rules import plan_service_port, spn_str, write_service_chains, write_top_rules

_RESORT_ABOVE = 256  # more added/removed ports than this: sort again instead of bisecting


class _Entry(NamedTuple):
    """One service port's share of a build, reusable while its inputs are the same objects."""

    info: ServicePortInfo
    eps: Sequence[EndpointInfo]
    no_local: tuple[int, int]
    top_filter: list[str]
    top_nat: list[str]
    chain_lines: list[str]
    chain_rules: list[str]
    chains: frozenset[str]
    by_chain: dict[str, list[str]]     # chain_rules by chain: filled once, by chain_groups()


def chain_groups(e: _Entry) -> dict[str, list[str]]:
    """``e.chain_rules`` grouped by chain, each in order; computed once per entry (a partial
    sync compares a replaced entry with its successor: the old one was grouped when it was new)."""
    if not e.by_chain and e.chain_rules:
        groups = e.by_chain
        for line in e.chain_rules:
            groups.setdefault(line.split(" ", 2)[1], []).append(line)
    return e.by_chain


def make_entry(spn: ServicePortName, info: ServicePortInfo, eps: Sequence[EndpointInfo], node: NodeInfo,
               cfg: ProxyConfig, large: bool, localhost_nfacct: bool) -> _Entry:
    p = plan_service_port(spn_str(spn), info, eps, node.labels)
    top_f: list[str] = []
    top_n: list[str] = []
    write_top_rules(p, info, localhost_nfacct, top_f, top_n)
    lines: list[str] = []
    rules: list[str] = []
    active: set[str] = set()
    write_service_chains(p, info, node, cfg, large, lines, rules, active)
    no_local = (int(p.has_any and not p.has_internal), int(p.has_any and not p.has_external))
    return _Entry(info, eps, no_local, top_f, top_n, lines, rules, frozenset(active), {})


class Refresh(NamedTuple):
    """What changed in the cache for one build (the builder assembles the text from it)."""

    rebuilt: bool                                    # everything re-rendered: no delta possible
    replaced: dict[ServicePortName, tuple[_Entry | None, _Entry | None]]  # spn -> (old, new)


class BuildCache:
    """Each service port's rules from the last build, reused when the very same immutable
    ServicePortInfo and endpoint tuple come back (a change tracker hands unchanged Services'
    objects over untouched). Upstream skips re-writing unchanged chains; this also skips
    re-formatting and even visiting them. Opt-in, never changes the output; another node or
    config, or crossing the large-cluster threshold, starts over.

    One cache follows one sequence of builds (one proxier): the builder's ``delta`` is relative
    to the previous build made with it, so call ``invalidate()`` when that build did not reach
    the kernel (failed restore), and before a full resync, which re-renders from scratch.
    """

    def __init__(self) -> None:
        self.invalidate()

    def invalidate(self) -> None:
        """Forget everything: the next build renders every service port and has no delta."""
        self._env: tuple | None = None
        self.large = False
        self.entries: dict[ServicePortName, _Entry] = {}
        self.order: list[ServicePortName] = []       # sorted, as the builder writes them
        self.ordered: list[_Entry] = []               # entries in that order
        self._tops: tuple[str, list[int], str] | None = None  # see top_texts()
        self._infos: dict = {}                        # the services map of the last build
        self._eps: dict = {}                          # the endpoints map of the last build
        self._extra: dict[ServiceName, set[ServicePortName]] = {}  # endpoint-only ports by Service
        self._total_eps = 0
        self.active: set[str] = set()                 # service chains of all entries
        self.totals = [0, 0, 0, 0, 0]                 # top filter, top nat, chain rules, no-local int/ext
        self.nat_chains: frozenset[str] | None = None  # RuleSet.chains["nat"] of the last build
        # every entry's Service chains are in the kernel as rendered (false after a partial
        # build had to re-render everything but wrote only the changed Services' chains)
        self.chains_as_built = False

    # -- the one entry point -------------------------------------------------------------
    def refresh(self, services: Mapping[ServicePortName, ServicePortInfo],
                endpoints: Mapping[ServicePortName, Sequence[EndpointInfo]], node: NodeInfo,
                cfg: ProxyConfig, localhost_nfacct: bool, changed: Iterable[ServiceName] | None) -> Refresh:
        """Bring the entries up to date with the maps; returns the replaced entries."""
        env = (node, cfg, localhost_nfacct)
        if env != self._env:
            return self._rebuild(services, endpoints, env)
        cands = self._candidates(services, endpoints, changed)
        total = self._total_eps
        for spn in cands:
            old = self.entries.get(spn)
            total += len(endpoints.get(spn, ())) if spn in services else 0
            total -= len(old.eps) if old is not None else 0
        if (total > cfg.large_cluster_threshold) != self.large:
            return self._rebuild(services, endpoints, env)
        self._total_eps = total
        replaced: dict[ServicePortName, tuple[_Entry | None, _Entry | None]] = {}
        for spn in cands:
            old = self.entries.get(spn)
            info = services.get(spn)
            eps = endpoints.get(spn, ())
            if info is None and old is None:
                continue                      # endpoints of a port no Service has (yet)
            if info is not None and old is not None and old.info is info and old.eps is eps:
                continue
            new = None if info is None else make_entry(spn, info, eps, node, cfg, self.large, localhost_nfacct)
            replaced[spn] = (old, new)
        self._apply(replaced)
        return Refresh(False, replaced)

    # -- helpers -----------------------------------------------------------------------------
    def _candidates(self, services, endpoints, changed) -> set[ServicePortName]:
        """Ports that may differ from the last build (see the module docstring)."""
        cands: set[ServicePortName] = set()
        for s in changed or ():
            cands.update(self.ports_of(s))
            cands |= self._extra.get(s, set())
        self._patch(cands, services, endpoints)
        if self._infos == services and self._eps == endpoints:
            return cands
        # ports that appeared or vanished (a new Service, a new port): by key difference
        moved = (services.keys() - self._infos.keys()) | (self._infos.keys() - services.keys())
        moved |= (endpoints.keys() - self._eps.keys()) | (self._eps.keys() - endpoints.keys())
        self._patch(moved, services, endpoints)
        cands |= moved
        if self._infos != services or self._eps != endpoints:
            # changed outside ``changed``: compare every port (identity, like the old cache)
            get = self.entries.get
            cands.update(spn for spn, info in services.items()
                         if (e := get(spn)) is None or e.info is not info or e.eps is not endpoints.get(spn, ()))
            self._snapshot(services, endpoints)
        return cands

    def _patch(self, spns, services, endpoints) -> None:
        """Bring the snapshots (and the index of endpoint-only ports) up to date for ``spns``."""
        for spn in spns:
            _patch(self._infos, services, spn)
            _patch(self._eps, endpoints, spn)
            if spn in endpoints and spn not in services:
                self._extra.setdefault(spn.service, set()).add(spn)
            else:
                ports = self._extra.get(spn.service)
                if ports is not None:
                    ports.discard(spn)
                    if not ports:
                        del self._extra[spn.service]

    def _snapshot(self, services, endpoints) -> None:
        self._infos, self._eps = dict(services), dict(endpoints)
        self._extra = {}
        for spn in endpoints.keys() - services.keys():
            self._extra.setdefault(spn.service, set()).add(spn)

    def _rebuild(self, services, endpoints, env) -> Refresh:
        """Render every port, in bulk (the first sync's cost: keep it near the uncached build's)."""
        node, cfg, localhost_nfacct = env
        self.invalidate()
        self._env = env
        self._snapshot(services, endpoints)
        self._total_eps = sum(len(endpoints.get(spn, ())) for spn in services)
        large = self.large = self._total_eps > cfg.large_cluster_threshold
        self.order = sorted(services)
        self.ordered = [make_entry(spn, services[spn], endpoints.get(spn, ()), node, cfg, large, localhost_nfacct)
                        for spn in self.order]
        self.entries = dict(zip(self.order, self.ordered))
        self.active = set().union(*map(attrgetter("chains"), self.ordered))
        self.totals = [sum(map(len, map(attrgetter(a), self.ordered)))
                       for a in ("top_filter", "top_nat", "chain_rules")]
        self.totals += [sum(map(itemgetter(k), map(attrgetter("no_local"), self.ordered))) for k in (0, 1)]
        return Refresh(True, {})

    def _apply(self, replaced) -> None:
        """Swap entries, keeping order, totals, the active chain set and the top texts in step."""
        moved = sum(1 for old, new in replaced.values() if (old is None) != (new is None))
        for spn, (old, new) in replaced.items():
            if old is not None:
                self._count(old, -1)
                self.active.difference_update(old.chains)
            if old is None or new is None or old.top_nat != new.top_nat or old.top_filter != new.top_filter:
                self._tops = None
            if new is None:
                del self.entries[spn]
                if moved <= _RESORT_ABOVE:
                    i = bisect_left(self.order, spn)
                    del self.order[i], self.ordered[i]
            else:
                self.entries[spn] = new
                self._count(new, 1)
                self.active.update(new.chains)
                if moved > _RESORT_ABOVE:
                    continue
                i = bisect_left(self.order, spn)
                if old is None:
                    self.order.insert(i, spn)
                    self.ordered.insert(i, new)
                else:
                    self.ordered[i] = new
        if moved > _RESORT_ABOVE:
            self.order = sorted(self.entries)
            self.ordered = list(map(self.entries.__getitem__, self.order))

    def top_texts(self) -> tuple[str, list[int], str]:
        """All service ports' top-level rules as text, in order: nat (with the offset where
        each port's lines end, to splice written chains in) and filter. Lines end in newline.
        Recomputed (O(ports)) only after a change in some port's top-level rules or the order;
        a usual endpoint change leaves them as they are."""
        if self._tops is None:
            nat = ["".join([line + "\n" for line in e.top_nat]) for e in self.ordered]
            filt = "".join([line + "\n" for e in self.ordered for line in e.top_filter])
            self._tops = ("".join(nat), list(accumulate(map(len, nat))), filt)
        return self._tops

    def _count(self, e: _Entry, sign: int) -> None:
        t = self.totals
        t[0] += sign * len(e.top_filter)
        t[1] += sign * len(e.top_nat)
        t[2] += sign * len(e.chain_rules)
        t[3] += sign * e.no_local[0]
        t[4] += sign * e.no_local[1]

    def position(self, spn: ServicePortName) -> int:
        return bisect_left(self.order, spn)

    def ports_of(self, service: ServiceName) -> list[ServicePortName]:
        """The cached ports of ``service``: a run in the sorted order (a ServiceName sorts just
        before its own ServicePortNames), found by bisection instead of an index."""
        order, out = self.order, []
        i = bisect_left(order, service)
        while i < len(order) and order[i][:2] == service:
            out.append(order[i])
            i += 1
        return out


def _patch(snapshot: dict, current: Mapping, key) -> None:
    if key in current:
        snapshot[key] = current[key]
    else:
        snapshot.pop(key, None)
