"""The iptables Proxier (kubernetes v1.32 pkg/proxy/iptables/proxier.go, its syncProxyRules' effects).

A sync builds the rules (builder.py; partial: only the changed Services' chains plus the
top-level chains, KEP-3453; full: everything, after a failure or once per ``full_sync_period``),
applies them with ONE ``iptables-restore --noflush --counters`` and, once the kernel has the new
rules, deletes the UDP conntrack entries that would keep clients on removed endpoints.

Partial syncs also leave out the chains whose rules did not change (upstream rewrites all
top-level chains and every chain of a changed Service each time; the kernel ends up the same,
the restore is smaller, only the untouched chains' packet counters are not reset): they restore
the builder's ``minimal_delta``, which the BuildCache the proxier keeps across syncs knows
(invalidated by a failed restore and before every full sync); when nothing differs (an
endpoint that is not ready yet changes no rule) no iptables-restore runs at all. A pod turning
Ready in a Service of 1000 endpoints now restores its KUBE-SVC chain and one KUBE-SEP chain
instead of 1000 KUBE-SEP chains. A build without a delta (an injected builder, or the cache
starting over) is restored whole, as upstream does.
Missing jump rules from the built-in chains (checked on full syncs, like upstream) travel in
that same restore as ``-I`` lines, so rules and jumps appear together.

A failed restore changes nothing in the kernel (the restore is atomic), but the changes it
carried were already folded into the maps, so the next sync must be full. Unlike upstream we
also keep the failed sync's conntrack cleanup and run it after the next successful sync, so a
failure never leaves a UDP blackhole behind.

Like upstream, sync_loop() also starts the canary monitor (canary.py): empty
KUBE-PROXY-CANARY chains whose disappearance means someone flushed iptables: full resync.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from netemu.agent.proxy.commands import Exec, local_exec
from netemu.agent.proxy.conntrack import CleanupBacklog, Conntrack
from netemu.agent.proxy.xtables.apply import Iptables, add_jumps
from netemu.agent.proxy.iptables.builder import EMPTY_RESTORE, BuildCache, build as iptables_build, minimal_delta
from netemu.agent.proxy.iptables.canary import CanaryMonitor
from netemu.agent.proxy.iptables.chains import jump_rules
from netemu.agent.proxy.xtables.dump import chain_names
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.agent.proxy.proxier import Proxier, SyncResult
from netemu.agent.proxy.runner import BoundedFrequencyRunner
from netemu.agent.proxy.tracker import UpdateEndpointsMapResult, UpdateServiceMapResult

log = logging.getLogger(__name__)


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
        self.trim_unchanged = trim_unchanged  # False: rewrite top-level chains every sync, as upstream
        self._cleanup_backlog = CleanupBacklog()
        # upstream's ipt.Monitor: KUBE-PROXY-CANARY in mangle/nat/filter, polled every sync_period
        # by a thread sync_loop() starts; a vanished canary means a flush: full resync
        self.canary = CanaryMonitor(self.iptables)
        self.monitor_canaries = monitor_canaries

    @property
    def backend(self) -> str:
        return self.iptables.backend

    def sync_loop(self) -> BoundedFrequencyRunner:
        runner = super().sync_loop()
        if self.monitor_canaries:
            self.start_monitor(self.canary.run, "iptables-monitor")
        return runner

    def _sync_rules(self, full: bool, changed: frozenset, services: UpdateServiceMapResult,
                    endpoints: UpdateEndpointsMapResult) -> SyncResult:
        self._cleanup_backlog.add(services, endpoints)
        saved = None
        if self.previous_chains is None:  # first sync: what a previous run may have left
            saved = self._kernel_tables()
            self.previous_chains = {"nat": chain_names(saved.get("nat", "")).get("nat", frozenset())}
        t0 = self.clock()
        try:
            ruleset, text = self._build(full, changed, saved)
            t1 = self.clock()
            if text != EMPTY_RESTORE:     # nothing differs from the kernel: no process to spawn
                self.iptables.restore(text)
        except Exception:
            if self.cache is not None:   # the kernel does not hold what the cache last built
                self.cache.invalidate()
            raise
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

    def _build(self, full: bool, changed: frozenset, saved: dict[str, str] | None) -> tuple[Any, str]:
        """The RuleSet and the text to restore: on full syncs everything plus missing jumps; on
        partial ones only what differs from the kernel (the builder's delta) when it knows."""
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
            text, leftovers = add_jumps(text, self.iptables.missing_jumps(jump_rules(), saved))
            self.iptables.ensure_jumps(leftovers)
        elif self.trim_unchanged and getattr(ruleset, "delta", None) is not None:
            text = minimal_delta(ruleset)
        return ruleset, text

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
        return self._cleanup_backlog.take(self.service_map, self.config.conntrack_cleanup)



def make_proxier(node: NodeInfo, config: ProxyConfig, *, exec_: Exec = local_exec,
                 iptables_backend: str = "auto", **kwargs) -> IptablesProxier:
    """The registry's proxier hook (``--iptables-backend``: auto/iptables, nft or legacy)."""
    return IptablesProxier(node, config, backend=iptables_backend, exec_=exec_, **kwargs)
