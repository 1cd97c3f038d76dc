"""The one parser of iptables-save / iptables-restore text: tables -> chains -> rules.

Why a parser of our own: the packet tracer, ``netemu proxy cleanup`` and ``netemu proxy render
--compare`` must read what is really in a kernel (``iptables-save`` of either backend, with or
without ``-c`` counters) as well as what our builder renders (``iptables-restore --noflush``
input, which also declares, flushes and deletes chains); upstream's test dumps are sorted from
it (normalize.py). Both are the same line language, so one parser reads both and yields the
state the text describes: for a save that is the dump itself, for restore input it is what the
tables would hold after loading it into empty tables (and, per table, the chains it deletes).

Each rule is a rule.Rule (its exact spec text, matches and target, split on first use). A line
we cannot read at all is listed in ``Dump.problems``; nothing here raises on odd input except
``parse(strict=True)``.

Two fast paths for the proxier's hot text (170k lines at 10k Services, where a Python loop per
line costs a quarter second): ``table_spans`` finds each table's block with str.find, and
``chain_names`` reads only the chain declarations of a save.
"""

from __future__ import annotations

import contextlib
import gc
import re
from dataclasses import dataclass, field

from netemu.agent.proxy.xtables.rule import Rule, option_name, parse_rule

BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


class DumpError(ValueError):
    """The text is not iptables-save/restore text (raised only when parsing strictly)."""


@dataclass
class Chain:
    name: str
    policy: str | None = None          # "ACCEPT"/"DROP" for built-in chains, None for user chains
    counters: tuple[int, int] | None = None
    rules: list[Rule] = field(default_factory=list)

    @property
    def builtin(self) -> bool:
        return self.policy is not None


@dataclass
class Table:
    name: str
    chains: dict[str, Chain] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)   # chains the text deletes (-X), in order

    def chain(self, name: str) -> Chain | None:
        return self.chains.get(name)


@dataclass
class Dump:
    """Parsed text: tables in file order, plus every line we could not use (never silently)."""

    tables: dict[str, Table] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def table(self, name: str) -> Table | None:
        return self.tables.get(name)

    def chain(self, table: str, chain: str) -> Chain | None:
        t = self.tables.get(table)
        return t.chains.get(chain) if t else None

    def unknown_options(self) -> list[str]:
        """Every option the tracer cannot evaluate, as 'table chain: what (line N)' lines."""
        out = []
        for t in self.tables.values():
            for c in t.chains.values():
                for r in c.rules:
                    out.extend(f"{t.name} {c.name}: {u} (line {r.line})" for u in r.unknown)
        return out

    def render(self, counters: bool = False) -> str:
        """Back to iptables-save text (a restore of it reproduces the same tables)."""
        lines: list[str] = []
        for t in self.tables.values():
            lines.append(f"*{t.name}")
            for c in t.chains.values():
                p, b = c.counters or (0, 0)
                lines.append(f":{c.name} {c.policy or '-'} [{p}:{b}]")
            for c in t.chains.values():
                for r in c.rules:
                    prefix = f"[{r.counters[0]}:{r.counters[1]}] " if counters and r.counters else ""
                    lines.append(prefix + r.raw)
            lines.append("COMMIT")
        return "\n".join(lines) + "\n"


_COUNTERS = re.compile(r"^\[(\d+):(\d+)\]\s*")
_CHAIN_DECL = re.compile(r"^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?\s*$")


@contextlib.contextmanager
def no_gc():
    """Pause the cyclic garbage collector around bulk work on a big dump.

    Reading or planning over 200k rules allocates millions of small acyclic objects; with the
    collector on, about half of the time goes to it rescanning the whole (growing) heap."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def parse(text: str, strict: bool = False) -> Dump:
    """Parse save or restore text into the tables it describes.

    Restore commands are applied in order (``:C`` declares and empties C, ``-A``/``-I`` add,
    ``-D`` deletes, ``-F`` flushes, ``-X`` deletes a chain, ``-N`` creates, ``-P`` sets policy),
    so restore input yields the state it would leave in empty tables. With ``strict`` the first
    unusable line raises DumpError; otherwise it is recorded in ``Dump.problems``."""
    dump = Dump()
    with no_gc():
        table = _parse_lines(dump, text, strict)
    if table is not None:
        msg = f"table {table.name!r} has no COMMIT"
        if strict:
            raise DumpError(msg)
        dump.problems.append(msg)
    return dump


def _parse_lines(dump: Dump, text: str, strict: bool) -> Table | None:
    table: Table | None = None
    for n, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            table = _parse_line(dump, table, line, n)
        except (ValueError, IndexError) as exc:
            msg = f"line {n}: {exc}: {line[:200]}"
            if strict:
                raise DumpError(msg) from None
            dump.problems.append(msg)
    return table


def _parse_line(dump: Dump, table: Table | None, line: str, n: int) -> Table | None:
    """Apply one line to ``dump``; returns the table now open (None after COMMIT)."""
    if line.startswith("*"):
        if table is not None:
            raise ValueError(f"table {line[1:]!r} starts before {table.name!r} was committed")
        name = line[1:].strip()
        return dump.tables.setdefault(name, Table(name))
    if line == "COMMIT":
        if table is None:
            raise ValueError("COMMIT outside a table")
        return None
    if table is None:
        raise ValueError("line outside a table (no *table before it)")
    counters = None
    m = _COUNTERS.match(line)
    if m:
        counters = (int(m.group(1)), int(m.group(2)))
        line = line[m.end():]
    if line.startswith(":"):
        _declare_chain(table, line)
        return table
    parts = line.split(None, 2)
    cmd = option_name(parts[0]) if parts else None
    if cmd is None or len(parts) < 2:
        raise ValueError("not a chain declaration or command")
    chain_name = parts[1]
    rest = parts[2] if len(parts) > 2 else ""
    if cmd in ("A", "append", "I", "insert", "D", "delete", "R", "replace"):
        _rule_command(table, cmd[0].upper(), chain_name, rest, n, counters)
    elif cmd in ("F", "flush"):
        _existing(table, chain_name).rules.clear()
    elif cmd in ("X", "delete-chain"):
        if chain_name in BUILTIN_CHAINS.get(table.name, ()):
            raise ValueError(f"cannot delete built-in chain {chain_name}")
        _existing(table, chain_name)
        del table.chains[chain_name]
        table.deleted.append(chain_name)
    elif cmd in ("N", "new-chain"):
        if chain_name in table.chains:
            raise ValueError(f"chain {chain_name} already exists")
        table.chains[chain_name] = Chain(chain_name)
    elif cmd in ("P", "policy"):
        _existing(table, chain_name).policy = rest.split()[0]
    else:
        raise ValueError(f"unsupported command -{cmd}")
    return table


def _declare_chain(table: Table, line: str) -> None:
    m = _CHAIN_DECL.match(line)
    if not m:
        raise ValueError("bad chain declaration")
    name, policy = m.group(1), m.group(2)
    counters = (int(m.group(3)), int(m.group(4))) if m.group(3) else None
    if policy == "-" and name in BUILTIN_CHAINS.get(table.name, ()):
        policy = "ACCEPT"   # restore text may write built-ins with '-'; the kernel keeps ACCEPT
    table.chains[name] = Chain(name, None if policy == "-" else policy, counters)


def _existing(table: Table, name: str) -> Chain:
    chain = table.chains.get(name)
    if chain is None:
        raise ValueError(f"no chain {name} in table {table.name}")
    return chain


def _rule_command(table: Table, cmd: str, chain_name: str, rest: str, n: int,
                  counters: tuple[int, int] | None) -> None:
    chain = table.chains.get(chain_name)
    if chain is None:
        if chain_name in BUILTIN_CHAINS.get(table.name, ()):
            chain = table.chains[chain_name] = Chain(chain_name, "ACCEPT")
        else:
            raise ValueError(f"rule for undeclared chain {chain_name}")
    index = None
    if cmd in ("I", "R", "D"):
        first, _, tail = rest.partition(" ")
        if first.isdigit():
            index, rest = int(first) - 1, tail
    if cmd == "D":
        if index is None:
            wanted = parse_rule(chain_name, rest)
            index = next((k for k, r in enumerate(chain.rules)
                          if (r.matches, r.target, r.target_options)
                          == (wanted.matches, wanted.target, wanted.target_options)), None)
            if index is None:
                raise ValueError(f"no such rule in {chain_name} to delete")
        if index >= len(chain.rules):
            raise ValueError(f"{chain_name} has no rule {index + 1}")
        del chain.rules[index]
        return
    rule = parse_rule(chain_name, rest, n, counters)
    if cmd == "A":
        chain.rules.append(rule)
    elif cmd == "I":
        chain.rules.insert(index or 0, rule)
    else:
        if index is None or index >= len(chain.rules):
            raise ValueError("replace needs an existing rule number")
        chain.rules[index] = rule


# ---- fast paths over big texts (no per-line Python work) ---------------------------------

def table_spans(text: str) -> dict[str, tuple[int, int]]:
    """table -> (start, end) offsets of its block: from the end of its "*table" line to the start
    of its "COMMIT" line (str.find: C speed on 10 MB)."""
    out = {}
    pos = 0
    while True:
        star = text.find("*", pos) if pos == 0 and text.startswith("*") else text.find("\n*", pos)
        if star < 0:
            return out
        start = star if text[star] == "*" else star + 1
        eol = text.find("\n", start)
        end = text.find("\nCOMMIT", eol)
        if eol < 0 or end < 0:
            return out
        out[text[start + 1:eol].strip()] = (eol, end + 1)
        pos = end + 1


def chain_names(text: str) -> dict[str, frozenset[str]]:
    """table -> the chains a save (or restore text) declares, from its ":CHAIN ..." lines only."""
    out: dict[str, set[str]] = {}
    names: set[str] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            names = out.setdefault(line[1:].strip(), set())
        elif line.startswith(":") and len(line) > 1 and names is not None:
            names.add(line[1:].split()[0])
    return {table: frozenset(chains) for table, chains in out.items()}
