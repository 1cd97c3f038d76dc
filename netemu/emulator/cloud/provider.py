"""The cloud's controllers, run by the supervisor on a thread of their own (the supervisor is
the cloud: it knows which node hosts exist): the cloud node-lifecycle controller always, the
provider load balancer (lb.py) when the cluster has an edge. ``start``/``stop`` from the
supervisor's thread; everything else runs on this thread's asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Callable

from netemu.emulator.cloud.edge import Edge
from netemu.emulator.cloud.health import HealthSettings

log = logging.getLogger(__name__)


class CloudProvider:
    def __init__(self, kubeconfig: str, instances: Callable[[], set[str]], edge: Edge | None = None,
                 health: HealthSettings = HealthSettings(), report: Callable[[dict], None] | None = None):
        """``report``: the provider LB's status after each round (lb.LoadBalancers)."""
        self.kubeconfig, self.instances, self.edge, self.health = kubeconfig, instances, edge, health
        self.report = report
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.ready = threading.Event()

    def start(self) -> None:
        self.thread = threading.Thread(target=self._main, name="cloud-provider", daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception:  # the cloud failing must not take the cluster down: say so in the log
            log.exception("the cloud provider stopped")

    async def _run(self) -> None:
        from netemu.client import ApiClient
        from netemu.emulator.cloud.lb import LoadBalancers
        from netemu.emulator.cloud.nodes import CloudNodeLifecycle

        self.loop, self.stop_event = asyncio.get_running_loop(), asyncio.Event()
        self.ready.set()
        async with ApiClient.from_kubeconfig(self.kubeconfig, user_agent="netemu-cloud-controller-manager") as api:
            jobs = [CloudNodeLifecycle(api, self.instances).run(self.stop_event)]
            if self.edge is not None:
                jobs.append(LoadBalancers(api, self.edge, self.health, report=self.report).run(self.stop_event))
            await asyncio.gather(*jobs)

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is not None and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        if self.thread is not None:
            self.thread.join(timeout)
