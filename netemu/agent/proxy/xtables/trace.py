"""Packet tracer: walk a rule dump the way the kernel walks a new connection's first packet.

Given a packet (source, protocol, destination, port), the node's own addresses (``addrtype
LOCAL`` depends on them, and so does routing: local delivery goes to INPUT, the rest to FORWARD)
and where it comes from (a pod or the outside enters at PREROUTING, the node itself at OUTPUT),
the tracer runs the nat hook chain, follows jumps, gotos and returns, and branches at every
``-m statistic`` rule, so the answer is the set of outcomes with their probabilities: the
probability of reaching endpoint i is prob_i * prod(1 - prob_j) of the earlier ones, exactly the
arithmetic the kernel's random draws make. Each outcome then goes through the filter table
(INPUT/FORWARD/OUTPUT, where kube-proxy REJECTs services without endpoints and DROPs traffic the
load-balancer firewall refuses) and nat POSTROUTING (where the 0x4000 mark becomes MASQUERADE).

Conntrack-dependent matches are answered for the FIRST packet of a connection: ctstate is NEW
(plus DNAT once DNATed), ``-m recent --rcheck`` finds no entry (so with ClientIP affinity the
answer reads "first connection goes as below, later ones stick to the endpoint chosen"). What we
cannot know (an ipset we were not given, an unknown match module, an unknown input interface) is
assumed not to match and listed in ``TraceResult.unevaluated``, never guessed silently.

A dump rendered by a mode's builder (restore text) holds only kube-proxy's own chains; when a table
has no built-in chain at all, the tracer adds the mode's standard jumps into them (the ones it
installs with ``iptables -I``, given by the mode), in the order a real node shows, and says so.
Mode-neutral: the iptables mode traces its whole ruleset with it, the IPVS mode its fixed chains.
Pure: no kernel, no root. The mangle and raw tables are not walked (kube-proxy's iptables mode
does not use them for service traffic). Whether one rule matches is trace_match.py's business.
"""

from __future__ import annotations

import ipaddress
import shutil
from dataclasses import replace
from typing import Callable, Mapping

from netemu.agent.proxy.commands import Exec
from netemu.agent.proxy.xtables.apply import BACKENDS
from netemu.agent.proxy.xtables.dump import Chain, Dump, Table, no_gc
from netemu.agent.proxy.xtables.rule import Rule, parse_rule
from netemu.agent.proxy.xtables.trace_match import MatchEvaluator, State, address, mark_mask
from netemu.agent.proxy.tracing import (Outcome, Packet, TraceError, TraceResult, check_packet, join_hostport,
                                        merge, split_hostport)

MASQ_MARK = 0x4000
MAX_BRANCHES = 5000
MAX_DEPTH = 64

_IGNORED = object()     # a rule whose target could not be applied (see _Run._target)
_SILENT_TARGETS = {"LOG", "NFLOG", "TRACE", "CONNMARK", "NOTRACK", "CT", "CHECKSUM", "TCPMSS", "AUDIT"}


class Tracer:
    """Holds a parsed dump (plus synthesized standard jumps) and traces packets through it.

    ``standard_jumps``: the mode's jumps from built-in chains, per (table, chain) in the order
    ``iptables-save`` shows them on a node (a mode writes them with ``iptables -I``, outside its
    restore text); added to a dump that holds none of the built-in chains."""

    def __init__(self, dump: Dump, standard_jumps: Mapping[tuple[str, str], tuple[str, ...]] | None = None):
        self.dump = dump
        self.notes: list[str] = [f"dump: {p}" for p in dump.problems]
        self.tables: dict[str, Table] = {name: _copy_table(t) for name, t in dump.tables.items()}
        self._add_standard_jumps(standard_jumps or {})

    def _add_standard_jumps(self, standard_jumps: Mapping[tuple[str, str], tuple[str, ...]]) -> None:
        added = []
        for (tname, cname), specs in standard_jumps.items():
            table = self.tables.get(tname)
            if table is None or cname in table.chains:
                continue
            rules = [parse_rule(cname, s) for s in specs]
            rules = [r for r in rules if r.target in table.chains]
            table.chains[cname] = _new_builtin(cname, rules)   # order of chains is irrelevant
            if rules:
                added.append(f"{tname} {cname}")
        if added:
            self.notes.append("no built-in chains in the dump (restore text?): assumed kube-proxy's "
                              f"standard jumps from {', '.join(added)}")

    def trace(self, packet: Packet, node_ips: list[str] | tuple[str, ...] = (),
              origin: str | None = None, ipsets: dict[str, list[str]] | None = None,
              mark: int = 0) -> TraceResult:
        check_packet(packet, node_ips)
        run = _Run(self, packet, list(node_ips), ipsets or {})
        if origin is None:
            origin = "node" if run.is_local(packet.src) else "pod-or-external"
        if origin not in ("node", "pod", "external", "pod-or-external"):
            raise TraceError(f"origin must be pod, node or external, not {origin!r}")
        hook = "OUTPUT" if origin == "node" else "PREROUTING"
        start = State(1.0, packet.src, packet.dst, packet.dport, mark)
        with no_gc():     # rules split on first use create many small acyclic objects
            outcomes = run.through_node(start, hook)
        return TraceResult(packet, origin, hook, list(node_ips), merge(outcomes), run.affinity,
                           sorted(set(run.unevaluated)), list(dict.fromkeys(self.notes + run.notes)))


    def through(self, packet: Packet, stages: list[str], node_ips: list[str] | tuple[str, ...] = (),
                ipsets: dict[str, list[str]] | None = None, mark: int = 0, route: str = "forward") -> list[Outcome]:
        """Run ``packet`` as it is now -- after a translation done outside iptables, by IPVS say --
        through these stages only ("POSTROUTING" is nat's, the others filter's)."""
        run = _Run(self, packet, list(node_ips), ipsets or {})
        start = State(1.0, packet.src, packet.dst, packet.dport, mark)
        with no_gc():
            return [run.outcome(s, v, route) for s, v in run.stages(start, stages)]


def _copy_table(t: Table) -> Table:
    """A new chain dict sharing the chains (the tracer adds chains, never changes one)."""
    return Table(t.name, dict(t.chains))


def _new_builtin(name: str, rules: list[Rule]) -> Chain:
    return Chain(name, "ACCEPT", None, rules)


class _Run(MatchEvaluator):
    """One trace: the packet's fixed facts plus what the walk learned (affinity, unknowns)."""

    def __init__(self, tracer: Tracer, packet: Packet, node_ips: list[str], ipsets: dict):
        self.tables = tracer.tables
        self.packet = packet
        self.proto = packet.proto.lower()
        self.local = {ipaddress.ip_address(ip) for ip in node_ips}
        self.node_ips = node_ips
        self.ipsets = ipsets
        self.affinity: str | None = None
        self.unevaluated: list[str] = []
        self.notes: list[str] = []
        self.branches = 0

    def is_local(self, ip: str) -> bool:
        addr = address(ip)
        return addr in self.local or addr.is_loopback

    # ---- the hooks a new connection's first packet passes ------------------------------------

    def through_node(self, st: State, hook: str) -> list[Outcome]:
        outcomes = []
        for nat_st, verdict in self.hook("nat", hook, st):
            if verdict in ("DROP", "REJECT"):
                outcomes.append(self.outcome(nat_st, verdict, "nat"))
                continue
            marked = bool(nat_st.mark & MASQ_MARK)
            if hook == "OUTPUT":
                stages = ["OUTPUT", "POSTROUTING"] + (["INPUT"] if self.is_local(nat_st.dst) else [])
            elif self.is_local(nat_st.dst):
                stages = ["INPUT"]
            else:
                stages = ["FORWARD", "POSTROUTING"]
            for final, verdict in self.stages(nat_st, stages):
                route = "output" if hook == "OUTPUT" else ("local" if stages == ["INPUT"] else "forward")
                outcomes.append(self.outcome(final, verdict, route, marked))
        return outcomes

    def stages(self, st: State, stages: list[str]) -> list[tuple[State, str]]:
        """Run the filter (or, for POSTROUTING, nat) chains in order; stop a branch at DROP/REJECT."""
        current = [(st, "ACCEPT")]
        for stage in stages:
            table = "nat" if stage == "POSTROUTING" else "filter"
            nxt = []
            for s, v in current:
                if v != "ACCEPT":
                    nxt.append((s, v))
                    continue
                for s2, v2 in self.hook(table, stage, s):
                    if v2 in ("MASQUERADE", "SNAT"):
                        s2, v2 = replace(s2, snat=True), "ACCEPT"
                    nxt.append((s2, v2 if v2 in ("DROP", "REJECT") else "ACCEPT"))
            current = nxt
        return current

    def hook(self, table: str, chain: str, st: State) -> list[tuple[State, str]]:
        """A built-in chain: falling off its end (or RETURN) applies its policy."""
        t = self.tables.get(table)
        if t is None or chain not in t.chains:
            return [(st, "ACCEPT")]
        policy = t.chains[chain].policy or "ACCEPT"
        return [(s, v or policy) for s, v in self.walk(table, chain, st, 0)]

    def outcome(self, st: State, verdict: str, route: str, marked: bool | None = None) -> Outcome:
        return Outcome(st.prob, verdict, st.dnat, st.sep, st.snat,
                       bool(st.mark & MASQ_MARK) if marked is None else marked, route,
                       st.verdict_by, list(st.chains), list(st.rules))

    # ---- one chain ---------------------------------------------------------------------------

    def walk(self, table: str, chain: str, st: State, depth: int) -> list[tuple[State, str | None]]:
        """All ways through ``chain``: (state, verdict); verdict None means it returned."""
        rules = self.tables[table].chains[chain].rules
        st = replace(st, chains=st.chains + (f"{table}:{chain}",))
        if depth > MAX_DEPTH:
            self.notes.append(f"stopped at depth {MAX_DEPTH} in {table} {chain} (a loop?)")
            return [(st, None)]
        out: list[tuple[State, str | None]] = []
        stack = [(st, 0)]
        while stack:
            s, i = stack.pop()
            self._run_from(table, chain, rules, s, i, depth, stack, out)
        return out

    def _run_from(self, table: str, chain: str, rules: list[Rule], s: State, i: int, depth: int,
                  stack: list, out: list) -> None:
        """Run one branch from rule i until it ends; forks (statistic, returns from a sub-chain)
        are pushed on ``stack`` so they resume later, in rule order."""
        while i < len(rules):
            rule = rules[i]
            i += 1
            p, s = self.match(table, chain, rule, s)
            if p <= 0.0:
                continue
            if p < 1.0:
                self.branches += 1
                if self.branches > MAX_BRANCHES:
                    self.notes.append(f"more than {MAX_BRANCHES} branches: trace cut short")
                    return
                stack.append((replace(s, prob=s.prob * (1.0 - p)), i))
                s = replace(s, prob=s.prob * p)
            s = replace(s, rules=s.rules + (f"{table} {chain} #{i}: {rule.raw}",))
            if rule.target is None:
                continue
            done = self._target(self.terminal, table, chain, rule, s)
            if done is _IGNORED:
                continue
            if done is not None:
                out.append(done)
                return
            if rule.target in self.tables[table].chains:
                returned = []
                for s2, v in self.walk(table, rule.target, s, depth + 1):
                    if v is not None or rule.goto:      # a goto's chain returns for us too
                        out.append((s2, v))
                    else:
                        returned.append(s2)
                stack.extend((s2, i) for s2 in reversed(returned))
                return
            after = self._target(self.nonterminal, table, chain, rule, s)
            s = s if after is _IGNORED else after
        out.append((s, None))

    def _target(self, step, table: str, chain: str, rule: Rule, s: State):
        """``step`` (terminal or nonterminal) for ``rule``, or _IGNORED, reported, when its target
        options are malformed: one bad rule must not end the trace."""
        try:
            return step(table, chain, rule, s)
        except (ValueError, IndexError, TypeError, ArithmeticError):
            self.unevaluated.append(f"{table} {chain}: malformed target options, rule ignored: {rule.raw}")
            return _IGNORED

    # ---- targets -----------------------------------------------------------------------------

    def terminal(self, table: str, chain: str, rule: Rule, s: State) -> tuple[State, str | None] | None:
        t = rule.target
        where = f"{table} {chain}: {rule.raw}"
        if t in ("ACCEPT", "DROP", "REJECT"):
            return replace(s, verdict_by=where), t
        if t == "RETURN":
            return s, None
        if t == "DNAT":
            to = rule.target_option("to-destination")
            if to is None or not to.value:
                self.unevaluated.append(f"{where}: DNAT without --to-destination")
                return s, "DNAT"
            ip, port = split_hostport(to.value, s.dport)
            sep = chain if chain.startswith("KUBE-SEP-") else s.sep
            return replace(s, dst=ip, dport=port, dnat=f"{join_hostport(ip, port)}", sep=sep), "DNAT"
        if t == "REDIRECT":
            to = rule.target_option("to-ports")
            port = int(to.value.split("-")[0]) if to and to.value else s.dport
            ip = self.node_ips[0] if self.node_ips else "127.0.0.1"
            return replace(s, dst=ip, dport=port, dnat=join_hostport(ip, port)), "DNAT"
        if t in ("MASQUERADE", "SNAT"):
            return replace(s, snat=True), t
        return None

    def nonterminal(self, table: str, chain: str, rule: Rule, s: State) -> State:
        t = rule.target
        if t == "MARK":
            return replace(s, mark=_apply_mark(rule, s.mark))
        if t == "KUBE-MARK-MASQ":       # a partial dump without the chain itself
            self.notes.append("KUBE-MARK-MASQ is not in the dump: assumed it sets mark 0x4000")
            return replace(s, mark=s.mark | MASQ_MARK)
        if t not in _SILENT_TARGETS:
            self.unevaluated.append(f"{table} {chain}: target {t} is neither a chain of the dump "
                                    f"nor a known target: treated as doing nothing")
        return s


def _apply_mark(rule: Rule, mark: int) -> int:
    """The MARK target in its iptables-save spellings (--set-xmark is what save prints)."""
    for opt in rule.target_options:
        if opt.name == "set-xmark":
            value, mask = mark_mask(opt.value)
            return (mark & ~mask & 0xFFFFFFFF) ^ value
        if opt.name == "set-mark":
            value, mask = mark_mask(opt.value)
            return (mark & ~mask & 0xFFFFFFFF) | value
        if opt.name == "or-mark":
            return mark | int(opt.value, 0)
        if opt.name == "and-mark":
            return mark & int(opt.value, 0)
        if opt.name == "xor-mark":
            return mark ^ int(opt.value, 0)
    return mark


# ---- reading a live kernel ------------------------------------------------------------

def read_live(exec_: Exec, backend: str | None = None,
              which: Callable[[str], str | None] = shutil.which) -> tuple[str, str | None]:
    """iptables-save text of the chosen backend, or else of the backend holding KUBE- rules,
    and a note saying which was read.

    Both backends can hold rules at once and both apply to packets; kube-proxy writes to one
    (upstream picks the one with more rules). Reading the system default blindly would trace an
    empty table on a node whose kube-proxy uses the other backend."""
    if backend:
        return _save(exec_, [f"iptables-{backend}-save"]), None
    found = {b: _save(exec_, [f"iptables-{b}-save"]) for b in BACKENDS if which(f"iptables-{b}-save")}
    counts = {b: text.count("-A KUBE-") for b, text in found.items()}
    if not counts or max(counts.values()) == 0:
        return _save(exec_, ["iptables-save"]), "no KUBE- rules in either iptables backend"
    best = max(counts, key=counts.get)
    other = [b for b in counts if b != best and counts[b]]
    note = f"read iptables-{best}-save (it holds kube-proxy's rules)"
    if other:
        note += f"; iptables-{other[0]} also holds {counts[other[0]]} KUBE- rules, not traced (--backend)"
    return found[best], note


def _save(exec_: Exec, argv: list[str]) -> str:
    try:
        done = exec_(argv)
    except FileNotFoundError:
        raise TraceError(f"{argv[0]} is not installed") from None
    if done.returncode != 0:
        raise TraceError(f"{' '.join(argv)} failed: {done.stderr.strip()[:300]}")
    return done.stdout
