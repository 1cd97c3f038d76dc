"""The thin edge of iptables mode: run iptables-restore, ensure jump rules, detect the backend.

Everything here only turns a request into argv lists and hands them to an injectable ``Exec``
(a fake in unit tests, ``ip netns exec NS ...`` in kernel tests, plain argv on a real node), so
the proxier above it never knows where the kernel is.

Backends, like upstream: ``iptables`` follows whatever the system's ``iptables`` alternative
is (``iptables --version`` prints "(nf_tables)" or "(legacy)"); ``nft`` and ``legacy`` pick
iptables-nft / iptables-legacy explicitly.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
from dataclasses import dataclass
from typing import Iterable, Protocol

log = logging.getLogger(__name__)

BACKENDS = ("iptables", "nft", "legacy")

# upstream pkg/util/iptables: WaitSecondsValue / WaitIntervalUsecondsValue for the xtables lock
_WAIT = ["-w", "5", "-W", "100000"]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Exec(Protocol):
    def __call__(self, argv: list[str], input: str | None = None) -> Result: ...


def local_exec(argv: list[str], input: str | None = None) -> Result:
    """Run argv on this host's (this process's) namespace."""
    proc = subprocess.run(argv, input=input, capture_output=True, text=True)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def netns_exec(netns: str) -> Exec:
    """An Exec that runs every argv inside ``netns`` (kube-proxy of the node living there)."""
    def run(argv: list[str], input: str | None = None) -> Result:
        return local_exec(["ip", "netns", "exec", netns, *argv], input)
    return run


class IptablesError(RuntimeError):
    """An iptables command failed; the message names it and carries the kernel's words."""

    def __init__(self, what: str, result: Result):
        super().__init__(f"{what} failed (exit {result.returncode}): {result.stderr.strip()[:2000]}")
        self.result = result


def detect_backend(version_output: str) -> str:
    """``nft`` or ``legacy`` from ``iptables --version`` (iptables < 1.8 has no marker: legacy)."""
    match = re.search(r"\((nf_tables|legacy)\)", version_output)
    if match is None:
        return "legacy"
    return "nft" if match.group(1) == "nf_tables" else "legacy"


def resolve_backend(backend: str, exec_: Exec = local_exec) -> str:
    """The concrete backend (``nft``/``legacy``) for a flag value; ``iptables`` asks the system."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown iptables backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend != "iptables":
        return backend
    result = exec_(["iptables", "--version"])
    if result.returncode != 0:
        raise IptablesError("iptables --version", result)
    return detect_backend(result.stdout + result.stderr)


class JumpRule(Protocol):
    """A rule in a built-in chain jumping to one of ours (the builder's chains.jump_rules())."""

    table: str
    src_chain: str     # built-in chain (PREROUTING, INPUT, ...)
    dst_chain: str     # our chain (KUBE-SERVICES, ...)
    args: tuple[str, ...]


class Iptables:
    """One backend's binaries behind an Exec: restore, save, and the -N/-C/-I of jump rules."""

    def __init__(self, backend: str = "iptables", exec_: Exec = local_exec):
        self.exec = exec_
        self.backend = resolve_backend(backend, exec_)
        self.iptables = f"iptables-{self.backend}"
        self.restore_bin = f"iptables-{self.backend}-restore"
        self.save_bin = f"iptables-{self.backend}-save"

    def restore(self, text: str, *, counters: bool = True) -> None:
        """One atomic ``iptables-restore --noflush``: all of ``text`` applies, or none of it."""
        argv = [self.restore_bin, *_WAIT, "--noflush"] + (["--counters"] if counters else [])
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

    def missing_jumps(self, rules: Iterable[JumpRule]) -> list[JumpRule]:
        """Jump rules not in the kernel: one ``-S CHAIN`` per built-in chain, not one ``-C`` per
        rule (each iptables call re-reads the table: costly at 10k Services). A chain holding a
        jump to the same target that does not print exactly like ours is settled by ``-C``."""
        rules = list(rules)
        listed: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        for key in dict.fromkeys((r.table, r.src_chain) for r in rules):
            result = self.exec([self.iptables, *_WAIT, "-t", key[0], "-S", key[1]])
            if result.returncode != 0:
                raise IptablesError(f"{self.iptables} -t {key[0]} -S {key[1]}", result)
            listed[key] = [tuple(shlex.split(line)) for line in result.stdout.splitlines() if line.startswith("-A")]
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


def count_rules(text: str) -> dict[str, int]:
    """Rules per table in restore text (lines starting with -A), for the iptables_total metric."""
    counts: dict[str, int] = {}
    table = None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            counts.setdefault(table, 0)
        elif line.startswith("-A ") and table is not None:
            counts[table] += 1
    return counts


def _restore_word(word: str) -> str:
    return f'"{word}"' if (" " in word or not word) else word


def add_jumps(text: str, rules: Iterable[JumpRule]) -> tuple[str, list[JumpRule]]:
    """Put ``-I`` lines for ``rules`` into restore ``text`` (before their table's COMMIT), so the
    jumps land in the same atomic restore as the chains they point to. Rules whose target
    chain ``text`` does not declare are returned: the caller ensures those with -N/-I."""
    lines = text.split("\n")
    table, declared, starts = None, {}, {}
    for i, line in enumerate(lines):
        if line.startswith("*"):
            table = line[1:].strip()
            declared[table], starts[table] = set(), i
        elif line.startswith(":") and table:
            declared[table].add(line[1:].split()[0])
        elif line == "COMMIT" and table:
            starts[table] = (starts[table], i)
            table = None
    inserts: dict[int, list[str]] = {}
    leftovers = []
    for rule in rules:
        span = starts.get(rule.table)
        if not isinstance(span, tuple) or rule.dst_chain not in declared[rule.table]:
            leftovers.append(rule)
            continue
        words = ["-I", rule.src_chain, *rule.args]
        inserts.setdefault(span[1], []).append(" ".join(_restore_word(w) for w in words))
    out = []
    for i, line in enumerate(lines):
        out.extend(inserts.get(i, ()))
        out.append(line)
    return "\n".join(out), leftovers


_SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")


def _chain_bodies(text: str) -> tuple[dict[tuple[str, str], list[str]], set[tuple[str, str]]]:
    """Declared top-level (non per-Service) chains of restore text -> their -A lines, and the
    chains the text deletes (-X)."""
    bodies: dict[tuple[str, str], list[str]] = {}
    deleted: set[tuple[str, str]] = set()
    table = ""
    for line in text.split("\n"):
        if not line:
            continue
        head = line[0]
        if head == "-":
            parts = line.split(" ", 2)
            if len(parts) < 2:
                continue
            key = (table, parts[1])
            if parts[0] == "-A":
                body = bodies.get(key)
                if body is not None:
                    body.append(line)
            elif parts[0] == "-X":
                deleted.add(key)
        elif head == ":":
            chain = line[1:].split(" ", 1)[0]
            if not chain.startswith(_SERVICE_CHAIN_PREFIXES):
                bodies[(table, chain)] = []
        elif head == "*":
            table = line[1:].strip()
    return bodies, deleted


class AppliedChains:
    """What our top-level chains (KUBE-SERVICES, KUBE-NODEPORTS, ...) hold in the kernel now.

    A partial sync (KEP-3453) rewrites only the changed Services' chains, but upstream still
    rewrites every top-level chain, and KUBE-SERVICES has a rule per Service port: at 10k
    Services that rewrite is most of a one-endpoint change's cost (iptables-nft re-adds 10k
    rules). Since the kernel holds exactly what the last successful restore wrote, a partial
    sync may leave out a top-level chain whose rules are unchanged: the resulting tables are
    the same, the restore is smaller. Full syncs always write everything (and repair any drift).
    """

    def __init__(self) -> None:
        self.bodies: dict[tuple[str, str], list[str]] = {}

    def trim(self, text: str) -> str:
        """``text`` without the declarations and rules of top-level chains already in the kernel."""
        bodies, deleted = _chain_bodies(text)
        same = {key for key, body in bodies.items() if key not in deleted and self.bodies.get(key) == body}
        if not same:
            return text
        out, table = [], ""
        for line in text.split("\n"):
            if line.startswith("*"):
                table = line[1:].strip()
            elif line.startswith(":"):
                if (table, line[1:].split(" ", 1)[0]) in same:
                    continue
            elif line.startswith("-A "):
                parts = line.split(" ", 2)
                if (table, parts[1]) in same:
                    continue
            out.append(line)
        return "\n".join(out)

    def record(self, text: str, full: bool) -> None:
        """After a successful restore of (untrimmed) ``text``: remember its top-level chains."""
        bodies, deleted = _chain_bodies(text)
        if full:
            self.bodies = {}
        self.bodies.update(bodies)
        for key in deleted:
            self.bodies.pop(key, None)

    def forget(self) -> None:
        """The kernel's state is unknown (a failure): the next restore must write everything."""
        self.bodies = {}
