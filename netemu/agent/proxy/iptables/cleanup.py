"""Remove every KUBE-* chain and every rule jumping to one from both iptables backends: the
iptables step of ``netemu proxy cleanup`` (../leftovers.py), like upstream's iptables
CleanupLeftovers.

The removal is planned purely from ``iptables-save`` text and applied with one ``iptables-restore
--noflush`` per table set that, per table, declares every KUBE-* chain (in --noflush mode a
declaration empties the chain, which drops the rules that reference other KUBE-* chains),
deletes every rule of a non-KUBE chain that jumps or goes to a KUBE-* chain by its exact spec
(``-D INPUT <spec as saved>``; a rule is only removable by its full spec or number, and the spec
is stable while the number is not), then deletes the chains (``-X``). Declaring first matters:
``-X`` refuses a chain that is still referenced. Both backends are cleaned unless one is chosen:
a leftover rule in the backend the system no longer uses still applies to packets (the classic
"migrated to nft, old legacy rules still DNAT").

Difference from upstream: upstream deletes its own jump rules by their known specs and only the
chains it owns (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-EXTERNAL-SERVICES,
KUBE-FORWARD, KUBE-PROXY-FIREWALL and the hashed per-Service chains), leaving the kubelet's
(KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-MARK-MASQ/DROP). Here every KUBE-* chain goes, and every
rule of any other chain that jumps to one, whatever its spec: in the emulator our own agents own
all of them, and a hand-edited or older-version rule must not survive a cleanup (``prefix``
narrows it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from netemu.agent.proxy.xtables.apply import BACKENDS, FAMILIES, Iptables, IptablesError
from netemu.agent.proxy.xtables.dump import no_gc, parse
from netemu.agent.proxy.leftovers import PREFIX, Leftovers


@dataclass
class IptablesPlan:
    """What to remove from one iptables-save text, and the restore input that removes it."""

    chains: list[tuple[str, str]] = field(default_factory=list)          # (table, chain)
    jumps: list[tuple[str, str, str]] = field(default_factory=list)      # (table, chain, spec)
    restore_text: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.chains and not self.jumps


def plan_iptables(save_text: str, prefix: str = PREFIX) -> IptablesPlan:
    """Plan the removal of every ``prefix`` chain and every rule jumping to one (pure)."""
    with no_gc():
        return _plan_iptables(parse(save_text), prefix)


def _plan_iptables(dump, prefix: str) -> IptablesPlan:
    plan = IptablesPlan(problems=list(dump.problems))
    blocks: list[str] = []
    for table in dump.tables.values():
        ours = [c for c in table.chains.values() if c.name.startswith(prefix) and not c.builtin]
        jumps = [(c.name, r.spec) for c in table.chains.values() if not c.name.startswith(prefix)
                 for r in c.rules if r.target and r.target.startswith(prefix)]
        if not ours and not jumps:
            continue
        lines = [f"*{table.name}"]
        lines += [f":{c.name} - [0:0]" for c in ours]
        lines += [f"-D {chain} {spec}" for chain, spec in jumps]
        lines += [f"-X {c.name}" for c in ours]
        lines.append("COMMIT")
        blocks.append("\n".join(lines))
        plan.chains += [(table.name, c.name) for c in ours]
        plan.jumps += [(table.name, chain, spec) for chain, spec in jumps]
    plan.restore_text = "\n".join(blocks) + "\n" if blocks else ""
    return plan


def cleanup(backend: str | None = None) -> Callable[[Leftovers], None]:
    """The registry's cleanup hook: both backends (or only ``backend``), both IP families."""
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"unknown iptables backend {backend!r} (choose from {', '.join(BACKENDS)})")
    backends = (backend,) if backend else BACKENDS

    def step(leftovers: Leftovers) -> None:
        for b in backends:
            for family in FAMILIES:
                _clean(leftovers, b, family)
    return step


def _clean(leftovers: Leftovers, backend: str, family: str) -> None:
    """One backend and family: save, plan, one restore (the proxier's Iptables: same binaries,
    same xtables-lock wait)."""
    report = leftovers.report
    ipt = Iptables(backend, leftovers.exec, family=family)
    if not leftovers.which(ipt.save_bin):
        report.skipped.append(f"{ipt.save_bin}: not installed")
        return
    try:
        listed = ipt.save()
    except IptablesError as exc:
        report.skipped.append(f"{ipt.save_bin} failed: {exc.result.stderr.strip()[:200]}")
        return
    plan = plan_iptables(listed)
    report.errors += [f"{ipt.save_bin}: {p}" for p in plan.problems]
    if plan.empty:
        return
    report.commands.append(ipt.restore_argv(counters=False))
    try:
        ipt.restore(plan.restore_text, counters=False)
    except IptablesError as exc:
        report.errors.append(f"{ipt.restore_bin} failed: {exc.result.stderr.strip()[:500]}")
        return
    where = f"{backend} {family}"
    report.removed_chains += [f"{where} {t} {c}" for t, c in plan.chains]
    report.removed_jumps += [f"{where} {t} {c}: {s}" for t, c, s in plan.jumps]
