"""One nftables table in memory: what an ``nft -f`` transaction does to it, and its dump.

kube-proxy's nftables mode keeps all of its state in one table (``ip kube-proxy``): base chains,
regular chains holding rules, sets, verdict maps and their elements. This module is that table as
data, so the same object serves three uses without a kernel:

- ``Table.apply(text)`` runs the lines of an ``nft -f`` transaction (``add``/``flush``/``delete``
  of table, chain, set, map, rule, element) the way the kernel would, all or nothing, with an
  ``NftError`` naming the line the kernel would refuse (deleting what does not exist, a rule in a
  missing chain, an element of a missing map, deleting a chain something still jumps to);
- ``Table.dump()`` prints it back in the one-object-a-line form of upstream's knftables fake
  (``add table ... { comment ... ; }``, ``add chain``, ``add set``/``map``, ``add rule``,
  ``add element``), which upstream's proxier_test.go compares against and which is itself valid
  ``nft -f`` input for an empty kernel;
- the tracer (trace.py) walks its chains; listing.py fills one from ``nft list table`` output.

Why not libnftables' JSON: the text form is what upstream's tests, ``netemu proxy render`` and
users read, and one parser of it keeps the render, the fake kernel and the tracer in agreement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

# patterns compiled at import (in the launcher template), not in each process that first uses them
_COMMENT = re.compile(r'\s*\bcomment\s+"((?:[^"\\]|\\.)*)"\s*$')
_PRIORITY = re.compile(r"([a-z]+)?([+-]?\d+)?")
_DYNAMIC = re.compile(r"\s+(timeout|expires)\s+\S+")
_TARGET = re.compile(r"\b(?:jump|goto)\s+([A-Za-z0-9_./\-]+)")

FAMILIES = ("ip", "ip6", "inet")
_NAME = r"[A-Za-z0-9_./\-]+"
_HEAD = re.compile(rf"^(add|create|flush|delete|insert)\s+(table|chain|set|map|rule|element)\s+(\S+)\s+({_NAME})\s*(.*)$")


class NftError(ValueError):
    """What the kernel (or nft) would refuse, with the offending transaction line."""


@dataclass
class Chain:
    name: str
    type: str | None = None          # filter / nat (base chains only)
    hook: str | None = None
    priority: int | None = None
    comment: str | None = None
    rules: list[tuple[str, str | None]] = field(default_factory=list)   # (rule, comment)

    @property
    def is_base(self) -> bool:
        return self.hook is not None


@dataclass
class Element:
    key: tuple[str, ...]
    value: tuple[str, ...] | None = None
    comment: str | None = None


@dataclass
class NftSet:
    """A named set or map (``kind``), with its elements by key."""

    name: str
    kind: str                         # "set" or "map"
    type: str = ""
    flags: tuple[str, ...] = ()
    timeout: str | None = None
    comment: str | None = None
    elements: dict[tuple[str, ...], Element] = field(default_factory=dict)


@dataclass
class Table:
    family: str = "ip"
    name: str = "kube-proxy"
    comment: str | None = None
    exists: bool = True
    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, NftSet] = field(default_factory=dict)

    # ---- transactions -----------------------------------------------------------------

    def apply(self, text: str) -> int:
        """Run an ``nft -f`` transaction atomically; returns the number of operations.
        On NftError the table is left exactly as it was."""
        work = self.copy()
        ops = 0
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                work._apply_line(line)
            except NftError as exc:
                raise NftError(f"line {n}: {exc}: {line}") from None
            ops += 1
        work._check_references()
        self.__dict__.update(work.__dict__)
        return ops

    def copy(self) -> "Table":
        chains = {k: Chain(c.name, c.type, c.hook, c.priority, c.comment, list(c.rules))
                  for k, c in self.chains.items()}
        sets = {k: NftSet(s.name, s.kind, s.type, s.flags, s.timeout, s.comment, dict(s.elements))
                for k, s in self.sets.items()}
        return Table(self.family, self.name, self.comment, self.exists, chains, sets)

    def _apply_line(self, line: str) -> None:
        m = _HEAD.match(line)
        if m is None:
            raise NftError("not a command of a kube-proxy transaction")
        verb, obj, family, tname, rest = m.groups()
        if obj != "table":
            if tname != self.name or family != self.family:
                raise NftError(f"table {family} {tname} is not {self.family} {self.name}")
            if not self.exists:
                raise NftError(f"no table {family} {tname}")
        getattr(self, f"_{obj}")(verb, family, tname, rest)

    def _table(self, verb: str, family: str, name: str, rest: str) -> None:
        if family not in FAMILIES:
            raise NftError(f"unknown family {family!r}")
        if not self.exists or (family, name) != (self.family, self.name):
            if verb in ("flush", "delete"):
                raise NftError(f"no table {family} {name}")
            self.__dict__.update(Table(family, name).__dict__)
        if verb in ("add", "create"):
            props = _block_props(rest)
            if "comment" in props:
                self.comment = props["comment"]
        elif verb == "flush":
            for c in self.chains.values():
                c.rules.clear()
            for s in self.sets.values():
                s.elements.clear()
        else:
            self.exists = False
            self.chains.clear()
            self.sets.clear()

    def _chain(self, verb: str, _f: str, _t: str, rest: str) -> None:
        name, _, block = rest.partition(" ")
        chain = self.chains.get(name)
        if verb in ("add", "create"):
            props = _block_props(block)
            if chain is None:
                chain = self.chains[name] = Chain(name)
            elif verb == "create":
                raise NftError(f"chain {name} exists")
            if "type" in props:
                kind, hook, prio = _base_spec(props["type"])
                if chain.hook is not None and (chain.type, chain.hook, chain.priority) != (kind, hook, prio):
                    raise NftError(f"chain {name} exists with another type, hook or priority")
                chain.type, chain.hook, chain.priority = kind, hook, prio
            if "comment" in props:
                chain.comment = props["comment"]
            return
        if chain is None:
            raise NftError(f"no chain {name}")
        if verb == "flush":
            chain.rules.clear()
        else:
            del self.chains[name]

    def _rule(self, verb: str, _f: str, _t: str, rest: str) -> None:
        if verb not in ("add", "insert"):
            raise NftError("rules are only added here")
        name, _, body = rest.partition(" ")
        chain = self.chains.get(name)
        if chain is None:
            raise NftError(f"no chain {name}")
        rule, comment = split_comment(body.strip())
        if not rule:
            raise NftError("empty rule")
        if verb == "insert":
            chain.rules.insert(0, (rule, comment))
        else:
            chain.rules.append((rule, comment))

    def _set(self, verb: str, _f: str, _t: str, rest: str, kind: str = "set") -> None:
        name, _, block = rest.partition(" ")
        nset = self.sets.get(name)
        if verb in ("add", "create"):
            props = _block_props(block)
            new = NftSet(name, kind, props.get("type", ""), tuple(f for f in props.get("flags", "").split(",") if f),
                         props.get("timeout"), props.get("comment"))
            if nset is None:
                self.sets[name] = new
            elif verb == "create" or nset.kind != kind or (new.type and new.type != nset.type) \
                    or (new.flags and new.flags != nset.flags):
                raise NftError(f"{kind} {name} exists with other properties")
            return
        if nset is None or nset.kind != kind:
            raise NftError(f"no {kind} {name}")
        if verb == "flush":
            nset.elements.clear()
        else:
            del self.sets[name]

    def _map(self, verb: str, f: str, t: str, rest: str) -> None:
        self._set(verb, f, t, rest, "map")

    def _element(self, verb: str, _f: str, _t: str, rest: str) -> None:
        name, _, block = rest.partition(" ")
        nset = self.sets.get(name)
        if nset is None:
            raise NftError(f"no set or map {name}")
        for element in parse_elements(block):
            if verb in ("add", "create"):
                if verb == "create" and element.key in nset.elements:
                    raise NftError(f"element exists in {name}")
                if nset.kind == "map" and element.value is None:
                    raise NftError(f"map {name} element without a value")
                nset.elements[element.key] = element
            elif verb == "delete":
                if element.key not in nset.elements:
                    raise NftError(f"no such element in {name}")
                del nset.elements[element.key]
            else:
                raise NftError(f"cannot {verb} an element")

    def _check_references(self) -> None:
        """After the transaction, every jump/goto target must exist (the kernel checks too)."""
        for chain in self.chains.values():
            for rule, _ in chain.rules:
                for target in _targets(rule):
                    if target not in self.chains:
                        raise NftError(f"rule in {chain.name} jumps to missing chain {target}")
        for nset in self.sets.values():
            for el in nset.elements.values():
                for target in _targets(" ".join(el.value or ())):
                    if target not in self.chains:
                        raise NftError(f"element of {nset.name} jumps to missing chain {target}")

    # ---- the dump ---------------------------------------------------------------------

    def dump(self) -> str:
        """Upstream knftables fake's Dump() form: table, chains, sets/maps, rules, elements."""
        if not self.exists:
            return ""
        fam, t = self.family, self.name
        out = [table_line(fam, t, self.comment)]
        for name in sorted(self.chains):
            out.append(chain_line(fam, t, self.chains[name]))
        for name in sorted(self.sets):
            out.append(set_line(fam, t, self.sets[name]))
        for name in sorted(self.chains):
            out.extend(rule_line(fam, t, name, r, c) for r, c in self.chains[name].rules)
        for name in sorted(self.sets):
            for el in self.sets[name].elements.values():
                out.append(element_line(fam, t, name, el))
        return "\n".join(out) + "\n"

    def service_chains(self) -> set[str]:
        return {c for c in self.chains if is_service_chain(c)}


# ---- one line of each kind (shared by the builder, the fake kernel and dump) ---------------

def quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def table_line(family: str, table: str, comment: str | None) -> str:
    return f"add table {family} {table}" + (f" {{ comment {quote(comment)} ; }}" if comment else "")


def chain_line(family: str, table: str, chain: Chain) -> str:
    props = []
    if chain.hook is not None:
        props.append(f"type {chain.type} hook {chain.hook} priority {chain.priority} ;")
    if chain.comment:
        props.append(f"comment {quote(chain.comment)} ;")
    return f"add chain {family} {table} {chain.name}" + (" { " + " ".join(props) + " }" if props else "")


def set_line(family: str, table: str, nset: NftSet) -> str:
    props = [f"type {nset.type} ;"]
    if nset.flags:
        props.append(f"flags {','.join(nset.flags)} ;")
    if nset.timeout:
        props.append(f"timeout {nset.timeout} ;")
    if nset.comment:
        props.append(f"comment {quote(nset.comment)} ;")
    return f"add {nset.kind} {family} {table} {nset.name} {{ {' '.join(props)} }}"


def rule_line(family: str, table: str, chain: str, rule: str, comment: str | None = None) -> str:
    return f"add rule {family} {table} {chain} {rule}" + (f" comment {quote(comment)}" if comment else "")


def element_text(el: Element) -> str:
    text = " . ".join(el.key)
    if el.comment:
        text += f" comment {quote(el.comment)}"
    if el.value is not None:
        text += " : " + " . ".join(el.value)
    return text


def element_line(family: str, table: str, container: str, el: Element, verb: str = "add") -> str:
    if verb == "delete":
        return f"delete element {family} {table} {container} {{ {' . '.join(el.key)} }}"
    return f"{verb} element {family} {table} {container} {{ {element_text(el)} }}"


# ---- parsing pieces ----------------------------------------------------------------------

def is_service_chain(name: str) -> bool:
    """Upstream isServiceChainName: only per-service/endpoint chains have a "/" in their name."""
    return "/" in name


def split_comment(rule: str) -> tuple[str, str | None]:
    """``RULE comment "TEXT"`` -> (RULE, TEXT); comments can only end a rule."""
    m = _COMMENT.search(rule)
    if m is None:
        return rule, None
    return rule[:m.start()].rstrip(), m.group(1).replace('\\"', '"')


def _block_props(block: str) -> dict[str, str]:
    """``{ type filter hook input priority -110 ; comment "x" ; }`` -> {"type": "...", ...}."""
    block = block.strip()
    if not block:
        return {}
    if not (block.startswith("{") and block.endswith("}")):
        raise NftError(f"expected {{ ... }}, not {block!r}")
    props: dict[str, str] = {}
    for part in _split_top(block[1:-1], ";"):
        part = part.strip()
        if not part:
            continue
        word, _, value = part.partition(" ")
        value = value.strip()
        if word == "comment":
            value = value.strip('"')
        elif word == "policy":
            continue
        props[word] = value
    return props


def _base_spec(value: str) -> tuple[str, str, int]:
    """``filter hook prerouting priority -110`` -> ("filter", "prerouting", -110)."""
    words = value.split()
    try:
        kind, hook = words[0], words[words.index("hook") + 1]
        prio = " ".join(words[words.index("priority") + 1:])
    except (ValueError, IndexError):
        raise NftError(f"bad base chain spec {value!r}") from None
    return kind, hook, priority_number(prio)


# nft's named priorities (ip/ip6/inet families), for dumps that print names
_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}


def priority_number(text: str) -> int:
    """``-110``, ``dstnat``, ``dstnat - 10`` or ``dstnat-10`` -> an int."""
    t = text.replace(" ", "")
    m = _PRIORITY.fullmatch(t)
    if not t or m is None or (m.group(1) and m.group(1) not in _PRIORITIES):
        raise NftError(f"bad priority {text!r}")
    return _PRIORITIES.get(m.group(1) or "", 0) + int(m.group(2) or 0)


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside braces and quotes."""
    out, depth, quoted, cur = [], 0, False, []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "{":
            depth += 1
        elif not quoted and ch == "}":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def parse_elements(block: str) -> list[Element]:
    """``{ k1 . k2 [comment "c"] [: v], ... }`` -> Elements (keys and values split on " . ")."""
    block = block.strip()
    if not (block.startswith("{") and block.endswith("}")):
        raise NftError(f"expected {{ elements }}, not {block!r}")
    out = []
    for part in _split_top(block[1:-1], ","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = _partition_top(part, " : ")
        key, comment = split_comment(key.strip())
        key = _DYNAMIC.sub("", key)      # a listing's dynamic entries
        out.append(Element(tuple(k.strip() for k in key.split(" . ")),
                           tuple(v.strip() for v in value.split(" . ")) if sep else None, comment))
    return out


def _partition_top(text: str, sep: str) -> tuple[str, str, str]:
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif not quoted and text.startswith(sep, i):
            return text[:i], sep, text[i + len(sep):]
    return text, "", ""


def _targets(text: str) -> Iterable[str]:
    return _TARGET.findall(text)


def parse_dump(text: str, family: str = "ip", name: str = "kube-proxy") -> Table:
    """A Table from ``add ...`` lines (our render, a transaction, a knftables dump)."""
    table = Table(family, name, exists=False)
    for line in text.splitlines():
        m = _HEAD.match(line.strip())
        if m and m.group(2) == "table":
            table = Table(m.group(3), m.group(4), exists=False)
            break
    table.apply(text)
    return table
