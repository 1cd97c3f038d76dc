"""Feed a Proxier from an API server: Service and EndpointSlice informers into its handlers.

The one wiring both `netemu proxy run` and the node agent use: list + watch both kinds through
cmd/kube-proxy's label selector (no service-proxy-name, no headless label: the API server filters,
and a label added later reaches the proxier as a deletion), tell the proxier when each is synced (it does not sync before both are, like upstream), then start its
sync loop and keep the informers running until ``stop``.
"""

from __future__ import annotations

import asyncio
import logging

from netemu.agent.proxy.healthcheck import ServiceHealthServer
from netemu.agent.proxy.leftovers import PROXY_MODE_ANNOTATION
from netemu.agent.proxy.model import PROXY_LABEL_SELECTOR
from netemu.api import errors
from netemu.api.kinds import by_kind
from netemu.client import ApiClient, Informer

log = logging.getLogger(__name__)


async def announce_mode(api: ApiClient, node: str, mode: str, stop: asyncio.Event, retry: float = 1.0) -> bool:
    """Write ``mode`` into the Node's PROXY_MODE_ANNOTATION (netemu status and kubectl show which
    mode each node runs); the kubelet may still be registering the Node, so retry until it is
    there or ``stop``. True once written."""
    while not stop.is_set():
        try:
            await api.patch(by_kind("v1", "Node"), node, {"metadata": {"annotations": {PROXY_MODE_ANNOTATION: mode}}})
            return True
        except errors.NotFound:
            pass
        except Exception as exc:          # an API hiccup: the annotation is informational
            log.info("could not annotate node %s with its proxy mode yet: %s", node, exc)
        try:
            await asyncio.wait_for(stop.wait(), retry)
        except asyncio.TimeoutError:
            pass
    return False


async def feed_proxier(api: ApiClient, proxier, stop: asyncio.Event, mode: str | None = None) -> None:
    """Run until ``stop`` is set; on an error the informers end too (``stop`` itself is the
    caller's: the agent's other loops keep running). With ``mode``, the Node is annotated with it.
    A live node also serves the health-check node ports of its externalTrafficPolicy=Local load
    balancers (healthcheck.py)."""
    own_health = getattr(proxier, "health", False) is None
    if own_health:
        proxier.health = ServiceHealthServer()
    done = asyncio.Event()
    if mode:
        announcing = asyncio.ensure_future(announce_mode(api, proxier.node.name, mode, done))
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
        await asyncio.gather(*tasks, *([announcing] if mode else []), return_exceptions=True)
        if own_health:
            proxier.health.close()
