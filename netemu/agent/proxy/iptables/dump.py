"""Parse iptables-save / iptables-restore text into tables -> chains -> rules.

Why a parser of our own: the packet tracer and ``netemu proxy cleanup`` must read what is really
in a kernel (``iptables-save`` of either backend, with or without ``-c`` counters) as well as what
our builder renders (``iptables-restore --noflush`` input, which also declares, flushes and
deletes chains). Both are the same line language, so one parser reads both and yields the state
the text describes: for a save that is the dump itself, for restore input it is what the tables
would hold after loading it into empty tables.

Each rule keeps its exact spec text (what follows ``-A CHAIN``) so a caller can hand it back to
iptables verbatim (``-D CHAIN <spec>``), and is also split into matches (``-m MODULE`` groups of
options, plus the basic ``-s -d -p -i -o -f``) and a target with its options. Anything we do not
know is kept and listed in ``Rule.unknown``; a line we cannot read at all is listed in
``Dump.problems``. Nothing here raises on odd input except ``parse(strict=True)``.
"""

from __future__ import annotations

import contextlib
import gc
import re
import shlex
from dataclasses import dataclass, field
from typing import NamedTuple

BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}

# Long option spellings -> the short name we store.
_ALIASES = {
    "source": "s", "src": "s", "destination": "d", "dst": "d", "protocol": "p",
    "in-interface": "i", "out-interface": "o", "jump": "j", "goto": "g", "match": "m",
    "fragment": "f", "destination-port": "dport", "source-port": "sport",
    "destination-ports": "dports", "source-ports": "sports", "set-counters": "c",
}
_BASIC = {"s", "d", "p", "i", "o", "f"}
# Options that take a fixed number of values (others take every following non-option token).
_ARITY = {"comment": 1, "match-set": 2, "tcp-flags": 2, "c": 2, "s": 1, "d": 1, "p": 1, "i": 1,
          "o": 1, "f": 0, "m": 1, "j": 1, "g": 1, "mark": 1, "probability": 1}

# Match modules (and their options) the tracer understands; anything else lands in Rule.unknown.
KNOWN_MODULES = {
    "": _BASIC,
    "tcp": {"dport", "sport", "tcp-flags", "syn", "tcp-option"},
    "udp": {"dport", "sport"},
    "sctp": {"dport", "sport", "chunk-types"},
    "udplite": {"dport", "sport"},
    "addrtype": {"src-type", "dst-type", "limit-iface-in", "limit-iface-out"},
    "comment": {"comment"},
    "statistic": {"mode", "probability", "every", "packet"},
    "recent": {"name", "set", "rcheck", "update", "remove", "seconds", "reap", "hitcount",
               "rttl", "mask", "rsource", "rdest"},
    "mark": {"mark"},
    "conntrack": {"ctstate"},
    "state": {"state"},
    "set": {"match-set"},
    "multiport": {"dports", "sports", "ports"},
    "physdev": {"physdev-in", "physdev-out", "physdev-is-in", "physdev-is-out", "physdev-is-bridged"},
    "nfacct": {"nfacct-name"},
    "limit": {"limit", "limit-burst"},
}


class DumpError(ValueError):
    """The text is not iptables-save/restore text (raised only when parsing strictly)."""


@dataclass(frozen=True)
class Option:
    """One ``[!] --name [values...]`` of a match or target."""

    name: str
    values: tuple[str, ...] = ()
    negated: bool = False

    @property
    def value(self) -> str | None:
        return self.values[0] if self.values else None


@dataclass(frozen=True)
class Match:
    """A ``-m MODULE`` group of options; module "" holds the basic -s/-d/-p/-i/-o/-f matches."""

    module: str
    options: tuple[Option, ...]

    def get(self, name: str) -> Option | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None


class _Parts(NamedTuple):
    matches: tuple[Match, ...]
    target: str | None
    target_options: tuple[Option, ...]
    goto: bool
    unknown: tuple[str, ...]


class Rule:
    """One rule: its chain, exact spec text, matches, target (``-j``/``-g``) and target options.

    The spec is tokenized when the rule is read (so bad quoting is reported with its line) but
    split into matches only when first asked: a trace walks a few chains of a dump that may
    hold 200k rules."""

    __slots__ = ("chain", "spec", "counters", "line", "_tokens", "_parts")

    def __init__(self, chain: str, spec: str, counters: tuple[int, int] | None = None, line: int = 0):
        self.chain = chain
        self.spec = spec.strip()
        self.counters = counters
        self.line = line
        self._tokens = tokenize(self.spec)
        self._parts: _Parts | None = None
        if counters is None and ("-c" in self._tokens or "--set-counters" in self._tokens):
            k = max(i for i, t in enumerate(self._tokens) if t in ("-c", "--set-counters"))
            pb = self._tokens[k + 1:k + 3]
            if len(pb) == 2 and all(v.isdigit() for v in pb):
                self.counters = (int(pb[0]), int(pb[1]))

    def __repr__(self) -> str:
        return f"Rule({self.raw!r})"

    def _split(self) -> _Parts:
        if self._parts is None:
            self._parts = _split_tokens(self._tokens)
        return self._parts

    matches = property(lambda self: self._split().matches)
    target_options = property(lambda self: self._split().target_options)
    goto = property(lambda self: self._split().goto)
    unknown = property(lambda self: self._split().unknown)

    target = property(lambda self: self._split().target)

    @property
    def raw(self) -> str:
        return f"-A {self.chain} {self.spec}".rstrip()

    def option(self, name: str, module: str | None = None) -> Option | None:
        """The first match option called ``name`` (optionally only inside ``module``)."""
        for m in self.matches:
            if module is not None and m.module != module:
                continue
            opt = m.get(name)
            if opt is not None:
                return opt
        return None

    def target_option(self, name: str) -> Option | None:
        for opt in self.target_options:
            if opt.name == name:
                return opt
        return None

    @property
    def comment(self) -> str | None:
        opt = self.option("comment", "comment")
        return opt.value if opt else None


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


def _option_name(token: str) -> str | None:
    if token.startswith("--") and len(token) > 2:
        name = token[2:]
    elif token.startswith("-") and len(token) == 2 and token[1].isalpha():
        name = token[1:]
    else:
        return None
    return _ALIASES.get(name, name)


# iptables-save quotes a whole token in double quotes, escaping " and \ with a backslash.
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"(?=\s|$)|([^\s"\']+)(?=\s|$)|(\S)')
_UNESCAPE = re.compile(r"\\(.)")


def tokenize(spec: str) -> list[str]:
    """Split a rule spec like iptables-restore does; ValueError for unbalanced quotes.

    A regex for the two token shapes iptables-save writes (bare, or wholly double-quoted);
    anything else (quotes inside a token, single quotes) falls back to shlex. 10x faster than
    shlex alone, which matters for `netemu trace --live` on a node with 10k Services."""
    tokens: list[str] = []
    for quoted, bare, other in _TOKEN.findall(spec):
        if other:
            return shlex.split(spec, posix=True)
        tokens.append(bare if bare else _UNESCAPE.sub(r"\1", quoted))
    return tokens


def parse_rule(chain: str, spec: str, line: int = 0, counters: tuple[int, int] | None = None) -> Rule:
    """One rule spec (the text after ``-A CHAIN``) as a Rule.

    Raises ValueError only for text that cannot be tokenized (unbalanced quotes)."""
    return Rule(chain, spec, counters, line)


def _split_tokens(tokens: list[str]) -> _Parts:
    """Tokens -> matches grouped by -m module, the target and its options, and what is unknown."""
    groups: list[tuple[str, list[Option]]] = [("", [])]
    target: str | None = None
    target_opts: list[Option] = []
    goto = False
    unknown: list[str] = []
    negate = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok == "!":
            negate = True
            continue
        name = _option_name(tok)
        if name is None:
            unknown.append(f"stray token {tok!r}")
            negate = False
            continue
        arity = _ARITY.get(name)
        if arity is None:
            j = i
            while j < len(tokens) and tokens[j] != "!" and _option_name(tokens[j]) is None:
                j += 1
            values = tokens[i:j]
            i = j
        else:
            values = tokens[i:i + arity]
            i += arity
        opt = Option(name, tuple(values), negate)
        negate = False
        if target is not None:                      # everything after -j/-g is a target option
            target_opts.append(opt)
        elif name == "m":
            groups.append((opt.value or "", []))
        elif name in ("j", "g"):
            target, goto = opt.value, name == "g"
        elif name in _BASIC:
            groups[0][1].append(opt)
        elif name != "c":                           # -c P B: counters, read by Rule()
            groups[-1][1].append(opt)
    matches = tuple(Match(mod, tuple(opts)) for mod, opts in groups if mod or opts)
    for m in matches:
        known = KNOWN_MODULES.get(m.module)
        if known is None:
            unknown.append(f"match module {m.module!r}")
            continue
        for o in m.options:
            if o.name not in known:
                unknown.append(f"option --{o.name} of -m {m.module or '(basic)'}")
    return _Parts(matches, target, tuple(target_opts), goto, tuple(unknown))


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
    cmd = _option_name(parts[0]) if parts else None
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
