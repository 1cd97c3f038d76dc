"""Reuse of each service port's rules between syncs (an optimisation that never changes output)."""

from __future__ import annotations

from typing import NamedTuple, Sequence

from ..model import EndpointInfo, NodeInfo, ProxyConfig, ServicePortInfo, ServicePortName
from .service_rules import plan_service_port, spn_str, write_service_chains, write_top_rules


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
    return _Entry(info, eps, no_local, top_f, top_n, lines, rules, frozenset(active))


class BuildCache:
    """Each service port's rules from the last build, reused when the very same immutable
    ServicePortInfo and endpoint tuple come back (a change tracker hands unchanged Services'
    objects over untouched). Upstream skips re-writing unchanged chains; this also skips
    re-formatting them, which makes warm full builds and partial builds several times faster.
    Opt-in, and never changes the output: any other node, config or cluster size starts over.
    """

    def __init__(self) -> None:
        self._env: tuple | None = None
        self._entries: dict[ServicePortName, _Entry] = {}

    def begin(self, env: tuple) -> dict[ServicePortName, _Entry]:
        if env != self._env:
            self._env, self._entries = env, {}
        return {}

    def get(self, spn: ServicePortName, info: ServicePortInfo, eps: Sequence[EndpointInfo]) -> _Entry | None:
        e = self._entries.get(spn)
        return e if e is not None and e.info is info and e.eps is eps else None

    def commit(self, entries: dict[ServicePortName, _Entry]) -> None:
        self._entries = entries  # Services gone since the last build drop out here

