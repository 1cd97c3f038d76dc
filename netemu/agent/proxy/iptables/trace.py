"""The iptables mode's tracer hook (``netemu trace --mode iptables``): the mode-neutral walk of a
rule dump (../xtables/trace.py) with this mode's standard jumps from the built-in chains.

A dump rendered by our builder (restore text) holds only kube-proxy's own chains; the tracer then
adds the jumps kube-proxy installs with ``iptables -I`` (chains.py's jump rules, the one copy of
them), in the order a real node's ``iptables-save`` shows them, and says so.
"""

from __future__ import annotations

import shutil
from typing import Callable

from netemu.agent.proxy.commands import Exec
from netemu.agent.proxy.iptables.chains import saved_jumps
from netemu.agent.proxy.tracing import Packet, TraceError, TraceResult
from netemu.agent.proxy.xtables.dump import Dump, parse
from netemu.agent.proxy.xtables.trace import Tracer as _Tracer, read_live

# kube-proxy's jumps from built-in chains, in the order `iptables-save` shows them on a node.
STANDARD_JUMPS: dict[tuple[str, str], tuple[str, ...]] = saved_jumps()


class Tracer(_Tracer):
    """The tracer over an iptables-mode dump: the mode's standard jumps are assumed when the dump
    has no built-in chains (restore text)."""

    def __init__(self, dump: Dump):
        super().__init__(dump, STANDARD_JUMPS)


def trace(dump: str | None, packet: Packet, *, exec_: Exec, node_ips=(), origin: str | None = None,
          ipsets: dict[str, list[str]] | None = None, backend: str | None = None,
          which: Callable[[str], str | None] = shutil.which) -> TraceResult:
    """Trace ``packet`` through ``dump`` (restore or save text), or, when ``dump`` is None,
    through the rules the kernel holds now, read with ``iptables-save`` through ``exec_``
    (``backend``: nft or legacy; default the one holding kube-proxy's rules). TraceError for
    unusable input."""
    note = None
    if dump is None:
        dump, note = read_live(exec_, backend, which)
    parsed = parse(dump)
    if not parsed.tables:
        raise TraceError("the dump holds no table (is it iptables-save / restore text?)")
    result = Tracer(parsed).trace(packet, node_ips, origin, ipsets or {})
    if note:
        result.notes.insert(0, note)
    return result
