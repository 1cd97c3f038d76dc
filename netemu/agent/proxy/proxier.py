"""The Proxier contract every proxy mode implements, and the iptables Proxier.

Upstream shape (pkg/proxy/iptables/proxier.go): informer handlers feed change trackers; a
bounded-frequency runner calls ``sync()``; a sync folds the pending changes into the service and
endpoints maps, builds the rules (partial: only the changed Services' chains plus the top-level
chains, KEP-3453; full: everything, after a failure or once per ``full_sync_period``), applies
them with ONE ``iptables-restore --noflush --counters`` and, once the kernel has the new rules,
deletes the UDP conntrack entries that would keep clients on removed endpoints.

Partial syncs also leave out top-level chains whose rules did not change (upstream rewrites
them every time; the kernel ends up the same, the restore is smaller): the builder's ``delta``,
from the BuildCache the proxier keeps across syncs (invalidated by a failed restore and before
every full sync), or AppliedChains' trim for an injected builder.
Missing jump rules from the built-in chains (checked on full syncs, like upstream) travel in
that same restore as ``-I`` lines, so rules and jumps appear together.

A failed restore changes nothing in the kernel (the restore is atomic), but the changes it
carried were already folded into the maps, so the next sync must be full; it is retried after
``sync_period``. Unlike upstream we also keep the failed sync's conntrack cleanup and run it
after the next successful sync, so a failure never leaves a UDP blackhole behind.

Like upstream, sync_loop() also starts the canary monitor (iptables/canary.py): empty
KUBE-PROXY-CANARY chains whose disappearance means someone flushed iptables: full resync.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from netemu.agent.proxy.conntrack import Conntrack, plan_cleanup
from netemu.agent.proxy.commands import Exec, local_exec
from netemu.agent.proxy.iptables.apply import AppliedChains, Iptables, add_jumps
from netemu.agent.proxy.iptables.builder import BuildCache, build as iptables_build
from netemu.agent.proxy.iptables.canary import CanaryMonitor
from netemu.agent.proxy.iptables.chains import jump_rules
from netemu.agent.proxy.metrics import ProxyMetrics
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.agent.proxy.runner import BoundedFrequencyRunner
from netemu.agent.proxy.tracker import (
    EndpointsChangeTracker,
    EndpointsMap,
    ServiceChangeTracker,
    ServicePortMap,
    UpdateEndpointsMapResult,
    UpdateServiceMapResult,
)

log = logging.getLogger(__name__)

FULL_SYNC_PERIOD = 3600.0  # upstream proxyutil.FullSyncPeriod


@dataclass
class SyncResult:
    """What one sync did: for logs, tests and the benchmark."""

    ok: bool
    full: bool
    skipped: bool = False
    error: str | None = None
    duration: float = 0.0
    build_seconds: float = 0.0
    apply_seconds: float = 0.0
    changed: frozenset = frozenset()
    conntrack_commands: int = 0
    rules: dict[str, int] = field(default_factory=dict)


class Proxier(ABC):
    """Informer handlers + change trackers + the sync loop; a mode implements ``_sync_rules``."""

    def __init__(self, node: NodeInfo, config: ProxyConfig | None = None, *,
                 metrics: ProxyMetrics | None = None, clock: Callable[[], float] = time.monotonic,
                 full_sync_period: float = FULL_SYNC_PERIOD):
        self.node = node
        self.config = config or ProxyConfig()
        self.metrics = metrics or ProxyMetrics()
        self.clock = clock
        self.full_sync_period = full_sync_period
        self.service_changes = ServiceChangeTracker(node)
        self.endpoint_changes = EndpointsChangeTracker(node)
        self.service_map: ServicePortMap = {}
        self.endpoints_map: EndpointsMap = {}
        self.need_full_sync = True
        self.last_full_sync: float | None = None
        self.services_synced = False
        self.slices_synced = False
        self.runner: BoundedFrequencyRunner | None = None
        self._sync_lock = threading.Lock()

    # -- informer handlers (upstream OnServiceAdd/Update/Delete/Synced, OnEndpointSlice*) ---
    def on_service_add(self, service: Mapping[str, Any]) -> None:
        self.on_service_update(None, service)

    def on_service_update(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
        self.metrics.service_changes.inc()
        due = self.service_changes.update(old, new)
        self.metrics.service_changes_pending.set(self.service_changes.pending_count())
        if due and self.initialized:
            self.request_sync()

    def on_service_delete(self, service: Mapping[str, Any]) -> None:
        self.on_service_update(service, None)

    def on_services_synced(self) -> None:
        self.services_synced = True
        if self.initialized:
            self.request_sync()

    def on_slice_add(self, endpoint_slice: Mapping[str, Any]) -> None:
        self.on_slice_update(None, endpoint_slice)

    def on_slice_update(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
        self.metrics.endpoint_changes.inc()
        due = self.endpoint_changes.update(old, new)
        self.metrics.endpoint_changes_pending.set(self.endpoint_changes.pending_count())
        if due and self.initialized:
            self.request_sync()

    def on_slice_delete(self, endpoint_slice: Mapping[str, Any]) -> None:
        self.on_slice_update(endpoint_slice, None)

    def on_slices_synced(self) -> None:
        self.slices_synced = True
        if self.initialized:
            self.request_sync()

    def load(self, services, slices) -> None:
        """Initial list of both kinds (what informers deliver before "synced")."""
        for svc in services:
            self.on_service_add(svc)
        for sl in slices:
            self.on_slice_add(sl)
        self.on_services_synced()
        self.on_slices_synced()

    @property
    def initialized(self) -> bool:
        """Upstream never syncs before both informers listed: half a view deletes live rules."""
        return self.services_synced and self.slices_synced

    # -- the loop ----------------------------------------------------------------------------
    def request_sync(self) -> None:
        """Ask the runner for a sync (no runner: the caller syncs by hand, as tests do)."""
        self.metrics.last_queued_timestamp.set(time.time())
        if self.runner is not None:
            self.runner.run()

    def sync_loop(self) -> BoundedFrequencyRunner:
        """Start the bounded-frequency runner thread (min_sync_period, sync_period, burst 2)."""
        if self.runner is None:
            self.runner = BoundedFrequencyRunner(
                f"sync-runner-{self.node.name}", self._run_once, self.config.min_sync_period,
                self.config.sync_period, burst=2, retry_interval=self.config.sync_period)
            self.runner.start()
            if self.initialized:
                self.runner.run()
        return self.runner

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()
            self.runner = None

    def _run_once(self) -> None:
        result = self.sync()
        if not result.ok and not result.skipped and self.runner is not None:
            self.runner.retry_after(self.config.sync_period)

    def sync(self) -> SyncResult:
        """Fold pending changes, program the kernel, clean conntrack; never raises on bad input."""
        with self._sync_lock:
            if not self.initialized:
                log.info("not syncing: services or endpoint slices not listed yet")
                return SyncResult(ok=False, full=False, skipped=True)
            start = self.clock()
            services = self.service_changes.apply(self.service_map)
            endpoints = self.endpoint_changes.apply(self.endpoints_map)
            self.metrics.service_changes_pending.set(0)
            self.metrics.endpoint_changes_pending.set(0)
            full = self.need_full_sync or self.last_full_sync is None or (
                start - self.last_full_sync >= self.full_sync_period)
            changed = frozenset(services.updated_services | endpoints.updated_services)
            try:
                result = self._sync_rules(full, changed, services, endpoints)
            except Exception as exc:  # a builder bug or a kernel refusal: keep running
                log.exception("sync failed (%s); next sync will be full", "full" if full else "partial")
                result = SyncResult(ok=False, full=full, error=str(exc), changed=changed)
            result.duration = self.clock() - start
            self.metrics.observe_sync(result.duration, full)
            if result.ok:
                self.need_full_sync = False
                if full:
                    self.last_full_sync = start
                self.metrics.last_timestamp.set(time.time())
                self.metrics.observe_programming(endpoints.last_change_trigger_times)
            else:
                self.need_full_sync = True
                self.metrics.restore_failures.inc()
                if not full:
                    self.metrics.partial_restore_failures.inc()
            return result

    @abstractmethod
    def _sync_rules(self, full: bool, changed: frozenset, services: UpdateServiceMapResult,
                    endpoints: UpdateEndpointsMapResult) -> SyncResult:
        """Program the kernel from ``service_map``/``endpoints_map``; return what happened."""


class IptablesProxier(Proxier):
    """iptables mode: one restore per sync, jump rules on full syncs, UDP conntrack cleanup."""

    def __init__(self, node: NodeInfo, config: ProxyConfig | None = None, *, backend: str = "iptables",
                 exec_: Exec = local_exec, build: Callable[..., Any] | None = None,
                 trim_unchanged: bool = True, monitor_canaries: bool = True, **kwargs):
        super().__init__(node, config, **kwargs)
        self.iptables = Iptables(backend, exec_)
        self.conntrack = Conntrack(exec_)
        self.build = build or iptables_build
        # our builder keeps each Service's rules here between syncs (an injected one does not)
        self.cache: BuildCache | None = BuildCache() if build is None else None
        self.previous_chains: Any = None
        self.applied = AppliedChains()      # top-level chains as the kernel holds them
        self.trim_unchanged = trim_unchanged  # False: rewrite them every sync, as upstream does
        self._cleanup_backlog: list[tuple[UpdateServiceMapResult, UpdateEndpointsMapResult]] = []
        # upstream's ipt.Monitor: KUBE-PROXY-CANARY in mangle/nat/filter, polled every sync_period
        # by a thread sync_loop() starts; a vanished canary means a flush: full resync
        self.canary = CanaryMonitor(self.iptables)
        self.monitor_canaries = monitor_canaries
        self._monitor: threading.Thread | None = None
        self._monitor_stop = threading.Event()

    @property
    def backend(self) -> str:
        return self.iptables.backend

    def sync_loop(self) -> BoundedFrequencyRunner:
        runner = super().sync_loop()
        if self.monitor_canaries and self._monitor is None:
            self._monitor_stop.clear()
            self._monitor = threading.Thread(
                target=self.canary.run, args=(self.force_full_sync, self.config.sync_period, self._monitor_stop),
                name=f"iptables-monitor-{self.node.name}", daemon=True)
            self._monitor.start()
        return runner

    def stop(self) -> None:
        if self._monitor is not None:
            self._monitor_stop.set()
            self._monitor.join(timeout=10)
            self._monitor = None
        super().stop()

    def force_full_sync(self) -> None:
        """Upstream forceSyncProxyRules (the canary monitor's reload): the next sync is full."""
        with self._sync_lock:   # not while a sync runs: it would reset the flag when it ends
            self.need_full_sync = True
        if self.runner is not None:
            self.runner.run()
        else:
            self.sync()

    def _sync_rules(self, full: bool, changed: frozenset, services: UpdateServiceMapResult,
                    endpoints: UpdateEndpointsMapResult) -> SyncResult:
        self._cleanup_backlog.append((services, endpoints))
        saved = None
        if self.previous_chains is None:  # first sync: what a previous run may have left
            saved = self._kernel_tables()
            self.previous_chains = {"nat": frozenset(
                line[1:].split()[0] for line in saved.get("nat", "").splitlines()
                if line.startswith(":") and len(line) > 1)}
        t0 = self.clock()
        try:
            ruleset, text, used_delta = self._build(full, changed, saved)
            t1 = self.clock()
            self.iptables.restore(text)
        except Exception:
            self.applied.forget()
            if self.cache is not None:   # the kernel does not hold what the cache last built
                self.cache.invalidate()
            raise
        if used_delta:
            self.applied.forget()         # the cache knows the kernel's top-level chains now
        else:
            self.applied.record(ruleset.text, full)
        t2 = self.clock()
        self.previous_chains = ruleset.chains
        counts = dict(ruleset.rule_counts)
        for table, n in counts.items():
            self.metrics.rules_total.labels(table=table).set(n)
        for table, n in ruleset.written_counts.items():
            self.metrics.rules_last.labels(table=table).set(n)
        for policy, n in ruleset.no_local_endpoints.items():
            self.metrics.no_local_endpoints.labels(traffic_policy=policy).set(n)
        plan = self._conntrack_plan()
        self.conntrack.run(plan)
        return SyncResult(ok=True, full=full, changed=changed, build_seconds=t1 - t0,
                          apply_seconds=t2 - t1, conntrack_commands=len(plan), rules=counts)

    def _build(self, full: bool, changed: frozenset, saved: dict[str, str] | None) -> tuple[Any, str, bool]:
        """The RuleSet, the text to restore and whether it is the builder's delta: on full syncs
        everything plus missing jumps; on partial ones only what differs from the kernel (the
        builder's delta when it has one, else AppliedChains' trim of the text)."""
        kwargs: dict[str, Any] = {}
        if self.cache is not None:
            if full:                      # a full resync re-renders from scratch, as upstream
                self.cache.invalidate()
            kwargs["cache"] = self.cache
        ruleset = self.build(self.service_map, self.endpoints_map, self.node, self.config,
                             changed=None if full else set(changed),
                             previous_chains=self.previous_chains, **kwargs)
        text = ruleset.text
        if full:  # upstream ensures the jumps from built-in chains on full syncs only
            self.applied.forget()
            text, leftovers = add_jumps(text, self.iptables.missing_jumps(jump_rules(), saved))
            self.iptables.ensure_jumps(leftovers)
        elif self.trim_unchanged:
            delta = getattr(ruleset, "delta", None)
            if delta is not None:
                return ruleset, delta, True
            text = self.applied.trim(text)
        return ruleset, text, False

    def _kernel_tables(self) -> dict[str, str]:
        """``iptables-save`` of nat and filter: stale chains to delete, jumps already there."""
        saved = {}
        for table in ("nat", "filter"):
            try:
                saved[table] = self.iptables.save(table)
            except Exception as exc:
                log.warning("iptables-save -t %s failed (stale chains stay, jumps checked one by one): %s",
                            table, exc)
        return saved

    def _conntrack_plan(self) -> list[list[str]]:
        """Cleanup for this sync and any earlier failed ones (their rules are in only now)."""
        plan: list[list[str]] = []
        for services, endpoints in self._cleanup_backlog:
            for argv in plan_cleanup(self.service_map, services, endpoints):
                if argv not in plan:
                    plan.append(argv)
        self._cleanup_backlog.clear()
        return plan

