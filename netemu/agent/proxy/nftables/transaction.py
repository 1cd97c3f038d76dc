"""What one sync sends to the kernel: upstream's transaction logic, as a pure planner.

Upstream's nftables proxier (v1.32 syncProxyRules) sends ONE transaction per sync:

- a full sync (the first, after a failure, or when node labels change) rewrites the fixed
  table (setup.py) and every Service's chains, and re-adds every map element after flushing
  the maps;
- a partial sync touches only the Services whose Service or EndpointSlices changed: their
  chains are added and flushed and their rules written again, and only the map elements that
  differ from what the kernel holds are added or deleted (upstream's nftElementStorage);
- chains no Service uses any more are flushed now and deleted in a separate transaction at the
  start of a sync at least ``STALE_CHAIN_DELAY`` later (kernels before 6.2 notice a deleted map
  element's reference to a chain only a moment later, so deleting at once can fail);
  affinity sets no endpoint uses are deleted at once.

``Planner.plan()`` returns the text and the state the kernel will have (updated in place: its
cost follows the changed Services, not the cluster); ``commit()`` confirms it after the
transaction succeeded; after a failure the next sync is full and rebuilds the state from the
kernel's listing. Which service chains and affinity sets exist is known from
the previous syncs (full syncs read them from the kernel, as upstream does on every sync: it
costs a listing of the whole table, which is what made upstream's partial syncs O(n)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ..model import EndpointInfo, ServicePortInfo, ServicePortName
from .builder import TABLE, Context, Part, build_part
from .names import AFFINITY_PREFIX
from .setup import CONTAINER_SPECS, setup_lines
from .table import Element, element_line, is_service_chain, quote

STALE_CHAIN_DELAY = 1.0        # upstream: chains stale for more than a second are deleted

ElementKey = tuple[str, tuple[str, ...]]       # (container, key)


@dataclass
class State:
    """What this proxier last put in the kernel (after a successful transaction)."""

    parts: dict[ServicePortName, Part] = field(default_factory=dict)
    elements: dict[ElementKey, Element] = field(default_factory=dict)
    owners: dict[ElementKey, int] = field(default_factory=dict)     # parts claiming an element
    chains: set[str] = field(default_factory=set)          # service chains in the kernel
    affinity_sets: set[str] = field(default_factory=set)
    stale: dict[str, float] = field(default_factory=dict)   # flushed chain -> when
    base_recreated: bool = False
    ports: dict = field(default_factory=dict)               # ServiceName -> its service ports

    def copy(self) -> "State":
        return State(dict(self.parts), dict(self.elements), dict(self.owners), set(self.chains),
                     set(self.affinity_sets), dict(self.stale), self.base_recreated,
                     {k: set(v) for k, v in self.ports.items()})


@dataclass
class Plan:
    """One sync's transactions and the state after them."""

    full: bool
    delete_text: str                  # stale chain deletion (own transaction, may be "")
    deleted_chains: tuple[str, ...]
    text: str                         # the sync transaction (may be "": nothing to do)
    operations: int
    state: State
    written_parts: int = 0

    @property
    def no_local(self) -> dict[str, int]:
        parts = self.state.parts.values()
        return {"internal": sum(p.no_local_internal for p in parts),
                "external": sum(p.no_local_external for p in parts)}


class Planner:
    """Keeps the committed State; plans each sync's transaction from the proxier's maps."""

    def __init__(self) -> None:
        self.state = State()

    def plan(self, services: Mapping[ServicePortName, ServicePortInfo],
             endpoints: Mapping[ServicePortName, Sequence[EndpointInfo]], ctx: Context, *,
             full: bool, changed: Iterable | None = None, now: float = 0.0,
             kernel_chains: Iterable[str] | None = None, kernel_sets: Iterable[str] | None = None,
             ports: Mapping | None = None) -> Plan:
        """``changed``: the ServiceNames to rewrite on a partial sync; ``kernel_chains`` and
        ``kernel_sets``: what a listing of the table showed (full syncs), else the state's.
        ``ports``: ServiceName -> service ports the trackers saw change (new ports of a changed
        Service are found there; without it the service map is scanned).
        A partial sync costs in proportion to the changed Services, not to all of them."""
        # updated in place (a copy of 10k Services' state per sync would make a one-Service sync
        # grow with the cluster): a failed transaction makes the next sync full, which rebuilds
        # parts and elements and re-reads chains and sets from the kernel's listing
        st = self.state
        if kernel_chains is not None:
            st.chains = {c for c in kernel_chains if is_service_chain(c)}
            st.stale = {c: t for c, t in st.stale.items() if c in st.chains}
        if kernel_sets is not None:
            st.affinity_sets = {s for s in kernel_sets if s.startswith(AFFINITY_PREFIX)}
        p = f"{ctx.family} {TABLE}"
        delete_lines, deleted = self._stale_deletes(st, p, now)

        lines: list[str] = []
        if full:
            lines += setup_lines(ctx, recreate_base_chains=not st.base_recreated)
            st.base_recreated = True
            rewrite = set(services)
            old_parts: dict[ServicePortName, Part] = {}
            st.parts, st.elements, st.owners, st.ports = {}, {}, {}, {}
        else:
            wanted = {tuple(c) for c in (changed or ())}
            rewrite = _ports_of(wanted, services, st, ports)
            old_parts = {spn: st.parts.pop(spn) for spn in rewrite if spn in st.parts}
        order = sorted(spn for spn in rewrite if spn in services)
        new_parts = {spn: build_part(spn, services[spn], endpoints.get(spn, ()), ctx) for spn in order}
        st.parts.update(new_parts)
        for spn in rewrite:                      # the index of each Service's ports
            st.ports.setdefault(spn[:2], set()).discard(spn)
        for spn in order:
            st.ports[spn[:2]].add(spn)
        for name in {spn[:2] for spn in rewrite}:
            if not st.ports.get(name):
                st.ports.pop(name, None)

        for spn in order:                 # the rewritten Services' chains, sets and rules
            part = new_parts[spn]
            for chain in part.chain_names:
                lines += [f"add chain {p} {chain}", f"flush chain {p} {chain}"]
            for aset, timeout in part.affinity_sets:
                lines.append(f"add set {p} {aset} {{ type {ctx.addr_type} ; flags dynamic,timeout ; "
                             f"timeout {timeout}s ; }}")
            for chain, rules in part.chains:
                lines += [f"add rule {p} {chain} {r}" + (f" comment {quote(c)}" if c else "") for r, c in rules]
        lines += _element_ops(st, p, old_parts, new_parts)

        new_chains = {c for part in new_parts.values() for c in part.chain_names}
        new_sets = {s for part in new_parts.values() for s, _ in part.affinity_sets}
        if full:
            gone_chains, gone_sets = st.chains - new_chains, st.affinity_sets - new_sets
        else:
            gone_chains = {c for part in old_parts.values() for c in part.chain_names} - new_chains
            gone_sets = {s for part in old_parts.values() for s, _ in part.affinity_sets} - new_sets
        for chain in sorted(gone_chains & st.chains):       # flush stale chains, delete later
            if chain not in st.stale:
                lines.append(f"flush chain {p} {chain}")
                st.stale[chain] = now
        for chain in new_chains:
            st.stale.pop(chain, None)
        for aset in sorted(gone_sets & st.affinity_sets):
            lines.append(f"delete set {p} {aset}")
        st.chains |= new_chains
        st.affinity_sets = (st.affinity_sets - gone_sets) | new_sets

        text = "\n".join(lines) + "\n" if lines else ""
        delete_text = "\n".join(delete_lines) + "\n" if delete_lines else ""
        return Plan(full, delete_text, tuple(deleted), text, len(lines), st, len(order))

    @staticmethod
    def _stale_deletes(st: State, p: str, now: float) -> tuple[list[str], list[str]]:
        lines, deleted = [], []
        for chain, when in sorted(st.stale.items()):
            if when < now - STALE_CHAIN_DELAY:
                lines.append(f"delete chain {p} {chain}")
                deleted.append(chain)
                del st.stale[chain]
                st.chains.discard(chain)
        return lines, deleted

    def commit(self, plan: Plan) -> None:
        """The transaction of ``plan`` succeeded: its state is now the kernel's."""
        self.state = plan.state

    def failed(self, plan: Plan, *, deleted_ok: bool) -> None:
        """A transaction failed: keep the state, but drop the stale-chain timers (upstream
        clears staleChains: they are recomputed from the next full sync's listing)."""
        if deleted_ok:
            self.state.chains -= set(plan.deleted_chains)
            for c in plan.deleted_chains:
                self.state.stale.pop(c, None)
        self.state.stale.clear()


def _ports_of(wanted: set, services: Mapping[ServicePortName, ServicePortInfo], st: State,
              hints: Mapping | None) -> set[ServicePortName]:
    """The service ports (now, or before this sync) of the ServiceNames in ``wanted``: from the
    state's index and the trackers' ``hints`` (cost: the changed Services), or, without hints, a
    scan of the map (``spn[:2]``: a ServicePortName starts with its ServiceName)."""
    if not wanted:
        return set()
    if hints is None:
        hit = wanted.__contains__
        return {spn for spn in services if hit(spn[:2])} | {spn for spn in st.parts if hit(spn[:2])}
    out: set[ServicePortName] = set()
    for name in wanted:
        out |= st.ports.get(tuple(name), set())
        out |= set(hints.get(name, ()))
    return out


def _element_ops(st: State, p: str, old_parts: Mapping[ServicePortName, Part],
                 new_parts: Mapping[ServicePortName, Part]) -> list[str]:
    """Element adds/deletes taking the kernel's maps from the old parts' elements to the new
    ones (upstream nftElementStorage: an unchanged element costs nothing, a changed value is
    deleted and added again, an element nobody claims any more is deleted)."""
    fam, table = p.split()
    lines, leftovers = [], []
    for part in old_parts.values():
        for container, el in part.elements:
            key = (container, el.key)
            n = st.owners.get(key, 0) - 1
            if n > 0:
                st.owners[key] = n
            else:
                st.owners.pop(key, None)
                leftovers.append(key)
    for part in new_parts.values():
        for container, el in part.elements:
            key = (container, el.key)
            st.owners[key] = st.owners.get(key, 0) + 1
            have = st.elements.get(key)
            if have == el:
                continue
            if have is not None:
                lines.append(element_line(fam, table, container, el, "delete"))
            lines.append(element_line(fam, table, container, el))
            st.elements[key] = el
    for key in dict.fromkeys(leftovers):
        if key not in st.owners and key in st.elements:
            lines.append(element_line(fam, table, key[0], st.elements.pop(key), "delete"))
    return lines


def container_kind(name: str) -> str:
    return CONTAINER_SPECS[name][0]
