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

from netemu.api import errors
from netemu.client import ApiClient, paths
from netemu.controllers.cloud import LoadBalancerController
from netemu.controllers.daemonset import DaemonSetController
from netemu.controllers.deployment import DeploymentController
from netemu.controllers.endpoints_loop import EndpointSliceController
from netemu.controllers.events import Recorder
from netemu.controllers.gc import GarbageCollector
from netemu.controllers.job import JobController
from netemu.controllers.namespace import NamespaceController
from netemu.controllers.nodeipam import NodeIpamController
from netemu.controllers.nodelifecycle import NodeLifecycleController
from netemu.controllers.options import Settings
from netemu.controllers.podgc import PodGCController
from netemu.controllers.replicaset import ReplicaSetController
from netemu.controllers.runtime import Controller, Informers, rt
from netemu.controllers.scheduler.loop import Scheduler
from netemu.controllers.serviceaccount import ServiceAccountController
from netemu.controllers.statefulset import StatefulSetController

log = logging.getLogger(__name__)

CONTROLLERS: dict[str, Type[Controller]] = {
    "scheduler": Scheduler, "deployment": DeploymentController, "replicaset": ReplicaSetController,
    "statefulset": StatefulSetController,
    "daemonset": DaemonSetController, "job": JobController,
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
    agent = "kube-controller-manager/netemu"     # upstream's product name: its managedFields manager
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


TOKEN_SECONDS = 365 * 24 * 3600
SA_KIND, NS = rt("ServiceAccount"), "kube-system"


async def account_client(manager: ApiClient, account: str, agent: str) -> ApiClient:
    """A client that acts as the kube-system ServiceAccount ``account`` (made if missing), with a
    token the manager requests for it: upstream's SAControllerClientBuilder, which kubeadm turns
    on with --use-service-account-credentials."""
    try:
        await manager.create(SA_KIND, {"metadata": {"name": account, "namespace": NS}}, NS)
    except errors.AlreadyExists:
        pass
    answer = await manager.request("POST", paths.resource_path(SA_KIND, NS, account, "token"), body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": TOKEN_SECONDS}})
    return manager.with_token(answer["status"]["token"], user_agent=f"{agent}/{account}")


async def controller_clients(manager: ApiClient, loops: list[Controller], settings: Settings) -> list[ApiClient]:
    """Give each loop its own identity; returns the clients made (to close)."""
    made: dict[str, ApiClient] = {}

    async def client_for(account: str) -> ApiClient:
        if account not in made:
            made[account] = await account_client(manager, account, "kube-controller-manager")
        return made[account]
    extra: list[ApiClient] = []
    for ctrl in loops:
        if ctrl.name == "scheduler" and settings.scheduler_kubeconfig:
            ctrl.client = ApiClient.from_kubeconfig(settings.scheduler_kubeconfig, user_agent="kube-scheduler/netemu")
            extra.append(ctrl.client)
        if not settings.use_service_account_credentials:
            continue
        if ctrl.service_account:
            ctrl.client = await client_for(ctrl.service_account)
        for attr, account in ctrl.other_accounts.items():
            setattr(ctrl, attr, await client_for(account))
    return list(made.values()) + extra


async def run_controllers(server: str, token: str, stop: asyncio.Event, settings: Settings | None = None) -> None:
    """Run every enabled loop until ``stop`` is set."""
    settings = settings or Settings()
    client = make_client(server, token, settings)
    informers = Informers(client)
    recorder = Recorder(client)
    loops = [CONTROLLERS[name](client, informers, settings, recorder) for name in settings.controllers]
    own: list[ApiClient] = []
    while not stop.is_set():
        try:
            own = await controller_clients(client, loops, settings)
            break
        except (errors.StatusError, OSError, asyncio.TimeoutError) as exc:
            log.warning("controller identities not ready (%s); retrying", exc)
            await asyncio.sleep(1.0)
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
        for c in own:
            await c.close()
        await client.close()
