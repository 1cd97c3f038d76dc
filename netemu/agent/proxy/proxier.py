"""The Proxier contract every proxy mode implements: informer handlers, change trackers, the loop.

Upstream shape (pkg/proxy/iptables/proxier.go and its nftables/ipvs siblings): informer handlers
feed change trackers; a bounded-frequency runner calls ``sync()``; a sync folds the pending
changes into the service and endpoints maps and hands them to the mode's ``_sync_rules``, which
programs the kernel (partial: only what changed, KEP-3453; full: everything, after a failure or
once per ``full_sync_period``) and reports a SyncResult. This module holds no mode: each mode's
package (``iptables/``, ...) subclasses Proxier, and the registry (modes.py) says how to make one.

A failed sync changes nothing in the kernel (a mode applies atomically), but the changes it
carried were already folded into the maps, so the next sync must be full; it is retried after
``sync_period``.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from netemu.agent.proxy.healthcheck import health_check_ports, local_ready_endpoints
from netemu.agent.proxy.metrics import ProxyMetrics
from netemu.agent.proxy.model import NodeInfo, ProxyConfig, seen_by_kube_proxy
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
        self.health = None    # a healthcheck.ServiceHealthServer when serving a live node (feed.py)
        self._sync_lock = threading.Lock()
        self._monitor: threading.Thread | None = None
        self._monitor_stop = threading.Event()

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
        """Initial list of both kinds (what the label-selected informers deliver before "synced")."""
        for svc in seen_by_kube_proxy(services):
            self.on_service_add(svc)
        for sl in seen_by_kube_proxy(slices):
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
        if self._monitor is not None:
            self._monitor_stop.set()
            self._monitor.join(timeout=10)
            self._monitor = None
        if self.runner is not None:
            self.runner.stop()
            self.runner = None
        if self.health is not None:
            self.health.close()

    def start_monitor(self, run: Callable[[Callable[[], None], float, threading.Event], None], name: str) -> None:
        """Start a mode's kernel watcher (iptables: the canaries; nftables: the table) in a
        thread: ``run(reload, interval, stop)`` calls ``reload`` (a full sync) when it sees the
        rules flushed behind our back; ``stop()`` ends it."""
        if self._monitor is None:
            self._monitor_stop.clear()
            self._monitor = threading.Thread(target=run, args=(self.force_full_sync, self.config.sync_period,
                                                               self._monitor_stop),
                                             name=f"{name}-{self.node.name}", daemon=True)
            self._monitor.start()

    def force_full_sync(self) -> None:
        """Upstream forceSyncProxyRules (a monitor's reload): the next sync is full."""
        with self._sync_lock:   # not while a sync runs: it would reset the flag when it ends
            self.need_full_sync = True
        if self.runner is not None:
            self.runner.run()
        else:
            self.sync()

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
                self._sync_health()
                self.metrics.last_timestamp.set(time.time())
                self.metrics.observe_programming(endpoints.last_change_trigger_times)
            else:
                self.need_full_sync = True
                self.metrics.observe_failure(full)
            return result

    def _sync_health(self) -> None:
        """After the rules, as upstream's syncProxyRules: the health-check node ports and their
        counts (a failure here is logged, never a failed sync)."""
        if self.health is None:
            return
        try:
            self.health.sync_services(health_check_ports(self.service_map))
            self.health.sync_endpoints(local_ready_endpoints(self.endpoints_map))
        except Exception:
            log.exception("syncing the service health checks failed")

    @abstractmethod
    def _sync_rules(self, full: bool, changed: frozenset, services: UpdateServiceMapResult,
                    endpoints: UpdateEndpointsMapResult) -> SyncResult:
        """Program the kernel from ``service_map``/``endpoints_map``; return what happened."""
