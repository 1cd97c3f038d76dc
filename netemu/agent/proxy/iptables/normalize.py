"""Read restore/save text back into tables, chains and rules, and sort it like upstream's tests.

Upstream writes Services in Go-map (random) order, so its tests compare dumps after
``sortIPTablesRules`` (pkg/proxy/iptables/proxier_test.go, kubernetes v1.32): tables by name;
chains KUBE-NODEPORTS, KUBE-SERVICES, other KUBE-* alphabetically, then the rest; rules
grouped under their chain; KUBE-NODEPORTS and KUBE-SERVICES rules stably ordered by the
Service named in their comment, the nat "must be the last rule" jump kept last.
``sort_like_upstream`` does the same, so upstream's expected dumps compare to ours literally.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass
class Chain:
    name: str
    rules: list[str] = field(default_factory=list)
    deleted: bool = False


@dataclass
class Table:
    name: str
    chains: list[Chain] = field(default_factory=list)

    def chain(self, name: str) -> Chain | None:
        return next((c for c in self.chains if c.name == name), None)


class DumpError(ValueError):
    """Text that is not iptables-save/restore input; the message names the line."""


def parse(text: str) -> list[Table]:
    """Tables of a restore/save text, chains in declaration order (counters dropped)."""
    tables: list[Table] = []
    table: Table | None = None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = Table(line[1:])
            tables.append(table)
            continue
        if table is None:
            raise DumpError(f"line {n}: {line!r} outside a table")
        if line == "COMMIT":
            table = None
        elif line.startswith(":"):
            name = line[1:].split()[0]
            if table.chain(name) is None:
                table.chains.append(Chain(name))
        elif line.startswith(("-A ", "-X ")):
            name = line.split()[1]
            chain = table.chain(name)
            if chain is None:
                raise DumpError(f"line {n}: chain {name} used before it is declared")
            if line.startswith("-X"):
                chain.deleted = True
            else:
                chain.rules.append(line)
        else:
            raise DumpError(f"line {n}: cannot parse {line!r}")
    if table is not None:
        raise DumpError(f"table {table.name} has no COMMIT")
    return tables


def to_text(tables: list[Table]) -> str:
    """Upstream's IPTablesDump.String(): chain lines, each chain's rules, then the -X lines."""
    out: list[str] = []
    for t in tables:
        out.append(f"*{t.name}")
        out.extend(f":{c.name} - [0:0]" for c in t.chains)
        for c in t.chains:
            out.extend(c.rules)
        out.extend(f"-X {c.name}" for c in t.chains if c.deleted)
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def comment_of(rule: str) -> str | None:
    """The ``--comment`` value of a rule, unquoted."""
    try:
        words = shlex.split(rule)
    except ValueError:
        return None
    for i, w in enumerate(words[:-1]):
        if w == "--comment":
            return words[i + 1]
    return None


def _service_key(rule: str) -> str:
    comment = comment_of(rule) or ""
    for i, ch in enumerate(comment):
        if ch in " :":
            return comment[:i]
    return comment


def _chain_key(name: str) -> tuple[int, str]:
    if name == "KUBE-NODEPORTS":
        return (0, "")
    if name == "KUBE-SERVICES":
        return (1, "")
    return (2, name) if name.startswith("KUBE-") else (3, name)


def sort_like_upstream(text: str) -> str:
    """The text normalised as upstream's sortIPTablesRules() does."""
    tables = sorted(parse(text), key=lambda t: t.name)
    for t in tables:
        t.chains.sort(key=lambda c: _chain_key(c.name))
        for name in ("KUBE-NODEPORTS", "KUBE-SERVICES"):
            chain = t.chain(name)
            if chain is None:
                continue
            last = [r for r in chain.rules if "must be the last rule" in (comment_of(r) or "")]
            rest = [r for r in chain.rules if r not in last] if t.name == "nat" else chain.rules
            chain.rules = sorted(rest, key=_service_key) + (last if t.name == "nat" and name == "KUBE-SERVICES" else [])
    return to_text(tables)
