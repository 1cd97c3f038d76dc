"""The provider load balancer's controller: what cloud-controller-manager's service controller
and the cloud's LB data plane do together, for the LB host of the edge (edge.py).

It watches Services and Nodes through the API, health-checks every target from the LB host
(health.py) each interval, and whenever the listeners (lbplan.py) change, replaces the LB host's
nftables table in one transaction (``nft -f`` in its namespace). Established connections keep
their node (conntrack); only new ones follow a change.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from typing import Callable

from netemu.api.kinds import by_kind
from netemu.emulator.cloud.edge import Edge
from netemu.emulator.cloud.health import HealthChecker, HealthSettings
from netemu.emulator.cloud.lbplan import listeners, node_targets, render, status_doc

log = logging.getLogger(__name__)
SERVICE, NODE = by_kind("v1", "Service"), by_kind("v1", "Node")


def apply_nft(netns: str, text: str) -> None:
    proc = subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nft -f in {netns}: {proc.stderr.strip()}")


class LoadBalancers:
    def __init__(self, api, edge: Edge, settings: HealthSettings = HealthSettings(), apply=apply_nft,
                 report: Callable[[dict], None] | None = None):
        """``report``: called with status_doc after every round (the supervisor writes it to
        the state dir's loadbalancer.json)."""
        from netemu.client import Informer
        self.edge, self.apply, self.report = edge, apply, report
        self.error: str | None = None
        self.current: list = []            # the listeners the kernel runs (the last table applied)
        self.services = Informer(api, SERVICE)
        self.nodes = Informer(api, NODE)
        self.health = HealthChecker(edge.netns, settings)
        self.changed = asyncio.Event()
        self.applied: str | None = None
        for inf in (self.services, self.nodes):
            inf.add_handler(lambda o: self.changed.set(), lambda o, n: self.changed.set(), lambda o: self.changed.set())

    def _lb_services(self) -> list[dict]:
        return [s for s in self.services.list() if (s.get("spec") or {}).get("type") == "LoadBalancer"]

    def wanted_checks(self) -> dict:
        """{(service, node IP, port): http?} for every target of every LoadBalancer Service."""
        targets = node_targets(self.nodes.list())
        wanted = {}
        for lis in listeners(self._lb_services(), self.nodes.list(), lambda *_: True):
            if lis.health_port is None:
                continue
            for t in targets:
                wanted[(lis.service, t.ip, lis.health_port)] = lis.local
        return wanted

    def sync(self) -> None:
        now = listeners(self._lb_services(), self.nodes.list(),
                        lambda svc, target, port: self.health.healthy(svc, target.ip, port))
        text = render(now)
        if text != self.applied:
            try:
                self.apply(self.edge.netns, text)
            except RuntimeError as exc:        # logged, tried again next round
                self.applied, self.error = None, str(exc)
                log.error("%s", exc)
            else:
                self.applied, self.error, self.current = text, None, now
                log.info("load balancer rules updated (%d lines)", text.count("\n"))
        if self.report is not None:
            self.report(status_doc(self.current, node_targets(self.nodes.list()), self.health.undecided(),
                                   time.time(), self.error))

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.ensure_future(i.run(stop)) for i in (self.services, self.nodes)]
        try:
            await asyncio.gather(self.services.wait_synced(), self.nodes.wait_synced())
            while not stop.is_set():
                self.changed.clear()
                await self.health.check(self.wanted_checks())
                self.sync()
                waits = [asyncio.ensure_future(e.wait()) for e in (stop, self.changed)]
                await asyncio.wait(waits, timeout=self.health.settings.interval, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
