"""The IPVS mode's applier: make a node's kernel hold the planned state, sending only differences.

A full apply reads the kernel (virtual and real servers, kube-ipvs0's addresses, the KUBE-* sets)
and sends what differs from the whole plan: it is the first sync, the hourly resync and the sync
after a failure, and it removes what a previous run left. A partial apply trusts ``mirror`` -- the
kernel as our last successful sends left it -- and sends the differences of a planner Delta, so a
one-Service change costs a few requests, not a read of the whole table. Each kind of change goes
in one batch: the IPVS ops in one netlink batch (kernel.py), the set entries in one ``ipset
restore``, the fixed chains in one ``iptables-restore`` (only when their text changed), the
kube-ipvs0 addresses in one netlink batch.

Order within an apply, so that nothing refers to what does not exist yet: sets (and their
entries), addresses, IPVS, then iptables (whose rules match the sets), then the removals of
addresses; real servers leave through graceful.py (weight 0, deleted once drained).

Any failure raises and leaves ``mirror`` unusable: the proxier's next sync is full, and reads the
kernel again.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from netemu.agent.proxy.commands import Exec
from netemu.agent.proxy.model import NodeInfo
from netemu.agent.proxy.xtables.apply import Iptables, JumpRule, add_jumps

from . import sets as S
from .cache import Delta
from .diff import ipset_delta_lines, ipset_lines, service_ops
from .graceful import Draining, needs_draining
from .kernel import Kernel, Op
from .planner import Service
from .state import Plan, RealServer, VirtualServer, VSKey

log = logging.getLogger(__name__)


class ApplyError(RuntimeError):
    """A command the applier ran failed (its message says which and why)."""


@dataclass
class Mirror:
    """The kernel as the applier last saw or left it."""

    services: dict[VSKey, VirtualServer] = field(default_factory=dict)
    reals: dict[VSKey, dict[tuple[str, int], RealServer]] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)
    set_types: dict[str, str] = field(default_factory=dict)
    ipsets: dict[str, set[str]] = field(default_factory=dict)      # family names, canonical entries
    iptables: str | None = None
    real_count: int = -1      # real servers in ``reals``, kept by the methods below (-1: count them)

    def __post_init__(self) -> None:
        if self.real_count < 0:
            self.real_count = sum(len(r) for r in self.reals.values())

    def put_real(self, key: VSKey, rs: RealServer) -> None:
        reals = self.reals.setdefault(key, {})
        self.real_count += rs.endpoint not in reals
        reals[rs.endpoint] = rs

    def drop_real(self, key: VSKey, endpoint: tuple[str, int]) -> None:
        if self.reals.get(key, {}).pop(endpoint, None) is not None:
            self.real_count -= 1

    def drop_service(self, key: VSKey) -> None:
        self.services.pop(key, None)
        self.real_count -= len(self.reals.pop(key, {}))


@dataclass
class Stats:
    """What one apply sent: for tests (only differences) and the sync's log line."""

    ops: Counter = field(default_factory=Counter)      # Op.kind -> count
    ipset_lines: int = 0
    bound: int = 0
    unbound: int = 0
    iptables: bool = False
    drained: int = 0                                   # real servers that got weight 0
    deleted_drained: int = 0

    @property
    def nothing(self) -> bool:
        return not (self.ops or self.ipset_lines or self.bound or self.unbound or self.iptables
                    or self.drained or self.deleted_drained)


class Applier:
    def __init__(self, kernel: Kernel, exec_: Exec, iptables: Iptables, node: NodeInfo, *,
                 draining: Draining | None = None, exclude_cidrs: Iterable[str] = ()):
        self.kernel = kernel
        self.exec = exec_
        self.iptables = iptables
        self.ipv6 = node.ip_family == "IPv6"
        self.draining = draining or Draining()
        self.exclude = [ipaddress.ip_network(c, strict=False) for c in exclude_cidrs]
        self.mirror: Mirror | None = None

    # -- reading -------------------------------------------------------------------------------
    def read(self) -> Mirror:
        services = self.kernel.services()
        reals = {key: {rs.endpoint: rs for rs in self.kernel.reals(key)} for key in services}
        types, members = S.parse_save(self._run(["ipset", "save"], "ipset save"))
        mine = S.names(self.ipv6)
        return Mirror(services, reals, self.kernel.dummy_addresses(),
                      {n: t for n, t in types.items() if n in mine}, {n: members[n] for n in types if n in mine})

    # -- the two applies -------------------------------------------------------------------------
    def apply_full(self, plan: Plan, jumps: Iterable[JumpRule] = ()) -> Stats:
        """Read the kernel, then send whatever differs from ``plan`` (and the missing jumps)."""
        self.mirror = None
        m = self.read()
        wanted: dict[VSKey, Service | None] = {
            key: Service(vs, plan.reals.get(key, ()), vs.key.address in plan.bind) for key, vs in plan.services.items()}
        for key in m.services.keys() - plan.services.keys():
            if self._ours(key):        # another family's or an excluded range's: not ours to delete
                wanted[key] = None
        lines = ipset_lines(plan.ipsets, m.set_types, m.ipsets, self.ipv6)
        saved = {"nat": self.iptables.save("nat"), "filter": self.iptables.save("filter")}
        text, leftovers = add_jumps(plan.iptables, self.iptables.missing_jumps(jumps, saved))
        self.iptables.ensure_jumps(leftovers)
        stats = self._apply(m, wanted, lines, set(plan.bind) - m.bound, m.bound - set(plan.bind), text)
        self.mirror = m
        return stats

    def apply_delta(self, delta: Delta) -> Stats:
        """Send the differences of a planner Delta, against the mirror of the last apply."""
        m = self.mirror
        if m is None:
            raise ApplyError("no mirror of the kernel: a full apply must come first")
        self.mirror = None
        lines = ipset_delta_lines(delta.added, delta.removed, m.ipsets, self.ipv6)
        stats = self._apply(m, dict(delta.services), lines, delta.bind_added - m.bound,
                            delta.bind_removed & m.bound, delta.iptables)
        self.mirror = m
        return stats

    def drain(self, keys: Iterable[VSKey] | None = None) -> int:
        """Delete the draining real servers (of ``keys``, default all) whose connections ended or
        whose time is up; reads their connection counts from the kernel."""
        ops = []
        for key in sorted(self.draining.keys() if keys is None else set(keys) & self.draining.keys()):
            vs = self.mirror.services.get(key) if self.mirror else None
            for rs in self.draining.due(key, self.kernel.reals(key)):
                ops.append(Op("del_dest", vs or VirtualServer(key), rs))
        if ops:
            self.kernel.apply(ops)
            for op in ops:
                self.draining.stop(op.server.key, op.real.endpoint)
                if self.mirror is not None:
                    self.mirror.drop_real(op.server.key, op.real.endpoint)
        return len(ops)

    # -- the steps -----------------------------------------------------------------------------
    def _apply(self, m: Mirror, wanted: Mapping[VSKey, Service | None], lines: list[str],
               bind: set[str], unbind: set[str], iptables_text: str | None) -> Stats:
        stats = Stats()
        if lines:
            self._run(["ipset", "-exist", "restore"], "ipset restore", "\n".join(lines) + "\n")
            _record_ipsets(m, lines)
            stats.ipset_lines = len(lines)
        if bind:
            self.kernel.change_addresses(sorted(bind), [])
            m.bound |= bind
            stats.bound = len(bind)
        ops, drains = self._ipvs_ops(m, wanted)
        if ops:
            self.kernel.apply(ops)
            _record_ops(m, ops)
            stats.ops.update(op.kind for op in ops)
        for key, rs in drains:
            self.draining.start(key, rs)
        stats.drained = sum(1 for op in ops if op.kind == "set_dest" and op.real.weight == 0)
        if iptables_text is not None and iptables_text != m.iptables:
            self.iptables.restore(iptables_text)
            m.iptables = iptables_text
            stats.iptables = True
        if unbind:
            self.kernel.change_addresses([], sorted(unbind))
            m.bound -= unbind
            stats.unbound = len(unbind)
        self.mirror = m
        stats.deleted_drained = self.drain({key for key, _ in drains})
        return stats

    def _ipvs_ops(self, m: Mirror, wanted: Mapping[VSKey, Service | None]
                  ) -> tuple[list[Op], list[tuple[VSKey, RealServer]]]:
        ops: list[Op] = []
        drains: list[tuple[VSKey, RealServer]] = []
        for key in sorted(wanted, key=lambda k: (k.address, k.port, k.protocol)):
            want = wanted[key]
            have_reals = m.reals.get(key, {})
            svc_ops, leaving = service_ops(want, m.services.get(key), have_reals)
            ops += svc_ops
            if want is None:
                self.draining.forget(key)
                continue
            for rs in want.reals:
                self.draining.stop(key, rs.endpoint)
            for rs in leaving:          # UDP/SCTP at once; TCP drains (deleted once idle, by drain())
                if not needs_draining(key.protocol):
                    ops.append(Op("del_dest", want.server, rs))
                    continue
                if rs.weight != 0:
                    ops.append(Op("set_dest", want.server, rs._replace(weight=0)))
                drains.append((key, rs))
        return ops, drains

    def _ours(self, key: VSKey) -> bool:
        addr = ipaddress.ip_address(key.address)
        if (addr.version == 6) != self.ipv6:
            return False
        return not any(addr in net for net in self.exclude)

    def _run(self, argv: list[str], what: str, stdin: str | None = None) -> str:
        done = self.exec(argv, stdin)
        if done.returncode != 0:
            raise ApplyError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[:1000]}")
        return done.stdout


def _record_ipsets(m: Mirror, lines: list[str]) -> None:
    for line in lines:
        verb, name, rest = line.split(" ", 2)
        if verb == "create":
            m.set_types[name] = rest.split(" ", 1)[0]
            m.ipsets.setdefault(name, set())
        elif verb == "add":
            m.ipsets.setdefault(name, set()).add(S.canonical(m.set_types[name], rest))
        elif verb == "del":
            m.ipsets.get(name, set()).discard(S.canonical(m.set_types[name], rest))


def _record_ops(m: Mirror, ops: list[Op]) -> None:
    for op in ops:
        key = op.server.key
        if op.kind in ("add_service", "set_service"):
            m.services[key] = op.server
            m.reals.setdefault(key, {})
        elif op.kind == "del_service":
            m.drop_service(key)
        elif op.kind in ("add_dest", "set_dest"):
            m.put_real(key, op.real)
        elif op.kind == "del_dest":
            m.drop_real(key, op.real.endpoint)


# ---- sysctls -------------------------------------------------------------------------------------

def sysctls(strict_arp: bool = False, kernel_release: str | None = None) -> dict[str, str]:
    """The sysctls upstream's NewProxier ensures, for this kernel version: ``net.ipv4.vs.conntrack``
    (IPVS connections through conntrack, so iptables can masquerade them), ``expire_nodest_conn``
    and ``expire_quiescent_template`` (connections of deleted or weight-0 real servers end),
    ``ip_forward``, and ``conn_reuse_mode=0`` only on kernels 4.1 to 5.8 (older lack it, newer
    fixed the reason, kubernetes issue 93297); with strict ARP, arp_ignore/arp_announce."""
    release = kernel_release or os.uname().release
    version = tuple(int(x) for x in release.split("-")[0].split(".")[:2] if x.isdigit())
    out = {"net.ipv4.vs.conntrack": "1"}
    if (4, 1) <= version < (5, 9):
        out["net.ipv4.vs.conn_reuse_mode"] = "0"
    elif version < (4, 1):
        log.error("kernel %s is older than 4.1: cannot set net.ipv4.vs.conn_reuse_mode", release)
    out |= {"net.ipv4.vs.expire_nodest_conn": "1", "net.ipv4.vs.expire_quiescent_template": "1",
            "net.ipv4.ip_forward": "1"}
    if strict_arp:
        out |= {"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2"}
    return out


def ensure_sysctls(exec_: Exec, values: Mapping[str, str]) -> None:
    done = exec_(["sysctl", "-w", *(f"{k}={v}" for k, v in values.items())])
    if done.returncode != 0:
        raise ApplyError(f"sysctl -w failed: {done.stderr.strip()[:500]}")
