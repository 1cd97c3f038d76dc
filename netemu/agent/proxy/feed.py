"""Feed a Proxier from an API server: Service and EndpointSlice informers into its handlers.

The one wiring both `netemu proxy run` and the node agent use: list + watch both kinds through
cmd/kube-proxy's label selector (no service-proxy-name, no headless label: the API server filters,
and a label added later reaches the proxier as a deletion), tell the proxier when each is synced (it does not sync before both are, like upstream), then start its
sync loop and keep the informers running until ``stop``.
"""

from __future__ import annotations

import asyncio
import logging

from netemu.agent.proxy.model import PROXY_LABEL_SELECTOR
from netemu.api.kinds import by_kind
from netemu.client import ApiClient, Informer

log = logging.getLogger(__name__)


async def feed_proxier(api: ApiClient, proxier, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set; on an error the informers end too (``stop`` itself is the
    caller's: the agent's other loops keep running)."""
    done = asyncio.Event()
    services = Informer(api, by_kind("v1", "Service"), label_selector=PROXY_LABEL_SELECTOR)
    slices = Informer(api, by_kind("discovery.k8s.io/v1", "EndpointSlice"), label_selector=PROXY_LABEL_SELECTOR)
    services.add_handler(proxier.on_service_add, proxier.on_service_update, proxier.on_service_delete)
    slices.add_handler(proxier.on_slice_add, proxier.on_slice_update, proxier.on_slice_delete)
    tasks = [asyncio.ensure_future(i.run(done)) for i in (services, slices)]
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await services.wait_synced()
        proxier.on_services_synced()
        await slices.wait_synced()
        proxier.on_slices_synced()
        proxier.sync_loop()
        log.info("kube-proxy informers synced; sync loop running")
        await waiter
    finally:
        waiter.cancel()
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
