"""One nftables rule against one packet: does it match, with what probability, and what does it
do? The statement half of the nftables tracer (trace.py walks chains and hooks).

A rule is a sequence of statements read left to right (``ip daddr 1.2.3.4 tcp dport 80 ip
saddr != 10.0.0.0/8 jump mark-for-masquerade``): matches narrow the packet down, ``mark set``
changes it, a verdict (``jump``/``goto``/``return``/``accept``/``drop``/``reject``, a verdict
map's element, ``dnat to``, ``masquerade``) ends the rule. Both spellings a table may come in are
read: ours (upstream kube-proxy's transaction text) and nft's listing (``meta mark & 0x00004000
== 0x00000000``). What this module cannot evaluate is reported and assumed not to match, never
guessed. Pure: a Table and a packet in, no kernel.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

from .table import NftSet, Table

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\{[^{}]*\}|\S+')


@dataclass(frozen=True)
class Step:
    """What a rule did: matched with ``prob`` (0 = no match), the new mark, and its verdict
    (None: fell through), or a list of (probability, verdict) branches (numgen)."""

    prob: float
    mark: int
    verdict: str | None = None
    branches: tuple[tuple[float, str], ...] = ()
    unevaluated: str | None = None
    affinity: str | None = None


@functools.lru_cache(maxsize=65536)
def tokens(rule: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(rule))


@functools.lru_cache(maxsize=65536)
def _net(text: str):
    try:
        return ipaddress.ip_network(text.strip().strip(","), strict=False)
    except ValueError:
        return None


def in_any(ip: str, values) -> bool:
    addr = ipaddress.ip_address(ip)
    for v in values:
        n = _net(v)
        if n is not None and n.version == addr.version and addr in n:
            return True
    return False


def brace_items(token: str) -> list[str]:
    return [x.strip() for x in token.strip("{}").split(",") if x.strip()]


def set_lookup(nset: NftSet | None, key: tuple[str, ...]):
    """The element matching ``key`` (addresses may match CIDR/interval keys), or None."""
    if nset is None:
        return None
    hit = nset.elements.get(key)
    if hit is not None:
        return hit
    for el in nset.elements.values():
        if len(el.key) == len(key) and all(a == b or (("/" in a or "-" in a) and _in_key(b, a))
                                           for a, b in zip(el.key, key)):
            return el
    return None


def _in_key(value: str, spec: str) -> bool:
    try:
        if "-" in spec and "/" not in spec:
            lo, hi = (ipaddress.ip_address(x) for x in spec.split("-"))
            return lo <= ipaddress.ip_address(value) <= hi
        return in_any(value, [spec])
    except ValueError:
        return False


class RuleEvaluator:
    """Evaluates rules of ``table`` for a packet (the run provides src, dst, dport, proto, the
    local-address test and the input interface)."""

    def __init__(self, table: Table, is_local, proto: str, iif: str | None):
        self.table = table
        self.is_local = is_local
        self.proto = proto
        self.iif = iif

    def evaluate(self, rule: str, src: str, dst: str, dport: int, mark: int) -> Step:
        toks = tokens(rule)
        i, prob, affinity = 0, 1.0, None
        while i < len(toks):
            t = toks[i]
            rest = toks[i:]
            # ---- verdicts (end the rule) ----
            if t in ("jump", "goto") and len(rest) > 1:
                return Step(prob, mark, f"{t} {rest[1]}", affinity=affinity)
            if t in ("return", "accept", "drop", "continue"):
                return Step(prob, mark, t, affinity=affinity)
            if t == "reject":
                return Step(prob, mark, "reject", affinity=affinity)
            if t == "dnat":
                to = next((x for x in rest[1:] if x not in ("to", "ip", "ip6")), None)
                return Step(prob, mark, f"dnat {to}", affinity=affinity)
            if t in ("masquerade", "snat"):
                return Step(prob, mark, "masquerade", affinity=affinity)
            if t == "numgen" and "vmap" in rest:
                return self._numgen(rest, prob, mark)
            # ---- statements without effect on the walk ----
            if t in ("counter", "nftrace", "notrack"):
                i += 1 + (4 if t == "counter" and len(rest) > 1 and rest[1] == "packets" else 0)
                continue
            if t == "meta" and len(rest) > 3 and rest[1] == "nftrace" and rest[2] == "set":
                i += 4
                continue
            if t == "log":
                i += 1
                while i < len(toks) and toks[i] in ("prefix", "level", "flags", "group") and i + 1 < len(toks):
                    i += 2
                continue
            if t in ("update", "add") and len(rest) > 2 and rest[1].startswith("@"):
                i += 3
                continue
            # ---- matches and mark statements ----
            res = self._match(toks, i, src, dst, dport, mark)
            if res is None:
                return Step(0.0, mark, unevaluated=f"cannot evaluate {' '.join(rest[:4])}...: assumed no match")
            p, i, mark, verdict, note = res
            affinity = affinity or note
            if p <= 0.0:
                return Step(0.0, mark, affinity=affinity)
            prob *= p
            if verdict is not None:
                return Step(prob, mark, verdict, affinity=affinity)
        return Step(prob, mark, None, affinity=affinity)

    def _numgen(self, rest: tuple[str, ...], prob: float, mark: int) -> Step:
        """``numgen random mod N vmap { 0 : goto a, 1 : goto b }``: each entry 1/N."""
        n = int(rest[3])
        table = next(x for x in rest if x.startswith("{"))
        branches = []
        for item in brace_items(table):
            idx, _, verdict = item.partition(":")
            branches.append((prob / n, verdict.strip()))
        return Step(prob, mark, None, tuple(branches))

    def _match(self, toks, i, src, dst, dport, mark):
        """(probability, next index, mark, verdict, affinity note) or None (unknown)."""
        t = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if t in ("ip", "ip6") and nxt in ("daddr", "saddr"):
            # concatenation lookups: ip daddr . meta l4proto . th dport [. ip saddr] (vmap) @x
            if i + 2 < len(toks) and toks[i + 2] == ".":
                return self._concat(toks, i, src, dst, dport, mark)
            return self._addr(toks, i + 2, src if nxt == "saddr" else dst, mark, nxt == "saddr")
        if t == "meta" and nxt == "l4proto":
            if i + 2 < len(toks) and toks[i + 2] == ".":
                return self._concat(toks, i, src, dst, dport, mark)
            value = toks[i + 2]
            ok = (self.proto in brace_items(value)) if value.startswith("{") else value == self.proto
            return (1.0 if ok else 0.0), i + 3, mark, None, None
        if t in ("tcp", "udp", "sctp", "th") and nxt in ("dport", "sport"):
            if t != "th" and t != self.proto:
                return 0.0, i + 3, mark, None, None
            neg = toks[i + 2] == "!="
            value = toks[i + 3 if neg else i + 2]
            ok = _port_match(dport if nxt == "dport" else 40000, value)
            return (1.0 if ok != neg else 0.0), i + (4 if neg else 3), mark, None, None
        if t == "fib" and nxt in ("saddr", "daddr") and toks[i + 2:i + 4] == ("type", "local"):
            ok = self.is_local(src if nxt == "saddr" else dst)
            return (1.0 if ok else 0.0), i + 4, mark, None, None
        if t == "ct" and nxt == "state":
            neg = toks[i + 2] == "!="
            value = toks[i + 3 if neg else i + 2]
            ok = "new" in value.strip("{}").replace(" ", "").split(",")
            return (1.0 if ok != neg else 0.0), i + (4 if neg else 3), mark, None, None
        if t in ("iif", "iifname"):
            neg = nxt == "!="
            value = toks[i + 2 if neg else i + 1].strip('"')
            if self.iif is None:
                return None
            ok = self.iif.startswith(value[:-1]) if value.endswith("*") else self.iif == value
            return (1.0 if ok != neg else 0.0), i + (3 if neg else 2), mark, None, None
        return self._mark(toks, i, mark)

    def _addr(self, toks, i, ip, mark, is_src):
        neg = toks[i] == "!="
        if neg:
            i += 1
        value = toks[i]
        note = None
        if value.startswith("@"):
            nset = self.table.sets.get(value[1:])
            ok = set_lookup(nset, (ip,)) is not None
            if value[1:].startswith("affinity-") and is_src:
                note = (f"affinity: later connections from {ip} stick to the endpoint chosen first "
                        f"(@{value[1:]}" + (f", {nset.timeout}" if nset and nset.timeout else "") + ")")
        elif value.startswith("{"):
            ok = in_any(ip, brace_items(value))
        else:
            ok = in_any(ip, [value])
        return (1.0 if ok != neg else 0.0), i + 1, mark, None, note

    def _concat(self, toks, i, src, dst, dport, mark):
        """``ip daddr . meta l4proto . th dport [. ip saddr]`` then ``vmap @m`` or ``@s``."""
        fields, j = [], i
        while j < len(toks):
            a, b = toks[j], toks[j + 1] if j + 1 < len(toks) else ""
            if a in ("ip", "ip6") and b in ("daddr", "saddr"):
                fields.append(dst if b == "daddr" else src)
            elif (a, b) == ("meta", "l4proto"):
                fields.append(self.proto)
            elif a in ("th", "tcp", "udp", "sctp") and b == "dport":
                fields.append(str(dport))
            else:
                return None
            j += 2
            if j < len(toks) and toks[j] == ".":
                j += 1
                continue
            break
        if j >= len(toks):
            return None
        if toks[j] == "vmap" and j + 1 < len(toks) and toks[j + 1].startswith("@"):
            el = set_lookup(self.table.sets.get(toks[j + 1][1:]), tuple(fields))
            if el is None:
                return 0.0, j + 2, mark, None, None
            return 1.0, j + 2, mark, " ".join(el.value or ()), None
        if toks[j].startswith("@"):
            ok = set_lookup(self.table.sets.get(toks[j][1:]), tuple(fields)) is not None
            return (1.0 if ok else 0.0), j + 1, mark, None, None
        return None

    def _mark(self, toks, i, mark):
        """``mark set mark or X``, ``mark and X == Y`` and nft's ``meta mark ...`` spellings."""
        words, j = [], i                  # the next words without "meta", and where they end
        while j < len(toks) and len(words) < 5:
            if toks[j] != "meta":
                words.append(toks[j])
            j += 1
        ops = {"or": "|", "|": "|", "xor": "^", "^": "^", "and": "&", "&": "&"}
        if len(words) == 5 and words[:3] == ["mark", "set", "mark"] and words[3] in ops:
            value, op = int(words[4], 0), ops[words[3]]
            new = mark | value if op == "|" else (mark ^ value if op == "^" else mark & value)
            return 1.0, j, new & 0xFFFFFFFF, None, None
        if len(words) == 5 and words[0] == "mark" and ops.get(words[1]) == "&" and words[3] in ("==", "!="):
            ok = (mark & int(words[2], 0)) == int(words[4], 0)
            return (1.0 if ok == (words[3] == "==") else 0.0), j, mark, None, None
        if len(words) >= 3 and words[:2] == ["mark", "set"] and words[2] != "mark":
            k = toks.index(words[2], i)
            return 1.0, k + 1, int(words[2], 0) & 0xFFFFFFFF, None, None
        return None


def _port_match(port: int, value: str) -> bool:
    items = brace_items(value) if value.startswith("{") else [value]
    for item in items:
        lo, dash, hi = item.partition("-")
        if not lo.isdigit():
            continue
        if (dash and int(lo) <= port <= int(hi)) or (not dash and port == int(lo)):
            return True
    return False
