"""Match evaluation for the packet tracer (trace.py): does rule R match the first packet of a
connection, and with what probability?

Split from the walk itself so each file holds one idea: trace.py follows chains, jumps and
targets; this module answers matches (addresses, protocols, ports, addrtype LOCAL, marks,
conntrack state, statistic, recent, ipsets). ``MatchEvaluator`` is mixed into the tracer's run,
which provides ``packet``, ``proto``, ``ipsets``, ``is_local()`` and the lists it reports into
(``unevaluated``, ``notes``, ``affinity``). What cannot be evaluated answers None and is reported,
never guessed.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from netemu.agent.proxy.xtables.rule import Rule
from netemu.agent.proxy.tracing import PROTO_NUMBERS, Packet


@dataclass(frozen=True)
class State:
    """The packet as one branch of the walk sees it (trace.py walks, this module matches it);
    immutable so branches can share history."""

    prob: float
    src: str
    dst: str
    dport: int
    mark: int = 0
    dnat: str | None = None
    sep: str | None = None
    snat: bool = False
    verdict_by: str | None = None
    chains: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()


class MatchEvaluator:
    """The match half of a trace run (see the module docstring for what the host provides)."""

    packet: Packet
    proto: str
    ipsets: dict
    affinity: str | None
    unevaluated: list[str]
    notes: list[str]

    def is_local(self, ip: str) -> bool:
        raise NotImplementedError

    def match(self, table: str, chain: str, rule: Rule, s: State) -> tuple[float, State]:
        """Probability that ``rule`` matches (0, 1, or a statistic's p) and the state after it."""
        prob = 1.0
        recent = []
        for m in rule.matches:
            if m.module == "recent":
                recent.append(m)
                continue
            for opt in m.options:
                p = self.option(table, chain, rule, m.module, opt, s)
                if p <= 0.0:
                    return 0.0, s
                prob *= p
        for m in recent:                 # only reached when everything else matched
            p = self.recent(m, s)
            if p <= 0.0:
                return 0.0, s
            prob *= p
        return prob, s

    def recent(self, m, s: State) -> float:
        name = m.get("name").value if m.get("name") else "DEFAULT"
        if m.get("set"):
            return 0.0 if m.get("set").negated else 1.0
        check = m.get("rcheck") or m.get("update")
        if check:
            secs = m.get("seconds")
            if self.affinity is None:
                self.affinity = ("affinity: first connection goes as below, later ones stick to the "
                                 f"endpoint chosen (-m recent --name {name}"
                                 + (f", {secs.value} s" if secs else "") + ")")
            return 1.0 if check.negated else 0.0   # a first connection has no entry yet
        if m.get("remove"):
            return 1.0 if m.get("remove").negated else 0.0
        return 1.0

    def option(self, table, chain, rule: Rule, module: str, opt, s: State) -> float:
        try:
            ok = self._option(module, opt, s)
        except (ValueError, IndexError, TypeError, ArithmeticError):     # a malformed value: report, never crash
            ok = None
        if ok is None:
            dash = "-" if len(opt.name) == 1 else "--"
            hint = " (give the input interface)" if opt.name == "i" else ""
            self.unevaluated.append(f"{table} {chain}: cannot evaluate "
                                    f"{'! ' if opt.negated else ''}{dash}{opt.name} {' '.join(opt.values)}"
                                    f"{' (-m ' + module + ')' if module else ''}{hint}: assumed no "
                                    f"match in: {rule.raw}")
            return 0.0
        if isinstance(ok, float):
            return 1.0 - ok if opt.negated else ok
        return 1.0 if ok != opt.negated else 0.0

    def _option(self, module: str, opt, s: State):
        """True/False, a probability (float), or None when it cannot be evaluated."""
        n, v = opt.name, opt.value
        if module == "":
            if n in ("s", "d"):
                return _in_net(s.src if n == "s" else s.dst, v)
            if n == "p":
                return _proto_matches(v, self.proto)
            if n in ("i", "o"):
                iface = self.packet.iif if n == "i" else self.packet.oif
                return None if iface is None else _iface_matches(v, iface)
            if n == "f":
                return False
        if module in ("tcp", "udp", "sctp", "udplite", "multiport"):
            if n in ("dport", "dports"):
                return _port_in(s.dport, v)
            if n in ("sport", "sports"):
                return _port_in(self.packet.sport, v)
            if n == "ports":
                return _port_in(s.dport, v) or _port_in(self.packet.sport, v)
            if n == "syn":
                return self.proto == "tcp"
            if n == "tcp-flags" and len(opt.values) == 2:
                mask, comp = (_tcp_flags(x) for x in opt.values)
                return ({"SYN"} & mask) == comp      # the first packet carries SYN alone
        if module in ("comment", "nfacct", "limit"):
            return True
        if module == "addrtype" and n in ("src-type", "dst-type"):
            types = set(v.split(","))
            local = self.is_local(s.src if n == "src-type" else s.dst)
            if types <= {"LOCAL"}:
                return local
            if types <= {"LOCAL", "UNICAST"}:
                return True if local or "UNICAST" in types else local
            return None
        if module == "addrtype":
            return True if n.startswith("limit-iface") else None
        if module == "statistic":
            if n == "probability":
                p = float(v)
                return p if 0.0 <= p <= 1.0 else None
            if n == "every":
                self.notes.append("-m statistic --mode nth: the packet counter is unknown; "
                                  f"treated as probability 1/{v}")
                return 1.0 / float(v)
            return True                  # --mode / --packet ride along with the above
        if module == "mark" and n == "mark":
            value, mask = mark_mask(v)
            return (s.mark & mask) == value
        if (module, n) in (("conntrack", "ctstate"), ("state", "state")):
            states = {"NEW"} | ({"DNAT"} if s.dnat else set()) | ({"SNAT"} if s.snat else set())
            return bool(states & set(v.split(",")))
        if module == "set" and n == "match-set":
            return self._ipset(opt, s)
        return None

    def _ipset(self, opt, s: State):
        """``-m set --match-set NAME dst[,dst[,src]]``: members as ``ipset save`` spells them -- an
        address or CIDR, a port (bitmap:port), or several dimensions ("10.96.0.1,tcp:80",
        "1.2.3.4,tcp:80,10.0.0.0/8"), each compared with the packet's src or dst as the flags say."""
        name, dirs = opt.values[0], opt.values[1].split(",")
        members = self.ipsets.get(name)
        if members is None:
            return None
        values = {"src": (s.src, self.packet.sport), "dst": (s.dst, s.dport)}
        return any(_member_matches(m.split(","), dirs, values, self.proto) for m in members)


def _member_matches(parts: list[str], dirs: list[str], values: dict, proto: str) -> bool:
    if len(parts) != len(dirs):
        return False
    for part, direction in zip(parts, dirs):
        ip, port = values[direction]
        if ":" in part and part.split(":", 1)[0] in PROTO_NUMBERS:         # "tcp:80"
            p, _, number = part.partition(":")
            if p != proto or not number.isdigit() or int(number) != port:
                return False
        elif part.isdigit():                                               # a bitmap:port member
            if int(part) != port:
                return False
        elif not _in_net(ip, part):
            return False
    return True


@functools.lru_cache(maxsize=65536)
def _network(net: str):
    """Parsed once per distinct -s/-d value: a 10k-Service KUBE-SERVICES repeats few of them."""
    try:
        return ipaddress.ip_network(net.strip(), strict=False)
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def address(ip: str):
    return ipaddress.ip_address(ip)


def _in_net(ip: str, net: str) -> bool:
    network = _network(net)
    if network is None:
        return False
    addr = address(ip)
    return addr.version == network.version and addr in network


def _proto_matches(value: str, proto: str) -> bool:
    value = value.lower()
    return value in ("all", "0", proto) or value == str(PROTO_NUMBERS.get(proto))


def _iface_matches(pattern: str, iface: str) -> bool:
    return iface.startswith(pattern[:-1]) if pattern.endswith("+") else iface == pattern


def _port_in(port: int, spec: str) -> bool:
    for part in spec.split(","):
        lo, colon, hi = part.partition(":")
        if colon and int(lo or 0) <= port <= int(hi or 65535):
            return True
        if not colon and port == int(lo):
            return True
    return False


_ALL_FLAGS = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}


def _tcp_flags(spec: str) -> set[str]:
    flags = set(spec.upper().split(","))
    return _ALL_FLAGS if "ALL" in flags else flags - {"NONE"}


def mark_mask(v: str) -> tuple[int, int]:
    value, _, mask = v.partition("/")
    return int(value, 0), int(mask, 0) if mask else 0xFFFFFFFF
