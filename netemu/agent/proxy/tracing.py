"""What every mode's packet tracer answers, in one shape: a packet in, outcomes with their
probabilities out, as text for people and JSON for scripts.

A mode's tracer (iptables/trace.py walks restore/save text; an nftables tracer would walk a
ruleset, an IPVS one the virtual servers) differs in how it walks the kernel's state, not in
the question or the answer, so ``netemu trace`` prints every mode's result the same way and
the tests of one mode's tracer read like another's. Pure: no kernel, no root.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "udplite": 136}


class TraceError(ValueError):
    """Bad trace input (an address or protocol that is not one): a clear message for the user."""


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    dport: int
    proto: str = "tcp"
    sport: int = 40000
    iif: str | None = None
    oif: str | None = None


@dataclass
class Outcome:
    """One way the packet can go, with the probability of going that way."""

    probability: float
    verdict: str                    # ACCEPT (delivered or forwarded), DROP or REJECT
    destination: str | None         # "ip:port" after DNAT, None when not DNATed
    endpoint_chain: str | None      # what chose the endpoint (iptables: the KUBE-SEP-... chain)
    masquerade: bool                # SNAT/MASQUERADE happened on the way out
    masquerade_mark: bool           # the masquerade mark was set when the nat hook finished
    route: str                      # "local" (INPUT) or "forward" (FORWARD), or "output"
    verdict_by: str | None          # the rule that gave a DROP/REJECT/explicit ACCEPT
    chains: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)


@dataclass
class TraceResult:
    packet: Packet
    origin: str
    hook: str
    node_ips: list[str]
    outcomes: list[Outcome]
    affinity: str | None = None
    unevaluated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def endpoints(self) -> dict[str, float]:
        """DNAT destination -> probability, for the outcomes that are not dropped."""
        out: dict[str, float] = {}
        for o in self.outcomes:
            if o.destination and o.verdict == "ACCEPT":
                out[o.destination] = out.get(o.destination, 0.0) + o.probability
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def render(self) -> str:
        return render(self)


def check_packet(packet: Packet, node_ips) -> None:
    """TraceError for a packet no kernel would see: bad addresses, protocol or ports."""
    for label, ip in [("source", packet.src), ("destination", packet.dst)] + [("node IP", n) for n in node_ips]:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise TraceError(f"{label} {ip!r} is not an IP address") from None
    if packet.proto.lower() not in PROTO_NUMBERS:
        raise TraceError(f"protocol {packet.proto!r} is not one of tcp, udp, sctp")
    for label, port in (("destination port", packet.dport), ("source port", packet.sport)):
        if not 0 <= int(port) <= 65535:
            raise TraceError(f"{label} {port} is out of range 0-65535")


def join_hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def split_hostport(value: str, default_port: int) -> tuple[str, int]:
    """A DNAT target ``ip[-ip][:port[-port]]`` or ``[v6]:port`` -> (ip, port); a range answers
    with its first address and port, a missing port keeps ``default_port`` (ValueError for a
    port that is not a number)."""
    if value.startswith("["):
        host, _, port = value[1:].partition("]:")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    host = host.split("-")[0]
    port = port.split("-")[0]
    return host, int(port) if port else default_port


def merge(outcomes: list[Outcome]) -> list[Outcome]:
    """Outcomes that went the same way (verdict, destination, masquerade, route, chains) as one."""
    merged: dict[tuple, Outcome] = {}
    for o in outcomes:
        key = (o.verdict, o.destination, o.masquerade, o.route, tuple(o.chains))
        if key in merged:
            merged[key].probability += o.probability
        else:
            merged[key] = o
    return list(merged.values())


def render(result: TraceResult) -> str:
    """Human-readable answer: one block per outcome, most likely first."""
    p = result.packet
    head = (f"{p.proto.lower()} {p.src}:{p.sport} -> {join_hostport(p.dst, p.dport)}   "
            f"from {result.origin} (enters nat {result.hook})"
            + (f", node IPs {', '.join(result.node_ips)}" if result.node_ips else ""))
    lines = [head]
    if result.affinity:
        lines.append(result.affinity)
    if not result.outcomes:
        lines.append("  (no outcome: the trace was cut short)")
    for o in sorted(result.outcomes, key=lambda o: -round(o.probability, 9)):
        what = f"DNAT -> {o.destination}" if o.destination else "no DNAT"
        verdict = o.verdict if o.verdict != "ACCEPT" else ("delivered locally" if o.route == "local"
                                                           else "accepted")
        masq = "yes" if o.masquerade else ("marked, not reached" if o.masquerade_mark else "no")
        lines.append(f"  {o.probability * 100:6.2f}%  {what:<28} {verdict:<18} masquerade: {masq}")
        lines.append("           " + " -> ".join(o.chains))
        if o.verdict_by and o.verdict != "ACCEPT":
            lines.append(f"           {o.verdict} by {o.verdict_by}")
    for u in result.unevaluated:
        lines.append(f"cannot evaluate: {u}")
    for n in result.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines) + "\n"
