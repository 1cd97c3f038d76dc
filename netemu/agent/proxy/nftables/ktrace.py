"""The nftables mode's kernel tracer: one real packet, followed by the kernel's own nftrace.

How: a table of our own (``ip netemu-trace``) with one chain at priority -350 (before conntrack
and every kube-proxy chain) in prerouting, or output for a packet the node sends itself, whose
one rule matches exactly the packet's addresses and port (TCP: the SYN only) and sets ``meta
nftrace``; the flag rides with the packet through every table, and ``nft monitor trace`` in the
node's namespace prints each rule it hits. The caller sends the packet (``send``) while the
monitor runs; the table and the monitor are removed whatever happens.

``parse_monitor`` is pure: monitor lines in, a KernelPath out -- the kube-proxy table's chains
in first-visit order (jump and goto targets included, as the offline tracer lists them), the
DNAT destination the kernel chose (the packet's address after nat), the last verdict.
"""

from __future__ import annotations

import re
import subprocess
from typing import Callable

from netemu.agent.proxy.kernel_trace import KernelPath, watch
from netemu.agent.proxy.tracing import Packet, TraceError

from .builder import TABLE

TRACE_TABLE = "netemu-trace"
_LINE = re.compile(r"^trace id (?P<id>\S+) (?P<family>ip6?|inet) (?P<table>\S+) (?P<chain>\S+) (?P<rest>.*)$")
_VERDICT = re.compile(r"\(verdict (?P<verdict>[a-z]+)(?: (?P<target>\S+))?\)\s*$")
_FIELD = re.compile(r"\b(ip6? saddr|ip6? daddr|tcp sport|tcp dport|udp sport|udp dport|sctp sport|sctp dport) (\S+)")


def trace_table(packet: Packet, origin: str, family: str = "ip") -> str:
    """``nft -f`` input creating the table whose rule sets nftrace on this packet."""
    hook = "output" if origin == "node" else "prerouting"
    match = f"{family} saddr {packet.src} {family} daddr {packet.dst} {packet.proto} dport {packet.dport}"
    if packet.proto == "tcp":
        match += " tcp flags & (syn | ack) == syn"
    return (f"add table {family} {TRACE_TABLE}\n"
            f"add chain {family} {TRACE_TABLE} trace {{ type filter hook {hook} priority -350 ; }}\n"
            f'add rule {family} {TRACE_TABLE} trace {match} meta nftrace set 1 comment "netemu trace --kernel"\n')


def parse_monitor(text: str) -> KernelPath:
    """The first traced packet's way through kube-proxy's table (see the module docstring)."""
    chains: list[str] = []
    lines: list[str] = []
    destination = verdict = first = original = None
    ours = False
    trace_rules = 0

    def visit(name: str) -> None:
        if name not in chains:
            chains.append(name)

    for raw in text.splitlines():
        m = _LINE.match(raw.strip())
        if m is None:
            continue
        rest = m["rest"]
        if rest.startswith("packet:"):
            fields = dict(_FIELD.findall(rest))
            src = next((v for k, v in fields.items() if k.endswith("saddr")), None)
            sport = next((v for k, v in fields.items() if k.endswith("sport")), None)
            first = first or (src, sport)
            ours = (src, sport) == first
            if ours:
                here = (next((v for k, v in fields.items() if k.endswith("daddr")), None),
                        next((v for k, v in fields.items() if k.endswith("dport")), None))
                original = original or here
                if here != original and here[0]:
                    destination = f"[{here[0]}]:{here[1]}" if ":" in here[0] else f"{here[0]}:{here[1]}"
                lines.append(raw.rstrip())
            continue
        if not ours:
            continue
        if m["table"] == TRACE_TABLE:
            trace_rules += rest.startswith("rule ")
            if trace_rules > 1:          # a second pass through our rule: a retransmission
                break
            lines.append(raw.rstrip())
            continue
        if m["table"] != TABLE:
            continue
        lines.append(raw.rstrip())
        visit(m["chain"])
        v = _VERDICT.search(rest)
        if v is None:
            continue
        if v["verdict"] in ("jump", "goto") and v["target"]:
            visit(v["target"])
        elif v["verdict"] in ("accept", "drop"):
            verdict = v["verdict"].upper()
    return KernelPath(chains, destination, lines, verdict)


def kernel_trace(packet: Packet, *, netns: str, send: Callable[[], None], origin: str = "pod",
                 timeout: float = 3.0, popen=subprocess.Popen, run=subprocess.run, **_options) -> KernelPath:
    """Trace one real packet in ``netns`` (a node's namespace): add the trace table, start
    ``nft monitor trace``, ``send()``, collect, clean up."""
    family = "ip6" if ":" in packet.dst else "ip"
    ns = ["ip", "netns", "exec", netns]
    added = run([*ns, "nft", "-f", "-"], input=trace_table(packet, origin, family), capture_output=True, text=True)
    if added.returncode != 0:
        raise TraceError(f"cannot add the nftrace rule in {netns}: {added.stderr.strip()[:300]}")
    out = watch([*ns, "stdbuf", "-oL", "nft", "monitor", "trace"], send,
                lambda: run([*ns, "nft", "delete", "table", family, TRACE_TABLE], capture_output=True, text=True),
                timeout, popen)
    return parse_monitor(out)
