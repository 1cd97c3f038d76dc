"""What to send so that the kernel holds what is wanted: pure comparisons, no kernel.

``service_ops`` compares one virtual server as wanted (a planner's Service, or None: not wanted)
with the kernel's and returns the IPVS ops that turn one into the other -- nothing for what is
already right -- plus the real servers that leave it. ``ipset_lines`` does the same for the sets,
as ``ipset restore`` lines. The applier decides how a leaving real server goes (graceful.py).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from . import sets as S
from .kernel import Op
from .planner import Service
from .state import RealServer, VirtualServer


def service_ops(want: Service | None, have: VirtualServer | None,
                have_reals: Mapping[tuple[str, int], RealServer]) -> tuple[list[Op], list[RealServer]]:
    """(ops, leaving real servers) for one virtual server key."""
    if want is None:
        return ([Op("del_service", have)] if have is not None else []), []
    vs = want.server
    if have is None:
        return [Op("add_service", vs), *(Op("add_dest", vs, rs) for rs in want.reals)], []
    ops = [Op("set_service", vs)] if have != vs else []
    wanted = {rs.endpoint: rs for rs in want.reals}
    for endpoint, rs in wanted.items():
        current = have_reals.get(endpoint)
        if current is None:
            ops.append(Op("add_dest", vs, rs))
        elif current.weight != rs.weight:         # a draining one wanted again, or a foreign weight
            ops.append(Op("set_dest", vs, rs))
    leaving = [rs for endpoint, rs in have_reals.items() if endpoint not in wanted]
    return ops, leaving


def ipset_lines(want: Mapping[str, Iterable[str]], have_types: Mapping[str, str],
                have: Mapping[str, set[str]], ipv6: bool) -> list[str]:
    """``ipset restore`` lines making the mode's sets hold exactly ``want`` (by family name):
    ``create`` for a missing set, ``add``/``del`` for the entries that differ (compared in the
    spelling ``ipset save`` uses)."""
    lines: list[str] = []
    for name, info in S.names(ipv6).items():
        if name not in have_types:
            lines.append(S.create_line(name, info, ipv6))
    for name, info in S.names(ipv6).items():
        entries = {S.canonical(info.type, e): e for e in want.get(name, ())}
        current = have.get(name, set())
        lines += [f"add {name} {entries[c]}" for c in sorted(entries.keys() - current)]
        lines += [f"del {name} {c}" for c in sorted(current - entries.keys())]
    return lines


def ipset_delta_lines(added: Mapping[str, Iterable[str]], removed: Mapping[str, Iterable[str]],
                      have: Mapping[str, set[str]], ipv6: bool) -> list[str]:
    """``ipset restore`` lines for a planner Delta (sets under their IPv4 names), leaving out what
    the kernel already holds (or already lacks)."""
    lines: list[str] = []
    for base, entries in added.items():
        name, kind = S.name_for(base, ipv6), S.BY_NAME[base].type
        lines += [f"add {name} {e}" for e in sorted(entries) if S.canonical(kind, e) not in have.get(name, ())]
    for base, entries in removed.items():
        name, kind = S.name_for(base, ipv6), S.BY_NAME[base].type
        lines += [f"del {name} {e}" for e in sorted(entries) if S.canonical(kind, e) in have.get(name, ())]
    return lines
