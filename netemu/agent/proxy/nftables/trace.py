"""Packet tracer for the nftables mode: walk a table the way the kernel walks a new connection.

The packet meets the table's base chains hook by hook, each hook's chains in priority order:
from a pod or the outside prerouting (filter-prerouting -110, nat-prerouting -100), then, after
DNAT, input when the destination is a node address, else forward and postrouting; from the
node itself output (-110, -100 nat, -90 filter-output-post-dnat), postrouting, and input when it
stays on the node. Inside a chain rules run in order; ``jump`` returns, ``goto`` does not; a
verdict map's element is the rule's verdict; ``numgen random mod N vmap`` branches N ways, each
1/N, so the answer is every outcome with its probability, the same ``tracing.TraceResult`` as the
iptables tracer prints. ``accept`` ends a base chain (the next one still runs), ``drop``/``reject``
end the packet, ``dnat``/``masquerade`` end a nat chain.

First packet of a connection: ``ct state new`` holds; an affinity set is read as it is (empty in
a render: the first connection is balanced; a live listing's entries do pin their clients).
What cannot be evaluated is listed, never guessed. Pure: no kernel, no root (``trace()`` reads
``nft list table`` through an Exec when asked for the live kernel).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from netemu.agent.proxy.commands import Exec
from netemu.agent.proxy.tracing import (Outcome, Packet, TraceError, TraceResult, check_packet, join_hostport,
                                        merge, split_hostport)

from .builder import TABLE
from .listing import parse_any
from .table import NftError, Table
from .trace_match import RuleEvaluator

MAX_DEPTH = 64
MAX_BRANCHES = 5000
MASQ_MARK = 0x4000


@dataclass(frozen=True)
class _State:
    prob: float
    src: str
    dst: str
    dport: int
    mark: int = 0
    dnat: str | None = None
    endpoint_chain: str | None = None
    snat: bool = False
    verdict_by: str | None = None
    chains: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()


class Tracer:
    def __init__(self, table: Table, masquerade_mark: int = MASQ_MARK):
        self.table = table
        self.mark_bit = masquerade_mark

    def hooks(self, hook: str) -> list[str]:
        chains = [c for c in self.table.chains.values() if c.hook == hook]
        return [c.name for c in sorted(chains, key=lambda c: (c.priority or 0, c.type != "filter"))]

    def trace(self, packet: Packet, node_ips=(), origin: str | None = None) -> TraceResult:
        check_packet(packet, node_ips)
        run = _Run(self, packet, list(node_ips))
        if origin is None:
            origin = "node" if run.is_local(packet.src) else "pod-or-external"
        if origin not in ("node", "pod", "external", "pod-or-external"):
            raise TraceError(f"origin must be pod, node or external, not {origin!r}")
        start = _State(1.0, packet.src, packet.dst, packet.dport)
        first = "output" if origin == "node" else "prerouting"
        outcomes = run.through_node(start, first)
        return TraceResult(packet, origin, first, list(node_ips), merge(outcomes), run.affinity,
                           sorted(set(run.unevaluated)), list(dict.fromkeys(run.notes)))


class _Run:
    def __init__(self, tracer: Tracer, packet: Packet, node_ips: list[str]):
        self.tracer = tracer
        self.table = tracer.table
        self.packet = packet
        self.local = {ipaddress.ip_address(ip) for ip in node_ips}
        self.eval = RuleEvaluator(self.table, self.is_local, packet.proto.lower(), packet.iif)
        self.affinity: str | None = None
        self.unevaluated: list[str] = []
        self.notes: list[str] = []
        self.branches = 0
        if not any(c.hook for c in self.table.chains.values()):
            self.notes.append("the table has no base chains: nothing hooks it into the kernel")

    def is_local(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return addr in self.local or addr.is_loopback

    def through_node(self, st: _State, first: str) -> list[Outcome]:
        out: list[Outcome] = []
        for s, v in self.hook(first, st):
            if v in ("drop", "reject"):
                out.append(self.outcome(s, v, first))
                continue
            if first == "output":
                stages = ["postrouting"] + (["input"] if self.is_local(s.dst) else [])
                route = "output"
            elif self.is_local(s.dst):
                stages, route = ["input"], "local"
            else:
                stages, route = ["forward", "postrouting"], "forward"
            marked = bool(s.mark & self.tracer.mark_bit)
            current = [(s, "accept")]
            for stage in stages:
                nxt = []
                for s2, v2 in current:
                    nxt.extend([(s2, v2)] if v2 != "accept" else self.hook(stage, s2))
                current = nxt
            out.extend(self.outcome(s2, v2, route, marked) for s2, v2 in current)
        return out

    def hook(self, hook: str, st: _State) -> list[tuple[_State, str]]:
        """Every base chain of ``hook`` in priority order; accept moves on, drop/reject stop."""
        current = [(st, "accept")]
        for chain in self.tracer.hooks(hook):
            nxt = []
            for s, v in current:
                if v != "accept":
                    nxt.append((s, v))
                    continue
                for s2, v2 in self.walk(chain, s, 0):
                    # a nat statement accepts for its chain: the hook's next chain still runs
                    nxt.append((s2, "accept" if v2 in (None, "accept", "return", "dnat", "masquerade") else v2))
            current = nxt
        return current

    def outcome(self, s: _State, verdict: str, route: str, marked: bool | None = None) -> Outcome:
        mark = bool(s.mark & self.tracer.mark_bit) if marked is None else marked
        return Outcome(s.prob, verdict.upper() if verdict in ("drop", "reject") else "ACCEPT", s.dnat,
                       s.endpoint_chain, s.snat, mark, route, s.verdict_by, list(dict.fromkeys(s.chains)),
                       list(s.rules))

    # ---- one chain -------------------------------------------------------------------------

    def walk(self, name: str, st: _State, depth: int) -> list[tuple[_State, str | None]]:
        """Every way through chain ``name``: (state, verdict); None means it fell off the end
        (or returned), "accept"/"drop"/"reject"/"dnat"/"masquerade" end the hook's chain."""
        chain = self.table.chains.get(name)
        if chain is None:
            self.unevaluated.append(f"jump to chain {name}, which is not in the table")
            return [(st, None)]
        st = replace(st, chains=st.chains + (name,))
        if depth > MAX_DEPTH:
            self.notes.append(f"stopped at depth {MAX_DEPTH} in {name} (a loop?)")
            return [(st, None)]
        out: list[tuple[_State, str | None]] = []
        stack = [(st, 0)]
        while stack:
            s, i = stack.pop()
            self._from(chain, s, i, depth, stack, out)
        return out

    def _from(self, chain, s: _State, i: int, depth: int, stack: list, out: list) -> None:
        rules = chain.rules
        while i < len(rules):
            rule, _ = rules[i]
            i += 1
            step = self.eval.evaluate(rule, s.src, s.dst, s.dport, s.mark)
            if step.unevaluated:
                self.unevaluated.append(f"{chain.name}: {step.unevaluated} in: {rule}")
            if step.affinity and self.affinity is None:
                self.affinity = step.affinity
            if step.prob <= 0.0:
                continue
            s = replace(s, mark=step.mark, rules=s.rules + (f"{chain.name} #{i}: {rule}",))
            if step.branches:
                self.branches += len(step.branches)
                if self.branches > MAX_BRANCHES:
                    self.notes.append(f"more than {MAX_BRANCHES} branches: trace cut short")
                    return
                for p, verdict in step.branches:
                    b = replace(s, prob=s.prob * p / step.prob if step.prob else 0.0)
                    self._verdict(chain, rule, b, verdict, i, depth, stack, out, branch=True)
                return
            if step.verdict is None:
                continue
            if self._verdict(chain, rule, s, step.verdict, i, depth, stack, out):
                return
        out.append((s, None))

    def _verdict(self, chain, rule: str, s: _State, verdict: str, i: int, depth: int,
                 stack: list, out: list, branch: bool = False) -> bool:
        """Apply a verdict; True when this branch of the chain is finished."""
        word, _, arg = verdict.partition(" ")
        where = f"{chain.name}: {rule}"
        if word in ("drop", "reject"):
            out.append((replace(s, verdict_by=where), word))
            return True
        if word == "accept":
            out.append((replace(s, verdict_by=where), "accept"))
            return True
        if word == "return":
            out.append((s, None))
            return True
        if word == "continue" or word == "":
            if branch:
                stack.append((s, i))
            return branch
        if word == "dnat":
            ip, port = split_hostport(arg, s.dport)
            ep = chain.name if chain.name.startswith("endpoint-") else s.endpoint_chain
            out.append((replace(s, dst=ip, dport=port, dnat=join_hostport(ip, port), endpoint_chain=ep), "dnat"))
            return True
        if word == "masquerade":
            out.append((replace(s, snat=True), "masquerade"))
            return True
        if word in ("jump", "goto"):
            returned = []
            for s2, v in self.walk(arg, s, depth + 1):
                if v is not None:
                    out.append((s2, v))
                elif word == "goto":
                    out.append((s2, None))     # a goto's chain returns for us too
                else:
                    returned.append(s2)
            stack.extend((s2, i) for s2 in reversed(returned))
            return True
        self.unevaluated.append(f"{where}: unknown verdict {verdict!r}: treated as continue")
        return False


# ---- the mode's tracer hook (`netemu trace --mode nftables`) -------------------------------

def trace(dump: str | None, packet: Packet, *, exec_: Exec, node_ips=(), origin: str | None = None,
          ipsets=None, family: str | None = None) -> TraceResult:
    """Trace ``packet`` through ``dump`` (our render, a transaction, or ``nft list table``
    output), or, when ``dump`` is None, through the table the kernel holds now."""
    note = None
    if dump is None:
        dump, note = read_live(exec_, family or ("ip6" if ":" in packet.dst else "ip"))
    try:
        table = parse_any(dump)
    except NftError as exc:
        raise TraceError(f"cannot read the nftables dump: {exc}") from None
    if ipsets:
        note = (note + "; " if note else "") + "--ipset is an iptables-mode option: ignored"
    result = Tracer(table).trace(packet, node_ips, origin)
    if note:
        result.notes.insert(0, note)
    return result


def read_live(exec_: Exec, family: str = "ip") -> tuple[str, str]:
    argv = ["nft", "list", "table", family, TABLE]
    try:
        done = exec_(argv)
    except FileNotFoundError:
        raise TraceError("nft is not installed") from None
    if done.returncode != 0:
        raise TraceError(f"{' '.join(argv)} failed: {done.stderr.strip()[:300]} (is the nftables mode running?)")
    return done.stdout, f"read {' '.join(argv)}"
