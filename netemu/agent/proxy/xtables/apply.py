"""The thin edge of every mode that writes iptables rules (the iptables mode, and the IPVS mode's
fixed chains): run iptables-restore, ensure jump rules, detect the backend.

Everything here only turns a request into argv lists and hands them to an injectable ``Exec``
(a fake in unit tests, ``ip netns exec NS ...`` in kernel tests, plain argv on a real node), so
the proxier above it never knows where the kernel is. No mode's chains are named here: a mode
passes its own restore text and its own JumpRules.

Backends, like upstream: ``iptables`` follows whatever the system's ``iptables`` alternative
is (``iptables --version`` prints "(nf_tables)" or "(legacy)"); ``nft`` and ``legacy`` pick
iptables-nft / iptables-legacy explicitly.
"""

from __future__ import annotations

import logging
import re
from typing import Iterable, NamedTuple

from netemu.agent.proxy.commands import Exec, Result, local_exec
from netemu.agent.proxy.xtables.dump import table_spans
from netemu.agent.proxy.xtables.rule import tokenize

log = logging.getLogger(__name__)

BACKENDS = ("nft", "legacy")                          # the two sets of binaries
BACKEND_CHOICES = ("auto", "iptables", *BACKENDS)     # auto, iptables: the system's alternative

# upstream pkg/util/iptables: WaitSecondsValue / WaitIntervalUsecondsValue for the xtables lock
_WAIT = ["-w", "5", "-W", "100000"]


class IptablesError(RuntimeError):
    """An iptables command failed; the message names it and carries the kernel's words."""

    def __init__(self, what: str, result: Result):
        super().__init__(f"{what} failed (exit {result.returncode}): {result.stderr.strip()[:2000]}")
        self.result = result


# compiled at import, in the launcher template, not in each kube-proxy's first sync
_BACKEND_MARKER = re.compile(r"\((nf_tables|legacy)\)")


def detect_backend(version_output: str) -> str:
    """``nft`` or ``legacy`` from ``iptables --version`` (iptables < 1.8 has no marker: legacy)."""
    match = _BACKEND_MARKER.search(version_output)
    if match is None:
        return "legacy"
    return "nft" if match.group(1) == "nf_tables" else "legacy"


def resolve_backend(backend: str, exec_: Exec = local_exec) -> str:
    """The concrete backend (``nft``/``legacy``) for a flag value; ``auto``/``iptables`` ask the system."""
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"unknown iptables backend {backend!r}: choose one of {', '.join(BACKEND_CHOICES)}")
    if backend in BACKENDS:
        return backend
    result = exec_(["iptables", "--version"])
    if result.returncode != 0:
        raise IptablesError("iptables --version", result)
    return detect_backend(result.stdout + result.stderr)


FAMILIES = {"ipv4": "iptables", "ipv6": "ip6tables"}


class JumpRule(NamedTuple):
    """``iptables -t table -I src_chain <args>`` once chain ``dst_chain`` exists: how a mode hooks
    its own chains into the built-in ones (each mode lists its jumps; this module ensures them)."""

    table: str
    src_chain: str
    dst_chain: str
    args: tuple[str, ...]


def spec(args: tuple[str, ...] | list[str]) -> str:
    """Rule arguments as one line of restore/save text: a word with a space (or an empty one)
    in double quotes, as iptables-save prints a comment."""
    return " ".join(f'"{w}"' if (" " in w or not w) else w for w in args)


class Iptables:
    """One backend's binaries (of one family) behind an Exec: restore, save, and the -N/-C/-I
    of jump rules. The proxier and ``netemu proxy cleanup`` both go through here."""

    def __init__(self, backend: str = "iptables", exec_: Exec = local_exec, *, family: str = "ipv4"):
        if family not in FAMILIES:
            raise ValueError(f"unknown IP family {family!r}: choose one of {', '.join(FAMILIES)}")
        self.exec = exec_
        self.backend = resolve_backend(backend, exec_)
        self.iptables = f"{FAMILIES[family]}-{self.backend}"
        self.restore_bin = f"{self.iptables}-restore"
        self.save_bin = f"{self.iptables}-save"

    def restore_argv(self, counters: bool = True) -> list[str]:
        return [self.restore_bin, *_WAIT, "--noflush"] + (["--counters"] if counters else [])

    def restore(self, text: str, *, counters: bool = True) -> None:
        """One atomic ``iptables-restore --noflush``: all of ``text`` applies, or none of it."""
        argv = self.restore_argv(counters)
        result = self.exec(argv, text)
        if result.returncode != 0:
            raise IptablesError(" ".join(argv), result)

    def save(self, table: str | None = None) -> str:
        argv = [self.save_bin] + (["-t", table] if table else [])
        result = self.exec(argv)
        if result.returncode != 0:
            raise IptablesError(" ".join(argv), result)
        return result.stdout

    def ensure_chain(self, table: str, chain: str) -> None:
        """``-N`` unless it exists (exit 1 with "exists" is success, like upstream EnsureChain)."""
        result = self.exec([self.iptables, *_WAIT, "-t", table, "-N", chain])
        if result.returncode != 0 and "exist" not in result.stderr.lower():
            raise IptablesError(f"{self.iptables} -t {table} -N {chain}", result)

    def chain_exists(self, table: str, chain: str) -> bool | None:
        """``-S CHAIN`` (upstream chainExists); None when iptables had a resource problem
        (exit 4: the xtables lock was busy), which says nothing about the chain."""
        result = self.exec([self.iptables, *_WAIT, "-t", table, "-S", chain])
        if result.returncode == 4:
            return None
        return result.returncode == 0

    def delete_chain(self, table: str, chain: str) -> bool:
        """``-X CHAIN``; False if it could not be deleted (absent, or still referenced)."""
        return self.exec([self.iptables, *_WAIT, "-t", table, "-X", chain]).returncode == 0

    def ensure_rule_prepended(self, rule: JumpRule) -> bool:
        """``-C`` then ``-I`` if missing (upstream EnsureRule(Prepend)); True if inserted."""
        base = [self.iptables, *_WAIT, "-t", rule.table]
        if self.exec([*base, "-C", rule.src_chain, *rule.args]).returncode == 0:
            return False
        insert = self.exec([*base, "-I", rule.src_chain, *rule.args])
        if insert.returncode != 0:
            raise IptablesError(f"{self.iptables} -t {rule.table} -I {rule.src_chain} -j {rule.dst_chain}",
                                insert)
        return True

    def missing_jumps(self, rules: Iterable[JumpRule], saved: dict[str, str] | None = None) -> list[JumpRule]:
        """Jump rules not in the kernel: one ``-S CHAIN`` per built-in chain (or the lines of an
        ``iptables-save`` per table already at hand in ``saved``), not one ``-C`` per rule (each
        iptables call re-reads the table: costly at 10k Services). A chain holding a jump to the
        same target that does not print exactly like ours is settled by ``-C``."""
        rules = list(rules)
        listed: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        for key in dict.fromkeys((r.table, r.src_chain) for r in rules):
            if saved is not None and key[0] in saved:
                text = saved[key[0]]
            else:
                result = self.exec([self.iptables, *_WAIT, "-t", key[0], "-S", key[1]])
                if result.returncode != 0:
                    raise IptablesError(f"{self.iptables} -t {key[0]} -S {key[1]}", result)
                text = result.stdout
            prefix = f"-A {key[1]} "
            listed[key] = [tuple(tokenize(line)) for line in text.splitlines() if line.startswith(prefix)]
        missing = []
        for rule in rules:
            lines = listed[(rule.table, rule.src_chain)]
            if ("-A", rule.src_chain, *rule.args) in lines:
                continue
            if any(line[-2:] == ("-j", rule.dst_chain) for line in lines) and self.exec(
                    [self.iptables, *_WAIT, "-t", rule.table, "-C", rule.src_chain, *rule.args]).returncode == 0:
                continue
            missing.append(rule)
        return missing

    def ensure_jumps(self, rules: Iterable[JumpRule]) -> int:
        """Create our top chains and their jump rules, idempotently; returns how many were added."""
        added = 0
        for rule in rules:
            self.ensure_chain(rule.table, rule.dst_chain)
            added += self.ensure_rule_prepended(rule)
        return added


def add_jumps(text: str, rules: Iterable[JumpRule]) -> tuple[str, list[JumpRule]]:
    """Put ``-I`` lines for ``rules`` into restore ``text`` (before their table's COMMIT), so the
    jumps land in the same atomic restore as the chains they point to. Rules whose target
    chain ``text`` does not declare are returned: the caller ensures those with -N/-I."""
    sections = table_spans(text)
    inserts: dict[int, list[str]] = {}
    leftovers = []
    for rule in rules:
        span = sections.get(rule.table)
        if span is None or text.find(f"\n:{rule.dst_chain} ", span[0], span[1]) < 0:
            leftovers.append(rule)
            continue
        inserts.setdefault(span[1], []).append(f"-I {rule.src_chain} {spec(rule.args)}\n")
    pieces, last = [], 0
    for at in sorted(inserts):  # at: offset of the table's COMMIT line
        pieces += [text[last:at], *inserts[at]]
        last = at
    pieces.append(text[last:])
    return "".join(pieces), leftovers
