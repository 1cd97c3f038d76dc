"""Runs the scheduler, the controllers and the cloud controller in one process, on one client.

``run_controllers(server, token, stop, settings)`` is what ``netemu apiserver`` starts next to
the API server: shared informers (one list+watch per resource), one Event recorder, each enabled
loop as a task; a loop that crashes is logged and restarted, the others keep going.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import logging
from typing import Type
from urllib.parse import urlparse

from netemu.client import ApiClient
from netemu.controllers.cloud import LoadBalancerController
from netemu.controllers.deployment import DeploymentController
from netemu.controllers.endpoints_loop import EndpointSliceController
from netemu.controllers.events import Recorder
from netemu.controllers.gc import GarbageCollector
from netemu.controllers.namespace import NamespaceController
from netemu.controllers.nodeipam import NodeIpamController
from netemu.controllers.nodelifecycle import NodeLifecycleController
from netemu.controllers.options import Settings
from netemu.controllers.podgc import PodGCController
from netemu.controllers.replicaset import ReplicaSetController
from netemu.controllers.runtime import Controller, Informers
from netemu.controllers.scheduler.loop import Scheduler
from netemu.controllers.serviceaccount import ServiceAccountController

log = logging.getLogger(__name__)

CONTROLLERS: dict[str, Type[Controller]] = {
    "scheduler": Scheduler, "deployment": DeploymentController, "replicaset": ReplicaSetController,
    "endpointslice": EndpointSliceController, "nodelifecycle": NodeLifecycleController,
    "namespace": NamespaceController, "garbagecollector": GarbageCollector,
    "serviceaccount": ServiceAccountController, "nodeipam": NodeIpamController,
    "cloud-lb": LoadBalancerController, "podgc": PodGCController,
}


def _is_loopback(server: str) -> bool:
    host = urlparse(server).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_client(server: str, token: str, settings: Settings) -> ApiClient:
    """With a kubeconfig: its CA. Without one, an https server on loopback is this very process
    (``netemu apiserver`` starts us next to itself), so its self-signed certificate is accepted;
    any other https server must come with a kubeconfig."""
    agent = "netemu-controller-manager"
    if settings.kubeconfig and os.path.exists(settings.kubeconfig):
        return ApiClient.from_kubeconfig(settings.kubeconfig, user_agent=agent)
    insecure = server.startswith("https://") and _is_loopback(server)
    return ApiClient(server, token, insecure=insecure, user_agent=agent)


async def _supervise(ctrl: Controller, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await ctrl.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s crashed; restarting in 1s", ctrl.name)
            await asyncio.sleep(1.0)


async def run_controllers(server: str, token: str, stop: asyncio.Event, settings: Settings | None = None) -> None:
    """Run every enabled loop until ``stop`` is set."""
    settings = settings or Settings()
    client = make_client(server, token, settings)
    informers = Informers(client)
    recorder = Recorder(client)
    loops = [CONTROLLERS[name](client, informers, settings, recorder) for name in settings.controllers]
    for ctrl in loops:
        ctrl.setup()
        for kind in ctrl.kinds:
            informers[kind]  # noqa: B018 - create the shared informer
    tasks = informers.start(stop) + [asyncio.ensure_future(_supervise(c, stop)) for c in loops]
    try:
        await stop.wait()
    finally:
        await recorder.flush()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
