"""The iptables mode's kernel tracer: one real packet, followed by the kernel's own TRACE target.

How: a ``-j TRACE`` rule in the raw table (PREROUTING, or OUTPUT for a packet a node sends
itself) matching exactly the packet's protocol, addresses and port (TCP: the SYN only), then
``xtables-monitor --trace`` in the node's namespace prints every rule the packet hits, in every
table, on the nft backend (the legacy backend logs TRACE through nf_log, which a network
namespace does not give back: refused with that reason). The caller sends the packet
(``send``) while the monitor runs; the rule and the monitor are removed whatever happens.

``parse_monitor`` is pure: the monitor's lines in, a KernelPath out (first traced packet only).
"""

from __future__ import annotations

import re
import subprocess
from typing import Callable

from netemu.agent.proxy.kernel_trace import KernelPath, watch
from netemu.agent.proxy.tracing import Packet, TraceError

_PACKET = re.compile(r"^PACKET: \d+ (?P<id>[0-9a-f]+) (?P<rest>.*)$")
_TRACE = re.compile(r"^\s*TRACE: \d+ (?P<id>[0-9a-f]+) (?P<table>[^:]+):(?P<chain>[^:]+):(?P<kind>rule|policy|return)"
                    r"(?::0x[0-9a-f]+(?=:))?(?::(?P<verdict>\S*))?(?P<rule>.*)$")
_FIELD = re.compile(r"\b(SRC|DST|SPORT|DPORT)=(\S+)")


def trace_rule(packet: Packet, origin: str) -> list[str]:
    """The raw-table rule (argv after ``iptables -t raw -I``) that marks this packet for TRACE."""
    chain = "OUTPUT" if origin == "node" else "PREROUTING"
    rule = [chain, "-p", packet.proto, "-s", packet.src, "-d", packet.dst, "--dport", str(packet.dport)]
    if packet.proto == "tcp":
        rule.append("--syn")
    return rule + ["-m", "comment", "--comment", "netemu trace --kernel", "-j", "TRACE"]


def parse_monitor(text: str) -> KernelPath:
    """Chains (``table:chain``, first-visit order, the raw table's own TRACE rule left out), the
    DNAT destination and the last verdict of the first packet the monitor traced.

    The kernel's trace id is not the packet's for its whole way (it changes when the packet is
    routed out of another interface), so a line belongs to the first packet when the PACKET line
    before it carries the first one's source address and port; a second pass through the raw
    table's TRACE rule is another packet (a retransmission) and ends the path."""
    chains: list[str] = []
    lines: list[str] = []
    destination = verdict = first = original = None
    ours = False
    raw_seen = 0

    def visit(name: str) -> None:
        if name not in chains:
            chains.append(name)

    for line in text.splitlines():
        if (m := _PACKET.match(line)) is not None:
            fields = dict(_FIELD.findall(m["rest"]))
            who = (fields.get("SRC"), fields.get("SPORT"))
            first = first or who
            ours = who == first
            if ours:
                lines.append(line.rstrip())
                here = (fields.get("DST"), fields.get("DPORT"))
                original = original or here
                if here != original and here[0]:
                    destination = f"{here[0]}:{here[1]}" if here[1] else here[0]
            continue
        if (m := _TRACE.match(line)) is None or not ours:
            continue
        if m["table"] == "raw":
            raw_seen += m["kind"] == "rule"
            if raw_seen > 1:
                break
            lines.append(line.rstrip())
            continue
        lines.append(line.rstrip())
        visit(f"{m['table']}:{m['chain']}")
        v = (m["verdict"] or "").strip()
        if v.startswith(("JUMP:", "GOTO:")):
            visit(f"{m['table']}:{v.split(':', 1)[1]}")
        elif v and m["kind"] in ("rule", "policy") and not v.startswith("0x") and v != "CONTINUE":
            verdict = v
    return KernelPath(chains, destination, lines, verdict)


def kernel_trace(packet: Packet, *, netns: str, send: Callable[[], None], origin: str = "pod",
                 backend: str | None = None, timeout: float = 3.0,
                 popen=subprocess.Popen, run=subprocess.run) -> KernelPath:
    """Trace one real packet in ``netns`` (a node's namespace): add the TRACE rule, start the
    monitor, ``send()``, collect, clean up."""
    if backend == "legacy":
        raise TraceError("the kernel trace needs the nft iptables backend (legacy TRACE goes to nf_log, "
                         "which a network namespace does not return)")
    ns = ["ip", "netns", "exec", netns]
    rule = trace_rule(packet, origin)
    added = run([*ns, "iptables-nft", "-t", "raw", "-I", *rule], capture_output=True, text=True)
    if added.returncode != 0:
        raise TraceError(f"cannot add the TRACE rule in {netns}: {added.stderr.strip()}")
    out = watch([*ns, "stdbuf", "-oL", "xtables-monitor", "--trace"], send,
                lambda: run([*ns, "iptables-nft", "-t", "raw", "-D", *rule], capture_output=True, text=True),
                timeout, popen)
    return parse_monitor(out)
