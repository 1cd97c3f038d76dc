"""``netemu trace --mode ipvs``: where a new connection goes on an IPVS node.

A packet to a Service address first meets the fixed iptables chains (nat PREROUTING or OUTPUT:
KUBE-SERVICES marks it for masquerade; filter INPUT: the source-range firewall, KUBE-IPVS-FILTER),
walked by the mode-neutral xtables tracer with the sets' members. The address is local (bound to
kube-ipvs0, or a node address for a NodePort), so the packet is delivered to the node, where IPVS
takes it at LOCAL_IN: the virtual server of (protocol, address, port) picks a real server and
forwards the packet to it (NAT). nat POSTROUTING then masquerades it if it was marked, or if it
returns to its own source (KUBE-LOOP-BACK). So each outcome is one real server, with the share
its scheduler gives it: rr spreads over the real servers of weight > 0 equally, wrr and the
connection-counting schedulers by weight (what an idle service gives), sh/dh/mh by a hash of the
client (one real server per client; the shares are over all clients). A virtual server with no
real server of weight > 0 leaves the packet to the node's stack: connection refused.

Input: ``netemu proxy render --mode ipvs`` output (ipvsadm -Sn, ipset save, iptables-restore text,
in that order), or the live kernel (virtual servers over netlink, ``ipset save``,
``iptables-save``).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Callable

from netemu.agent.proxy.commands import Exec, netns_of
from netemu.agent.proxy.tracing import Outcome, Packet, TraceError, TraceResult, join_hostport, merge
from netemu.agent.proxy.xtables.dump import parse
from netemu.agent.proxy.xtables.trace import MASQ_MARK, Tracer, read_live

from . import ipvsadm, sets as S
from .rules import saved_jumps
from .state import FLAG_PERSISTENT, RealServer, VirtualServer, VSKey

_BY_WEIGHT = {"wrr", "lc", "wlc", "lblc", "lblcr", "sed", "nq"}
_BY_HASH = {"sh", "dh", "mh"}


def trace(dump: str | None, packet: Packet, *, exec_: Exec, node_ips=(), origin: str | None = None,
          ipsets: dict[str, list[str]] | None = None, backend: str | None = None,
          which: Callable[[str], str | None] = shutil.which) -> TraceResult:
    """The registry's tracer hook (see the module docstring); TraceError for unusable input."""
    notes: list[str] = []
    if dump is None:
        services, reals, members, iptables, note = _read_live(exec_, backend, which)
        notes.append(note)
    else:
        services, reals, members, iptables = _read_dump(dump)
    members.update(ipsets or {})
    parsed = parse(iptables)
    if not parsed.tables:
        raise TraceError("no iptables rules in the dump (is it `netemu proxy render --mode ipvs` output?)")
    # the addresses on kube-ipvs0 are local: the node accepts packets for every VIP
    local = list(dict.fromkeys([*node_ips, *members.get(S.IPVS_IPS, ()), *members.get("KUBE-6-IPVS-IPS", ())]))
    tracer = Tracer(parsed, saved_jumps())
    first = tracer.trace(packet, local, origin, members)
    outcomes: list[Outcome] = []
    affinity = first.affinity
    for o in first.outcomes:
        key = VSKey(packet.proto.upper(), packet.dst, packet.dport)
        if o.verdict != "ACCEPT" or o.destination or o.route not in ("local", "output") or key not in services:
            outcomes.append(o)
            continue
        vs = services[key]
        if vs.flags & FLAG_PERSISTENT:
            affinity = (f"affinity: persistent for {vs.timeout} s: the first connection goes as below, later ones "
                        "from the same client to the real server chosen")
        outcomes += _through_ipvs(tracer, packet, o, vs, reals.get(key, ()), local, members, notes)
    return TraceResult(packet, first.origin, first.hook, list(node_ips), merge(outcomes), affinity,
                       first.unevaluated, list(dict.fromkeys([*notes, *first.notes])))


def _through_ipvs(tracer: Tracer, packet: Packet, o: Outcome, vs: VirtualServer, reals, local, members,
                  notes: list[str]) -> list[Outcome]:
    where = f"ipvs:{vs.key} ({vs.scheduler})"
    live = [rs for rs in reals if rs.weight > 0]
    if not live:
        return [replace(o, verdict="REJECT", chains=[*o.chains, where],
                        verdict_by=f"IPVS: virtual server {vs.key} has no real server of weight > 0 "
                                   "(the node's own stack refuses the connection)")]
    shares = _shares(vs.scheduler, live)
    if vs.scheduler in _BY_HASH:
        notes.append(f"{vs.scheduler}: a hash of the client picks one real server, always the same one; "
                     "the shares are over all clients")
    elif vs.scheduler in _BY_WEIGHT - {"wrr"}:
        notes.append(f"{vs.scheduler}: the real server with the fewest connections per weight; the shares "
                     "are what an idle virtual server gives")
    out = []
    for rs, share in zip(live, shares):
        forwarded = Packet(packet.src, rs.address, rs.port, packet.proto, packet.sport)
        for post in tracer.through(forwarded, ["POSTROUTING"], local, members,
                                   MASQ_MARK if o.masquerade_mark else 0):
            out.append(Outcome(o.probability * share, post.verdict, join_hostport(rs.address, rs.port),
                               f"{where} -> {rs} weight {rs.weight}", post.masquerade, o.masquerade_mark,
                               "forward", post.verdict_by, [*o.chains, where, *post.chains],
                               [*o.rules, *post.rules]))
    return out


def _shares(scheduler: str, reals: list[RealServer]) -> list[float]:
    """rr: equal over the real servers of weight > 0; every other scheduler follows the weights."""
    if scheduler == "rr":
        return [1.0 / len(reals)] * len(reals)
    total = sum(rs.weight for rs in reals)
    return [rs.weight / total for rs in reals]


def _read_dump(text: str):
    start = next((i for i, line in enumerate(text.splitlines(keepends=True)) if line.startswith("*")), None)
    lines = text.splitlines(keepends=True)
    head, iptables = ("".join(lines), "") if start is None else ("".join(lines[:start]), "".join(lines[start:]))
    try:
        services, reals = ipvsadm.parse(head)
    except ipvsadm.IpvsadmError as exc:
        raise TraceError(str(exc)) from None
    _types, members = S.parse_save(head)
    return services, reals, {n: sorted(m) for n, m in members.items()}, iptables


def _read_live(exec_: Exec, backend: str | None, which):
    from .kernel import KernelMissing, NetlinkKernel

    try:
        kernel = NetlinkKernel(netns_of(exec_))
    except KernelMissing as exc:
        raise TraceError(f"cannot read IPVS: {exc}") from None
    try:
        services = kernel.services()
        reals = {key: kernel.reals(key) for key in services}
    finally:
        kernel.close()
    done = exec_(["ipset", "save"])
    if done.returncode != 0:
        raise TraceError(f"ipset save failed: {done.stderr.strip()[:300]}")
    _types, members = S.parse_save(done.stdout)
    iptables, note = read_live(exec_, backend, which)
    return services, reals, {n: sorted(m) for n, m in members.items()}, iptables, note or "read the live kernel"
