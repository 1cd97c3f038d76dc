"""Running the control-plane process: store, API server, optional controllers, clean stop.

This sits above the API server, the client and the controllers (it assembles them into one
process, as ``netemu apiserver`` runs it); none of them imports it.

Order matters on the way up (store, allocations rebuilt, bootstrap objects, token, listening
socket, kubeconfig with the real port, then controllers that connect to it) and on the way
down (controllers, watches ended, socket closed, store closed last so no write is lost).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from netemu.apiserver import auth, bootstrap, certs, eventttl, fieldcheck, watch
from netemu.apiserver.app import ApiServer
from netemu.apiserver.registry import Registry, default_hooks
from netemu.apiserver.sa_token import TokenIssuer
from netemu.apiserver.security import ADMIN_USER, Security
from netemu.apiserver.services import ServiceIPs, allocations_for, service_ips
from netemu.client import kubeconfig
from netemu.procmem import shrink_tls_read_buffers, trim_periodically
from netemu.store.factory import open_store

log = logging.getLogger(__name__)


@dataclass
class ServerConfig:
    host: str
    port: int
    store_url: str
    state_dir: Path
    controllers: bool = True
    controller_settings: Any = None
    bookmark_interval: float = 60.0
    advertise_address: str | None = None   # the IP pods reach us at (kubernetes endpoints, cert)
    service_cidr: str = bootstrap.DEFAULT_SERVICE_CIDR
    node_ports: tuple[int, int] = (30000, 32767)
    authorization_mode: str = "RBAC"       # or AlwaysAllow (upstream's --authorization-mode)
    event_ttl: float = eventttl.DEFAULT_TTL     # seconds an Event lives after its last change
    extra: dict[str, Any] = field(default_factory=dict)


# kubeadm's component kubeconfigs in the state dir: file -> (user, groups)
COMPONENT_KUBECONFIGS = {"controller-manager.conf": ("system:kube-controller-manager", ()),
                         "scheduler.conf": ("system:kube-scheduler", ())}


def write_component_kubeconfigs(state_dir: Path, url: str, ca_pem: bytes) -> dict[str, Path]:
    """controller-manager.conf and scheduler.conf: each component's own X.509 identity."""
    out = {}
    for name, (user, groups) in COMPONENT_KUBECONFIGS.items():
        cert, key = certs.issue_client(state_dir, user, groups)
        path = Path(state_dir) / name
        kubeconfig.write(path, kubeconfig.render(url, ca_data=ca_pem, client_cert=cert, client_key=key, user=user))
        out[name] = path
    return out


@dataclass
class Running:
    """What a started server exposes to its caller (tests, the CLI)."""

    url: str
    token: str
    kubeconfig: Path
    api: ApiServer


def client_host(host: str) -> str:
    """The address clients should dial for a listen address (wildcards become loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _url(host: str, port: int) -> str:
    host = client_host(host)
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


async def _start_controllers(config: ServerConfig, url: str, token: str, kubeconfigs: dict[str, Path],
                             stop: asyncio.Event) -> asyncio.Task | None:
    """The controllers in this process, as a task, with kubeadm's component identities:
    controller-manager.conf for the manager (which gives each controller its ServiceAccount's
    token) and scheduler.conf for the scheduler (when their settings take kubeconfigs and name
    none)."""
    if not config.controllers:
        return None
    try:
        from netemu.controllers.manager import run_controllers
    except ImportError as exc:
        log.warning("controllers not available (%s): running the API server alone", exc)
        return None
    settings = config.controller_settings
    if dataclasses.is_dataclass(settings) and hasattr(settings, "kubeconfig") and not settings.kubeconfig:
        settings = dataclasses.replace(settings, kubeconfig=str(kubeconfigs["controller-manager.conf"]))
    if dataclasses.is_dataclass(settings) and getattr(settings, "scheduler_kubeconfig", "x") is None:
        settings = dataclasses.replace(settings, scheduler_kubeconfig=str(kubeconfigs["scheduler.conf"]))
    return asyncio.ensure_future(run_controllers(url, token, stop, settings))


TRIM_PERIOD = 30.0      # seconds between malloc trims (procmem.trim_malloc)


async def serve(config: ServerConfig, stop: asyncio.Event,
                on_ready: Callable[[Running], None] | None = None) -> None:
    """Serve until ``stop`` is set, then shut everything down in order."""
    shrink_tls_read_buffers()                   # ~190 KB less per client connection
    store = open_store(config.store_url)
    runner: web.AppRunner | None = None
    controllers: asyncio.Task | None = None
    controllers_stop = asyncio.Event()
    api: ApiServer | None = None
    try:
        hooks = dict(default_hooks(store), Service=ServiceIPs(store, allocations_for(config.service_cidr,
                                                                                      config.node_ports)))
        registry = Registry(store, hooks=hooks)
        token = auth.load_or_create_token(config.state_dir)
        security = Security.build(registry, {token: ADMIN_USER}, TokenIssuer.load_or_create(config.state_dir),
                                  mode=config.authorization_mode)
        await registry.start()
        fieldcheck.warm_up()                    # import the schemas now, not on the first write
        api = ApiServer(registry, security, server_address=f"{client_host(config.host)}:{config.port}",
                        bookmark_interval=config.bookmark_interval)
        runner = web.AppRunner(api.app, access_log=None, shutdown_timeout=3.0)
        await runner.setup()
        advertise = config.advertise_address or config.host
        ssl_context, ca_pem = certs.server_context(config.state_dir, client_host(config.host),
                                                   extra_ips=[advertise, service_ips(config.service_cidr)[0]])
        site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1] if config.port == 0 else config.port
        await bootstrap.bootstrap(registry, advertise, port, config.service_cidr)
        url = _url(config.host, port)
        components = write_component_kubeconfigs(config.state_dir, url, ca_pem)
        path = Path(config.state_dir) / auth.KUBECONFIG_FILE
        kubeconfig.write(path, kubeconfig.render(url, token, ca_data=ca_pem, user="kubernetes-admin"))
        api.ready = True
        controllers = await _start_controllers(config, url, token, components, controllers_stop)
        if on_ready:
            on_ready(Running(url, token, path, api))
        trimmer = asyncio.ensure_future(trim_periodically(stop, TRIM_PERIOD))
        events_ttl = asyncio.ensure_future(eventttl.run(registry, stop, config.event_ttl))
        await stop.wait()
        trimmer.cancel()
        await asyncio.gather(events_ttl, return_exceptions=True)
    finally:
        controllers_stop.set()
        if controllers is not None:
            try:
                await asyncio.wait_for(controllers, timeout=10)
            except Exception:  # a controller failing on the way down must not keep the store open
                log.exception("controllers did not stop cleanly")
        if api is not None:
            api.ready = False
            watch.end_all(api.handlers.active_watches)
        if runner is not None:
            await runner.cleanup()
        await store.close()
