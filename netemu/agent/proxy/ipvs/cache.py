"""The desired state of a node, kept up to date port by port, so a one-Service change costs
O(that Service) and not O(cluster).

Each service port's plan (planner.py) is kept with the exact ServicePortInfo and endpoint tuple it
was made from; the aggregate the kernel must hold -- the virtual servers by key, every set's
entries, the kube-ipvs0 addresses, the LB IPs the node may not reach -- is kept as reference
counts over those plans. ``refresh`` re-plans the ports of the Services named in ``changed`` and
reports what their new plans changed in the aggregate (``Delta``): the touched virtual servers
with what is wanted of them now, the set entries and addresses that appeared or vanished, and the
fixed iptables text if it changed. ``plan()`` is the whole aggregate (a full sync's target).

Two ports may ask for the same virtual server (two Services with the same external IP and
port): upstream's Go-map order decides there; here the port first in sorted order does, stably.
A change of the node's context (addresses, scheduler, config) re-plans everything.
"""

from __future__ import annotations

from bisect import insort
from collections import Counter
from typing import Iterable, Mapping, NamedTuple, Sequence

from netemu.agent.proxy.model import EndpointInfo, ProxyConfig, ServiceName, ServicePortInfo, ServicePortName

from . import sets as S
from .planner import NodeContext, PortPlan, Service, plan_port
from .rules import restore_text
from .state import Plan, VSKey


class Delta(NamedTuple):
    """What one refresh changed in the desired state (entries under the sets' IPv4 names)."""

    services: dict[VSKey, Service | None]      # every touched virtual server: wanted now, or None
    added: dict[str, set[str]]
    removed: dict[str, set[str]]
    bind_added: set[str]
    bind_removed: set[str]
    iptables: str | None                       # the fixed chains' text, when it changed
    rebuilt: bool                              # everything was re-planned: apply the whole plan()

    @property
    def empty(self) -> bool:
        return not (self.services or self.added or self.removed or self.bind_added or self.bind_removed
                    or self.iptables is not None)


class PlanCache:
    def __init__(self) -> None:
        self.invalidate()

    def invalidate(self) -> None:
        """Forget everything: the next refresh re-plans every port."""
        self._env: tuple | None = None
        self.ports: dict[ServicePortName, tuple[ServicePortInfo, Sequence[EndpointInfo], PortPlan]] = {}
        self._by_service: dict[ServiceName, set[ServicePortName]] = {}     # the keys of ``ports``
        self._owners: dict[VSKey, list[ServicePortName]] = {}
        self._entries: dict[str, Counter] = {s.name: Counter() for s in S.SETS}
        self._binds: Counter = Counter()
        self._no_access: Counter = Counter()
        self._no_local: dict[str, Counter] = {"internal": Counter(), "external": Counter()}
        self.rules: str | None = None
        self._delta: _Recorder | None = None

    # -- the entry point ---------------------------------------------------------------------
    def refresh(self, services: Mapping[ServicePortName, ServicePortInfo],
                endpoints: Mapping[ServicePortName, Sequence[EndpointInfo]], ctx: NodeContext,
                config: ProxyConfig, changed: Iterable[ServiceName] | None = None,
                ports: Mapping[ServiceName, Iterable[ServicePortName]] | None = None) -> Delta:
        """Bring the plans up to date: every port (``changed`` None, or a new context) or the ports
        of the Services in ``changed``: those planned before and, from ``ports`` (the tracker's
        UpdateServiceMapResult.service_ports: each updated Service's ports), those it has now;
        without ``ports`` the whole ``services`` map is searched for them."""
        env = (ctx, config)
        rebuilt = changed is None or env != self._env
        if rebuilt:
            self.invalidate()
            self._env = env
            candidates: Iterable[ServicePortName] = sorted(services)
        else:
            names = {ServiceName(*s) for s in changed}
            candidates = set()
            for name in names:
                candidates |= self._by_service.get(name, set())
            if ports is None:
                candidates |= {spn for spn in services if (spn[0], spn[1]) in names}
            else:
                for name in names:
                    candidates |= set(ports.get(name, ()))
        rec = self._delta = _Recorder()
        for spn in candidates:
            self._replace(spn, services.get(spn), endpoints.get(spn, ()), ctx)
        text = restore_text([n for n, c in self._entries.items() if c] + ([S.IPVS_IPS] if self._binds else []),
                            sorted(self._no_access), ctx.node, config)
        changed_rules = text if text != self.rules else None
        self.rules = text
        self._delta = None
        wanted = {key: self.desired(key) for key in rec.touched}
        added = {n: e for n, e in rec.added.items() if e}
        removed = {n: e for n, e in rec.removed.items() if e}
        return Delta(wanted, added, removed, rec.bind_added, rec.bind_removed, changed_rules, rebuilt)

    def desired(self, key: VSKey) -> Service | None:
        """What is wanted of this virtual server now (its first owner's), None if nothing."""
        owners = self._owners.get(key)
        if not owners:
            return None
        for svc in self.ports[owners[0]][2].services:
            if svc.server.key == key:
                return svc
        return None

    def plan(self, ipv6: bool = False) -> Plan:
        """The whole desired state (ipsets under the family's names)."""
        services, reals = {}, {}
        for key in sorted(self._owners, key=_vs_order):
            svc = self.desired(key)
            if svc is not None:
                services[key], reals[key] = svc.server, svc.reals
        ipsets = {S.name_for(n, ipv6): frozenset(c) for n, c in self._entries.items()}
        ipsets[S.name_for(S.IPVS_IPS, ipv6)] = frozenset(self._binds)
        return Plan(services, reals, frozenset(self._binds), ipsets, self.rules or "", self.no_local_counts())

    def no_local_counts(self) -> dict[str, int]:
        """Services with a Local policy and no local endpoint, per policy (upstream's metric)."""
        return {policy: len(c) for policy, c in self._no_local.items()}

    # -- bookkeeping -------------------------------------------------------------------------
    def _replace(self, spn: ServicePortName, info: ServicePortInfo | None,
                 eps: Sequence[EndpointInfo], ctx: NodeContext) -> None:
        old = self.ports.get(spn)
        if old is not None and info is not None and old[0] is info and old[1] is eps:
            return
        if old is not None:
            self._count(spn, old[2], -1)
            del self.ports[spn]
            mine = self._by_service[spn.service]
            mine.discard(spn)
            if not mine:
                del self._by_service[spn.service]
        if info is not None:
            plan = plan_port(info, eps, ctx)
            self.ports[spn] = (info, eps, plan)
            self._by_service.setdefault(spn.service, set()).add(spn)
            self._count(spn, plan, +1)

    def _count(self, spn: ServicePortName, plan: PortPlan, sign: int) -> None:
        rec = self._delta
        for svc in plan.services:
            key = svc.server.key
            owners = self._owners.setdefault(key, [])
            if sign > 0:
                insort(owners, spn)
            else:
                owners.remove(spn)
                if not owners:
                    del self._owners[key]
            if svc.bind:
                _bump(self._binds, svc.server.key.address, sign, rec.bind_added, rec.bind_removed)
            rec.touched.add(key)
        for name, entry in plan.entries:
            _bump(self._entries[name], entry, sign, rec.added.setdefault(name, set()),
                  rec.removed.setdefault(name, set()))
        for item in plan.no_node_access:
            _bump(self._no_access, item, sign, set(), set())
        for policy, flag in (("internal", plan.no_local_internal), ("external", plan.no_local_external)):
            if flag:
                _bump(self._no_local[policy], spn.service, sign, set(), set())


class _Recorder:
    """Transitions of one refresh: a count going 0 -> 1 is an addition, 1 -> 0 a removal, and
    the two cancel out (a port re-planned to the same entries changes nothing)."""

    def __init__(self) -> None:
        self.touched: set[VSKey] = set()
        self.added: dict[str, set[str]] = {}
        self.removed: dict[str, set[str]] = {}
        self.bind_added: set[str] = set()
        self.bind_removed: set[str] = set()


def _bump(counter: Counter, item, sign: int, added: set, removed: set) -> None:
    before = counter[item]
    after = before + sign
    if after:
        counter[item] = after
    else:
        del counter[item]
    if before == 0 and after > 0:
        removed.discard(item) if item in removed else added.add(item)
    elif before > 0 and after == 0:
        added.discard(item) if item in added else removed.add(item)


def _vs_order(key: VSKey):
    return (key.address, key.port, key.protocol)


def plan(services: Mapping[ServicePortName, ServicePortInfo],
         endpoints: Mapping[ServicePortName, Sequence[EndpointInfo]], ctx: NodeContext,
         config: ProxyConfig | None = None) -> Plan:
    """A node's whole desired state from the maps (a fresh cache, every port planned)."""
    cache = PlanCache()
    cache.refresh(services, endpoints, ctx, config or ProxyConfig())
    return cache.plan(ctx.node.ip_family == "IPv6")
