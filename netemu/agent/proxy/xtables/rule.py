"""One iptables rule spec (what follows ``-A CHAIN`` in save or restore text): its tokens,
matches (``-m MODULE`` groups of options, plus the basic ``-s -d -p -i -o -f``) and target.

Each rule keeps its exact spec text, so a caller can hand it back to iptables verbatim
(``-D CHAIN <spec>``), and is split into matches and target only when first asked. Anything we
do not know is kept and listed in ``Rule.unknown``, never dropped. ``tokenize`` is the one
tokenizer of rule text (iptables-save's quoting), for save/restore lines and ``iptables -S``
output alike; dump.py reads whole texts into tables and chains of these rules.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import NamedTuple

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


def option_name(token: str) -> str | None:
    """An option token's name ("-A" -> "A", "--source" -> "s": long aliases to the short name we
    store); None for a token that is a value."""
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
        name = option_name(tok)
        if name is None:
            unknown.append(f"stray token {tok!r}")
            negate = False
            continue
        arity = _ARITY.get(name)
        if arity is None:
            j = i
            while j < len(tokens) and tokens[j] != "!" and option_name(tokens[j]) is None:
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
