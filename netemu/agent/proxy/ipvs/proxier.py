"""The IPVS Proxier (kubernetes v1.32 pkg/proxy/ipvs/proxier.go, its syncProxyRules' effects).

A full sync (the first, after a failure, once per ``full_sync_period``) reads the node's
addresses, plans every Service port and makes the kernel hold exactly that plan (apply.py reads
the kernel and sends the differences, removing what a previous run left). A partial sync
re-plans the changed Services (cache.py) and sends only what their new plans change, against the
applier's mirror of the kernel: a one-Service change is a handful of netlink requests, maybe one
``ipset restore``, and an ``iptables-restore`` only if the fixed chains' text changed.

Before anything is changed, ``make_proxier`` checks that the kernel has IPVS and the host the
``ipset`` tool: a machine without them gets one line saying so (modes.ModeUnavailable), not a
half-programmed node. The first sync sets upstream's sysctls and creates kube-ipvs0. Real servers
that leave drain (graceful.py): weight 0 at once, deleted when idle, checked after each sync and
every ``graceful_interval`` seconds by a thread sync_loop() starts. UDP conntrack entries of
removed endpoints are deleted after each sync, as upstream does.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from netemu.agent.proxy.commands import Exec, local_exec, netns_of
from netemu.agent.proxy.conntrack import CleanupBacklog, Conntrack
from netemu.agent.proxy.metrics import ProxyMetrics
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.agent.proxy.modes import ModeUnavailable
from netemu.agent.proxy.proxier import Proxier, SyncResult
from netemu.agent.proxy.runner import BoundedFrequencyRunner
from netemu.agent.proxy.tracker import UpdateEndpointsMapResult, UpdateServiceMapResult
from netemu.agent.proxy.xtables.apply import Iptables

from .apply import Applier, Stats, ensure_sysctls, sysctls
from .cache import PlanCache
from .graceful import CHECK_INTERVAL, DEFAULT_TIMEOUT, Draining
from .kernel import Kernel, KernelMissing
from .planner import NodeContext, node_context
from .rules import jump_rules
from .state import DEFAULT_SCHEDULER

# patterns compiled at import (in the launcher template), not in each process that first uses them
_HMS = re.compile(r"((\d+)h)?((\d+)m)?((\d+)s)?")

log = logging.getLogger(__name__)
LABVM = "run the IPVS mode in the lab VM (scripts/labvm, docs/labvm.md)"


class IpvsProxier(Proxier):
    """IPVS mode: virtual servers by netlink, sets by one ipset restore, fixed iptables chains."""

    def __init__(self, node: NodeInfo, config: ProxyConfig | None = None, *, kernel: Kernel,
                 exec_: Exec = local_exec, scheduler: str = DEFAULT_SCHEDULER, strict_arp: bool = False,
                 exclude_cidrs: tuple[str, ...] = (), timeouts: tuple[int, int, int] = (0, 0, 0),
                 backend: str = "auto", graceful_timeout: float = DEFAULT_TIMEOUT,
                 graceful_interval: float = CHECK_INTERVAL, **kwargs):
        kwargs.setdefault("metrics", ProxyMetrics("ipvs"))
        super().__init__(node, config, **kwargs)
        self.kernel = kernel
        self.exec = exec_
        self.scheduler = scheduler
        self.strict_arp = strict_arp
        self.timeouts = timeouts        # IPVS tcp, tcpfin, udp timeouts in seconds (0: the kernel's)
        self.iptables = Iptables(backend, exec_)
        self.draining = Draining(graceful_timeout, self.clock)
        self.applier = Applier(kernel, exec_, self.iptables, node, draining=self.draining, exclude_cidrs=exclude_cidrs)
        self.cache = PlanCache()
        self.conntrack = Conntrack(exec_)
        self.context: NodeContext | None = None
        self.last_stats: Stats | None = None
        self._prepared = False
        self._cleanup = CleanupBacklog()
        self.graceful_interval = graceful_interval
        self._drainer: threading.Thread | None = None
        self._drainer_stop = threading.Event()

    @property
    def backend(self) -> str:
        return self.iptables.backend

    # -- the loop ------------------------------------------------------------------------------
    def sync_loop(self) -> BoundedFrequencyRunner:
        runner = super().sync_loop()
        if self._drainer is None:
            self._drainer_stop.clear()
            self._drainer = threading.Thread(target=self._drain_loop, name=f"ipvs-drain-{self.node.name}",
                                             daemon=True)
            self._drainer.start()
        return runner

    def stop(self) -> None:
        if self._drainer is not None:
            self._drainer_stop.set()
            self._drainer.join(timeout=10)
            self._drainer = None
        super().stop()

    def _drain_loop(self) -> None:
        while not self._drainer_stop.wait(self.graceful_interval):
            self.drain()

    def drain(self) -> int:
        """Delete the draining real servers that are idle or out of time (upstream's minutely check)."""
        with self._sync_lock:
            if self.applier.mirror is None:
                return 0
            try:
                return self.applier.drain()
            except Exception:       # the next sync is full and reads the kernel again
                log.exception("deleting drained real servers failed")
                self.need_full_sync = True
                return 0

    # -- one sync ------------------------------------------------------------------------------
    def _sync_rules(self, full: bool, changed: frozenset, services: UpdateServiceMapResult,
                    endpoints: UpdateEndpointsMapResult) -> SyncResult:
        self._cleanup.add(services, endpoints)
        ipv6 = self.node.ip_family == "IPv6"
        t0 = self.clock()
        if not self._prepared:      # upstream NewProxier + EnsureDummyDevice, once
            ensure_sysctls(self.exec, sysctls(self.strict_arp))
            if any(self.timeouts):
                self.kernel.set_timeouts(*self.timeouts)
            self._prepared = True
        if full or self.applier.mirror is None or self.context is None:
            self.kernel.ensure_dummy()
            self.context = node_context(self.node, self.config, self.kernel.node_addresses(), self.scheduler)
            self.cache.refresh(self.service_map, self.endpoints_map, self.context, self.config)
            plan = self.cache.plan(ipv6)
            t1 = self.clock()
            stats = self.applier.apply_full(plan, jump_rules())
            full = True
        else:
            delta = self.cache.refresh(self.service_map, self.endpoints_map, self.context, self.config, changed,
                                       ports=services.service_ports)
            t1 = self.clock()
            stats = self.applier.apply_delta(delta)
        t2 = self.clock()
        self.last_stats = stats
        plan_counts = self._counts()
        for policy, n in self.cache.no_local_counts().items():
            self.metrics.no_local_endpoints.labels(traffic_policy=policy).set(n)
        cleanup = self._cleanup.take(self.service_map, self.config.conntrack_cleanup)
        self.conntrack.run(cleanup)
        return SyncResult(ok=True, full=full, changed=changed, build_seconds=t1 - t0, apply_seconds=t2 - t1,
                          conntrack_commands=len(cleanup), rules=plan_counts)

    def _counts(self) -> dict[str, int]:
        m = self.applier.mirror
        return {"virtual_servers": len(m.services), "real_servers": m.real_count,
                "ipset_entries": sum(len(e) for e in m.ipsets.values())} if m else {}


def open_kernel(netns: str | None) -> Kernel:
    """The node's kernel over netlink; ModeUnavailable (one line) when it has no IPVS."""
    from .kernel import NetlinkKernel

    try:
        return NetlinkKernel(netns)
    except KernelMissing as exc:
        raise ModeUnavailable(f"proxy mode ipvs: {exc}; {LABVM}") from None


def check_tools(exec_: Exec) -> None:
    """The ipset tool the mode's sets are written with (upstream checks its version too)."""
    try:
        done = exec_(["ipset", "--version"])
    except FileNotFoundError:
        done = None
    if done is None or done.returncode != 0:
        raise ModeUnavailable("proxy mode ipvs: the ipset tool is not installed (apt-get install ipset); "
                              f"or {LABVM}")


def make_proxier(node: NodeInfo, config: ProxyConfig, *, exec_: Exec = local_exec,
                 ipvs_scheduler: str = DEFAULT_SCHEDULER, nodeport_addresses: Any = None,
                 ipvs_strict_arp: bool = False, ipvs_exclude_cidrs: Any = None, ipvs_tcp_timeout: str | None = None,
                 ipvs_tcpfin_timeout: str | None = None, ipvs_udp_timeout: str | None = None,
                 kernel: Kernel | None = None, **kwargs) -> IpvsProxier:
    """The registry's proxier hook: checks its flags, then the kernel and tools (nothing is changed
    when they are missing), then the proxier. ValueError for a bad flag value."""
    from . import cidrs, nodeport_config

    config = nodeport_config(config, nodeport_addresses)
    exclude = cidrs(ipvs_exclude_cidrs or (), "--ipvs-exclude-cidrs")
    timeouts = tuple(duration(v, f"--ipvs-{n}-timeout") for n, v in
                     (("tcp", ipvs_tcp_timeout), ("tcpfin", ipvs_tcpfin_timeout), ("udp", ipvs_udp_timeout)))
    if kernel is None:
        kernel = open_kernel(netns_of(exec_))
        check_tools(exec_)
    return IpvsProxier(node, config, kernel=kernel, exec_=exec_, scheduler=ipvs_scheduler, strict_arp=ipvs_strict_arp,
                       exclude_cidrs=exclude, timeouts=timeouts, **kwargs)


_UNITS = {"h": 3600, "m": 60, "s": 1}


def duration(value: str | None, flag: str) -> int:
    """A Go-style duration ("900s", "1m30s", "0s") or plain seconds -> whole seconds (None: 0)."""
    if value is None or value == "":
        return 0
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    parts = _HMS.fullmatch(text)
    if not parts or not any(parts.groups()):
        raise ValueError(f"{flag} {value!r} is not a duration (like 900s or 15m)")
    return sum(int(parts.group(i)) * _UNITS[u] for i, u in ((2, "h"), (4, "m"), (6, "s")) if parts.group(i))
