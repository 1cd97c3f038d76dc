"""Remove everything kube-proxy left in a node's kernel, like upstream ``kube-proxy --cleanup``.

The removal is planned purely from what the kernel shows (``iptables-save`` text, ``nft list
tables``, ``ipset list -n``, ``ip -o link show``) and then applied with argv lists, so the plan is
unit-tested without root and the applier stays thin.

iptables (both families): one ``iptables-restore --noflush`` per table set that, per table,
declares every KUBE-* chain (in --noflush mode a declaration empties the chain, which drops the
rules that reference other KUBE-* chains), deletes every rule of a non-KUBE chain that jumps or
goes to a KUBE-* chain by its exact spec (``-D INPUT <spec as saved>``; a rule is only removable
by its full spec or number, and the spec is stable while the number is not), then deletes the
chains (``-X``). Declaring first matters: ``-X`` refuses a chain that is still referenced. Both
iptables backends are cleaned unless one is chosen: a leftover rule in the backend the system no
longer uses still applies to packets (the classic "migrated to nft, old legacy rules still DNAT").

nftables: the ``kube-proxy`` tables of families ip and ip6 are deleted whole (upstream's nftables
mode keeps all of its state in them).

IPVS (not a mode this emulator has yet, and ip_vs is not in this kernel): the ``kube-ipvs0``
dummy link and KUBE-* ipsets are removed when they exist. What an IPVS mode must add here: delete
the virtual servers it created (the ones whose addresses are on kube-ipvs0, via netlink or
``ipvsadm -D -t/-u VIP:PORT``), before the link, and then the ipsets (an ipset referenced by an
iptables rule cannot be destroyed, so ipsets go after the iptables step).

Idempotent: a second run plans nothing and runs nothing but the read-only listings.

Difference from upstream: upstream's iptables CleanupLeftovers deletes its own jump rules by
their known specs and only the chains it owns (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-POSTROUTING,
KUBE-EXTERNAL-SERVICES, KUBE-FORWARD, KUBE-PROXY-FIREWALL and the hashed per-Service chains),
leaving the kubelet's (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-MARK-MASQ/DROP). Here every
KUBE-* chain goes, and every rule of any other chain that jumps to one, whatever its spec: in
the emulator our own agents own all of them, and a hand-edited or older-version rule must not
survive a cleanup (``prefix`` narrows it).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from typing import Callable

from netemu.agent.proxy.commands import Exec, Result, exec_in
from netemu.agent.proxy.iptables.apply import FAMILIES, Iptables, IptablesError
from netemu.agent.proxy.iptables.dump import no_gc, parse

log = logging.getLogger(__name__)

PREFIX = "KUBE-"
BACKENDS = ("nft", "legacy")


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


def plan_nft(list_tables_output: str) -> list[list[str]]:
    """argv lists deleting the kube-proxy nftables tables shown by ``nft list tables``."""
    out = []
    for line in list_tables_output.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table" and words[2] == "kube-proxy" \
                and words[1] in ("ip", "ip6", "inet"):
            out.append(["nft", "delete", "table", words[1], "kube-proxy"])
    return out


def plan_ipvs(link_output: str, ipset_names: str, prefix: str = PREFIX) -> list[list[str]]:
    """argv lists removing the kube-ipvs0 link and ``prefix`` ipsets (after iptables is clean)."""
    out = []
    if any(_link_name(line) == "kube-ipvs0" for line in link_output.splitlines()):
        out.append(["ip", "link", "del", "kube-ipvs0"])
    out += [["ipset", "destroy", name] for name in ipset_names.split() if name.startswith(prefix)]
    return out


def _link_name(line: str) -> str | None:
    """'4: kube-ipvs0: <...>' or '4: eth0@if5: <...>' (``ip -o link show``) -> the name."""
    parts = line.split(":", 2)
    return parts[1].strip().split("@")[0] if len(parts) == 3 else None


@dataclass
class CleanupReport:
    removed_chains: list[str] = field(default_factory=list)     # "backend family table chain"
    removed_jumps: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)     # every mutating argv run
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not self.commands and not self.errors


class Cleaner:
    """Runs the listings and the planned removals through an Exec (apply.py's: ``ip netns exec
    NAME`` with a netns, this namespace's otherwise; tests pass a fake), with the proxier's
    Iptables for save and restore (same binaries, same xtables-lock wait)."""

    def __init__(self, netns: str | None = None, backends: tuple[str, ...] = BACKENDS,
                 exec_: Exec | None = None, which: Callable[[str], str | None] = shutil.which):
        for b in backends:
            if b not in BACKENDS:
                raise ValueError(f"unknown iptables backend {b!r} (choose from {', '.join(BACKENDS)})")
        self.netns = netns
        self.backends = backends
        self.exec = exec_ or exec_in(netns)
        self._which = which

    def run(self, argv: list[str], stdin: str | None = None) -> Result:
        return self.exec(argv, stdin)

    def cleanup(self) -> CleanupReport:
        report = CleanupReport()
        for backend in self.backends:
            for family in FAMILIES:
                self._iptables(backend, family, report)
        self._simple("nft", ["nft", "list", "tables"], plan_nft, report)
        self._ipvs(report)
        return report

    def _iptables(self, backend: str, family: str, report: CleanupReport) -> None:
        ipt = Iptables(backend, self.exec, family=family)
        if not self._which(ipt.save_bin):
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

    def _simple(self, tool: str, listing: list[str], planner, report: CleanupReport) -> None:
        if not self._which(tool):
            report.skipped.append(f"{tool}: not installed")
            return
        listed = self.run(listing)
        if listed.returncode != 0:
            report.skipped.append(f"{' '.join(listing)} failed: {listed.stderr.strip()[:200]}")
            return
        for argv in planner(listed.stdout):
            self._mutate(argv, report)

    def _ipvs(self, report: CleanupReport) -> None:
        links = self.run(["ip", "-o", "link", "show"])
        sets = self.run(["ipset", "list", "-n"]) if self._which("ipset") else None
        names = sets.stdout if sets is not None and sets.returncode == 0 else ""
        for argv in plan_ipvs(links.stdout if links.returncode == 0 else "", names):
            self._mutate(argv, report)

    def _mutate(self, argv: list[str], report: CleanupReport) -> None:
        report.commands.append(argv)
        done = self.run(argv)
        if done.returncode != 0:
            report.errors.append(f"{' '.join(argv)} failed: {done.stderr.strip()[:300]}")
