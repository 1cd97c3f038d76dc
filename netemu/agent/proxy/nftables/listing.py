"""Reading a node's table back: ``nft list table ip kube-proxy`` output into a Table, and the
comparison of two tables whatever form each came in.

nft prints a table nested (``table ip kube-proxy { chain X { ... } }``) and in its own spelling
of some statements: ``meta mark & 0x00004000 == 0x00000000`` for upstream's ``mark and 0x4000
== 0``, ``dstnat - 10`` for ``-110``, ``3h`` for ``10800s``, a one-element anonymous set without
braces. ``parse_any`` accepts both that listing and our ``add ...`` form; ``canonical_rule``
rewrites our spelling into nft's, so ``netemu proxy render --mode nftables`` can be compared with
a live node line by line (``compare``) and the tracer reads either.
"""

from __future__ import annotations

import re

from .table import Chain, NftError, NftSet, Table, _base_spec, parse_dump, parse_elements, split_comment

_DURATION = re.compile(r"(\d+)(d|h|m|s|ms)")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def parse_any(text: str) -> Table:
    """A Table from ``add ...`` lines or from ``nft list table`` / ``nft list ruleset`` output
    (the first kube-proxy table found, else the first table)."""
    stripped = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    if stripped and stripped[0].startswith("table "):
        return parse_listing(text)
    if not stripped:
        raise NftError("empty input: no table")
    return parse_dump(text)


def parse_listing(text: str) -> Table:
    """``nft list table`` output -> Table (rules kept in nft's spelling)."""
    tables = _blocks(text)
    if not tables:
        raise NftError("no table in the listing")
    pick = next((t for t in tables if t[0].split()[2:3] == ["kube-proxy"]), tables[0])
    words = pick[0].split()
    if len(words) < 3:
        raise NftError(f"bad table header {pick[0]!r}")
    table = Table(words[1], words[2])
    for line in pick[1]:
        if isinstance(line, tuple):
            _object(table, line)
        elif line.startswith("comment "):
            table.comment = line[len("comment "):].strip('"')
    return table


def _blocks(text: str) -> list:
    """Nested ``header { body }`` blocks as (header, [lines or sub-blocks])."""
    stack: list = [("", [])]
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if pending:                       # an element list continues over several lines
            pending += " " + line
            if pending.count("{") == pending.count("}"):
                stack[-1][1].append(pending)
                pending = ""
            continue
        if line.endswith("{") and not line.startswith("elements"):
            block = (line[:-1].strip(), [])
            stack[-1][1].append(block)
            stack.append(block)
        elif line == "}":
            if len(stack) == 1:
                raise NftError("unbalanced } in the listing")
            stack.pop()
        elif line.count("{") > line.count("}"):
            pending = line
        else:
            stack[-1][1].append(line)
    return [b for b in stack[0][1] if isinstance(b, tuple) and b[0].startswith("table ")]


def _object(table: Table, block: tuple) -> None:
    header, body = block
    kind, _, name = header.partition(" ")
    if kind == "chain":
        chain = table.chains[name] = Chain(name)
        for line in body:
            if isinstance(line, tuple):
                continue
            if line.startswith("type ") and " hook " in line:
                spec = line.split(";")[0][len("type "):]
                chain.type, chain.hook, chain.priority = _base_spec(spec)
            elif line.startswith("comment "):
                chain.comment = line[len("comment "):].strip('"')
            elif not line.startswith("policy "):
                chain.rules.append(split_comment(line))
    elif kind in ("set", "map"):
        nset = table.sets[name] = NftSet(name, kind)
        for line in body:
            if isinstance(line, tuple):
                continue
            word, _, value = line.partition(" ")
            if word == "type":
                nset.type = value.strip()
            elif word == "flags":
                nset.flags = tuple(f.strip() for f in value.split(","))
            elif word == "timeout":
                nset.timeout = f"{seconds(value.strip())}s"
            elif word == "comment":
                nset.comment = value.strip().strip('"')
            elif word == "elements":
                for el in parse_elements(value.partition("=")[2]):
                    nset.elements[el.key] = el


def seconds(duration: str) -> int:
    """``3h``, ``1d2h``, ``10800s`` or ``10800`` -> whole seconds."""
    if duration.isdigit():
        return int(duration)
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise NftError(f"bad duration {duration!r}")
    return int(sum(int(n) * _UNITS[u] for n, u in parts))


# ---- our spelling -> nft's ----------------------------------------------------------------

def _mark(value: str) -> str:
    return f"0x{int(value, 0):08x}"


_CANON = (
    (re.compile(r"^mark set mark or (\S+)"), lambda m: f"meta mark set meta mark | {_mark(m.group(1))}"),
    (re.compile(r"^mark set mark xor (\S+)"), lambda m: f"meta mark set meta mark ^ {_mark(m.group(1))}"),
    (re.compile(r"^mark and (\S+) == (\S+)"),
     lambda m: f"meta mark & {_mark(m.group(1))} == {_mark(m.group(2))}"),
    (re.compile(r"^mark and (\S+) != (\S+)"),
     lambda m: f"meta mark & {_mark(m.group(1))} != {_mark(m.group(2))}"),
)


def canonical_rule(rule: str) -> str:
    """A rule in nft's listing spelling (ours or already nft's; idempotent)."""
    rule = re.sub(r"\s+", " ", rule.strip())
    for pattern, repl in _CANON:
        rule = pattern.sub(repl, rule)
    rule = rule.replace(" , ", ", ")
    # a one-element anonymous set in a comparison is printed without braces
    rule = re.sub(r"(\b(?:daddr|saddr)(?: !=)?) \{ ([^,{}]+) \}", r"\1 \2", rule)
    return rule


def canonical_lines(table: Table) -> list[str]:
    """The table as sorted one-object lines in one spelling, for comparisons."""
    out = [f"table {table.family} {table.name}"]
    for c in table.chains.values():
        base = f" {c.type} hook {c.hook} priority {c.priority}" if c.hook else ""
        out.append(f"chain {c.name}{base}")
        out += [f"rule {c.name} #{i}: {canonical_rule(r)}" + (f' comment "{cm}"' if cm else "")
                for i, (r, cm) in enumerate(c.rules, 1)]
    for s in table.sets.values():
        timeout = f" timeout {seconds(s.timeout.rstrip('s')) if s.timeout else ''}" if s.timeout else ""
        out.append(f"{s.kind} {s.name} type {s.type} flags {','.join(sorted(s.flags))}{timeout}")
        if "dynamic" not in s.flags:       # a dynamic set's entries are traffic, not rules
            out += [f"element {s.name} {' . '.join(e.key)}" + (f" : {' . '.join(e.value)}" if e.value else "")
                    for e in s.elements.values()]
    return sorted(out)


def compare(ours: Table, theirs_text: str) -> list[str]:
    """Differences between our table and a node's (listing or dump), as "-ours"/"+theirs"."""
    try:
        theirs = parse_any(theirs_text)
    except NftError as exc:
        return [f"cannot read the node's table: {exc}"]
    a, b = canonical_lines(ours), canonical_lines(theirs)
    sa, sb = set(a), set(b)
    return [f"-{line}" for line in a if line not in sb] + [f"+{line}" for line in b if line not in sa]
