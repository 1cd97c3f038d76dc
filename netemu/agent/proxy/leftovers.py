"""``netemu proxy cleanup``: remove what kube-proxy left in a node's kernel, every mode's leftovers,
like upstream ``kube-proxy --cleanup`` (which runs each mode's CleanupLeftovers in turn).

A node may carry rules of a mode it no longer runs (iptables rules after a switch to nftables,
kube-ipvs0 after leaving IPVS), so the Cleaner runs the cleanup of every mode in the registry,
in registry order (iptables first: an ipset an iptables rule references cannot be destroyed).
Each mode plans its removal purely from what the kernel lists and applies it through
``Leftovers``, so the plans are unit-tested without root and this driver stays thin.

Idempotent: a second run plans nothing and runs nothing but the read-only listings.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any, Callable

from netemu.agent.proxy import modes
from netemu.agent.proxy.commands import Exec, Result, exec_in

PREFIX = "KUBE-"
# the Node annotation where each node's kube-proxy says which mode it runs (netemu status shows it)
PROXY_MODE_ANNOTATION = "kube-proxy.netemu.io/mode"


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


class Leftovers:
    """What a mode's cleanup step works with: an Exec (``ip netns exec NAME`` with a netns, this
    namespace's otherwise; tests pass a fake), ``which`` for the tools, the netns's name, and the
    report."""

    def __init__(self, exec_: Exec, which: Callable[[str], str | None] = shutil.which, netns: str | None = None):
        self.exec = exec_
        self.which = which
        self.netns = netns          # for a mode that talks netlink there instead of running argv
        self.report = CleanupReport()

    def run(self, argv: list[str], stdin: str | None = None) -> Result:
        return self.exec(argv, stdin)

    def listing(self, argv: list[str]) -> str | None:
        """stdout of a read-only listing; None (and a note in ``skipped``) when its tool is not
        installed or it failed: nothing to plan from."""
        if not self.which(argv[0]):
            self.report.skipped.append(f"{argv[0]}: not installed")
            return None
        listed = self.run(argv)
        if listed.returncode != 0:
            self.report.skipped.append(f"{' '.join(argv)} failed: {listed.stderr.strip()[:200]}")
            return None
        return listed.stdout

    def mutate(self, argv: list[str]) -> bool:
        """Run a removal, record it, and its error if it failed."""
        self.report.commands.append(argv)
        done = self.run(argv)
        if done.returncode != 0:
            self.report.errors.append(f"{' '.join(argv)} failed: {done.stderr.strip()[:300]}")
        return done.returncode == 0


class Cleaner:
    """Every registered mode's cleanup, in a netns or here. ``options`` are the modes' cleanup
    flags by argparse dest (e.g. iptables' ``backend="nft"``); each mode gets its own."""

    def __init__(self, netns: str | None = None, exec_: Exec | None = None,
                 which: Callable[[str], str | None] = shutil.which, **options: Any):
        self.netns = netns
        self.exec = exec_ or exec_in(netns)
        self._which = which
        taken = {o.key for m in modes.known() for o in m.options_for("cleanup")}
        unknown = set(options) - taken
        if unknown:
            raise ValueError(f"no proxy mode takes the cleanup option(s) {', '.join(sorted(unknown))}")
        self.steps = []
        for mode in modes.with_hook("cleanup"):     # each validates its options now
            mine = {o.key: options[o.key] for o in mode.options_for("cleanup") if o.key in options}
            self.steps.append(mode.hook("cleanup")(**mine))

    def cleanup(self) -> CleanupReport:
        leftovers = Leftovers(self.exec, self._which, self.netns)
        for step in self.steps:
            step(leftovers)
        return leftovers.report


def cleaned_on_start(mode: str) -> tuple[str, ...]:
    """The modes whose leftovers a kube-proxy starting in ``mode`` removes: every other mode,
    except that an iptables-based one leaves the other iptables-based modes alone."""
    based = any(m.iptables_based for m in modes.with_hook("cleanup") if m.name == mode)
    return tuple(m.name for m in modes.with_hook("cleanup") if m.name != mode and not (based and m.iptables_based))


def clean_other_modes(mode: str, exec_: Exec | None = None, netns: str | None = None) -> CleanupReport:
    """Upstream kube-proxy's cleanup on start (platformCleanup, v1.32): before a mode programs the
    node, remove what the other modes left (a node switched from iptables to nftables must not
    keep answering through the old KUBE-SERVICES chains, nor the reverse) -- but an iptables-based
    mode (iptables, ipvs) cleans only the others: IPVS keeps its rules in the same KUBE-* chains,
    and a restarted IPVS kube-proxy that ran iptables' cleanup left its node without them until
    its first sync. Errors are reported, never raised."""
    cleaner = Cleaner(netns, exec_)
    leftovers = Leftovers(cleaner.exec, cleaner._which)
    chosen = cleaned_on_start(mode)
    for m, step in zip(modes.with_hook("cleanup"), cleaner.steps):
        if m.name in chosen:
            step(leftovers)
    return leftovers.report
