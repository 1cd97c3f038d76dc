"""The nftables Proxier (kubernetes v1.32 pkg/proxy/nftables/proxier.go, syncProxyRules' effects).

A sync asks the planner (transaction.py) for this sync's transactions -- stale chains deleted
first in their own transaction, then ONE transaction with the fixed table and every Service
(full sync: the first, after a failure, once per ``full_sync_period``, or after the monitor saw
the table deleted) or with only the changed Services' chains and map elements (partial) --
runs them through the applier and, once the kernel has them, deletes the UDP conntrack entries
that would keep clients on removed endpoints.

Before the first transaction the proxier checks that this system can run the mode
(apply.Nft.preflight: nft's version and every kind of statement the mode writes, checked by the
kernel with nothing applied): a system that cannot gets one clear error naming what is missing,
and nothing of the table is half-applied. A failed transaction changes nothing in the kernel;
the planner keeps its state and the next sync is full, as upstream.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable

from netemu.agent.proxy.commands import Exec, local_exec
from netemu.agent.proxy.conntrack import Conntrack, plan_cleanup
from netemu.agent.proxy.metrics import ProxyMetrics
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.agent.proxy.proxier import Proxier, SyncResult
from netemu.agent.proxy.runner import BoundedFrequencyRunner
from netemu.agent.proxy.tracker import UpdateEndpointsMapResult, UpdateServiceMapResult

from .apply import Nft, NftApplyError, NftUnsupported
from .builder import make_context
from .monitor import TableMonitor
from .setup import fixed_rule_count
from .transaction import Planner

log = logging.getLogger(__name__)


class NftablesProxier(Proxier):
    """nftables mode: one transaction per sync, stale chains deleted later, a table monitor."""

    def __init__(self, node: NodeInfo, config: ProxyConfig | None = None, *, exec_: Exec = local_exec,
                 backend: str = "auto", service_cidrs: Iterable[str] = (), monitor_table: bool = True,
                 wall_clock=time.monotonic, **kwargs):
        kwargs.setdefault("metrics", ProxyMetrics("nftables"))
        super().__init__(node, config, **kwargs)
        family = "ip6" if node.ip_family == "IPv6" else "ip"
        self.nft = Nft(exec_, backend, family)
        self.conntrack = Conntrack(exec_)
        self.planner = Planner()
        self.service_cidrs = tuple(service_cidrs)
        self.wall_clock = wall_clock
        self.checked = False
        self.last_plan = None
        self._cleanup_backlog: list[tuple[UpdateServiceMapResult, UpdateEndpointsMapResult]] = []
        self.monitor = TableMonitor(self.nft)
        self.monitor_table = monitor_table

    @property
    def backend(self) -> str:
        return self.nft.backend

    def set_service_cidrs(self, cidrs: Iterable[str]) -> None:
        """Upstream OnServiceCIDRsChanged: the drop rule for unallocated ClusterIPs is part of
        the fixed table, so a change takes a full sync."""
        cidrs = tuple(cidrs)
        if cidrs != self.service_cidrs:
            self.service_cidrs = cidrs
            self.need_full_sync = True
            self.request_sync()

    # ---- the loop ------------------------------------------------------------------------

    def sync_loop(self) -> BoundedFrequencyRunner:
        runner = super().sync_loop()
        if self.monitor_table:
            self.start_monitor(self.monitor.run, "nftables-monitor")
        return runner

    def _sync_rules(self, full: bool, changed: frozenset, services: UpdateServiceMapResult,
                    endpoints: UpdateEndpointsMapResult) -> SyncResult:
        if not self.checked:
            self.nft.preflight()          # NftUnsupported: the sync fails with that message
            self.checked = True
        self._cleanup_backlog.append((services, endpoints))
        ctx = make_context(self.node, self.config, service_cidrs=self.service_cidrs)
        listed = self.nft.names() if full else (None, None)
        t0 = self.clock()
        plan = self.planner.plan(self.service_map, self.endpoints_map, ctx, full=full, changed=changed,
                                 now=self.wall_clock(), kernel_chains=listed[0], kernel_sets=listed[1],
                                 ports=services.service_ports)
        t1 = self.clock()
        deleted_ok = True
        if plan.delete_text:
            try:
                self.nft.run(plan.delete_text)
            except NftApplyError as exc:
                deleted_ok = False    # they stay stale; a later sync finds them again
                self.metrics.nftables_cleanup_failures.inc()
                log.warning("could not delete stale nftables chains, will retry: %s", exc)
        try:
            self.nft.run(plan.text)
        except Exception:
            self.planner.failed(plan, deleted_ok=deleted_ok)
            raise
        if not deleted_ok:
            plan.state.chains |= set(plan.deleted_chains)
        self.planner.commit(plan)
        self.monitor.armed = True
        self.last_plan = plan
        t2 = self.clock()
        for policy, n in plan.no_local.items():
            self.metrics.no_local_endpoints.labels(traffic_policy=policy).set(n)
        conntrack = self._conntrack_plan()
        self.conntrack.run(conntrack)
        rules = fixed_rule_count(ctx) + sum(p.rule_count for p in plan.state.parts.values())
        return SyncResult(ok=True, full=full, changed=changed, build_seconds=t1 - t0, apply_seconds=t2 - t1,
                          conntrack_commands=len(conntrack),
                          rules={"rules": rules, "chains": len(plan.state.chains), "elements": len(plan.state.elements),
                                 "operations": plan.operations})

    def _conntrack_plan(self) -> list[list[str]]:
        plan: list[list[str]] = []
        for services, endpoints in self._cleanup_backlog:
            for argv in plan_cleanup(self.service_map, services, endpoints):
                if argv not in plan:
                    plan.append(argv)
        self._cleanup_backlog.clear()
        return plan if self.config.conntrack_cleanup else []      # --no-conntrack-cleanup: nothing


def make_proxier(node: NodeInfo, config: ProxyConfig, *, exec_: Exec = local_exec,
                 nodeport_addresses: Iterable[str] | None = None, service_cidr: Iterable[str] | None = None,
                 nft_backend: str = "auto", **kwargs: Any) -> NftablesProxier:
    """The registry's proxier hook (``--nodeport-addresses``, ``--nft-backend``); the Service
    CIDRs are the cluster's (``config.service_cidrs``) unless ``service_cidr`` names others."""
    from . import check_cidrs, nodeport_config

    config = nodeport_config(config, node, nodeport_addresses)
    cidrs = check_cidrs(service_cidr if service_cidr is not None else config.service_cidrs, "--service-cidr")
    return NftablesProxier(node, config, exec_=exec_, backend=nft_backend, service_cidrs=cidrs, **kwargs)


__all__ = ["NftablesProxier", "make_proxier", "NftUnsupported"]
