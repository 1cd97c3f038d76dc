"""An API server inside the test's event loop, on a free 127.0.0.1 port.

For unit tests here and in other layers (controllers, kube-proxy): a real HTTP server over a
fresh store, the admin token, and an ``ApiClient`` connected to it; everything is torn down on
exit, also when the test fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

from aiohttp import web

from netemu.apiserver import bootstrap, watch
from netemu.apiserver.app import ApiServer
from netemu.apiserver.registry import Registry, utcnow
from netemu.client import ApiClient
from netemu.store.base import Store
from netemu.store.factory import open_store

TEST_TOKEN = "test-admin-token"


@dataclass
class InProcess:
    url: str
    token: str
    client: ApiClient
    api: ApiServer
    store: Store


@contextlib.asynccontextmanager
async def api_server(state_dir: str | Path, *, store_url: str | None = None, store: Store | None = None,
                     clock: Callable[[], dt.datetime] = utcnow, bookmark_interval: float = 60.0,
                     bootstrap_objects: bool = True) -> AsyncIterator[InProcess]:
    """``async with api_server(tmp_path) as srv:`` -> srv.client talks to a fresh API server."""
    own_store = store is None
    if store is None:
        store = open_store(store_url or f"sqlite:{Path(state_dir) / 'state.db'}")
    runner = None
    client = None
    api = None
    try:
        registry = Registry(store, clock=clock)
        await registry.start()
        api = ApiServer(registry, {TEST_TOKEN}, bookmark_interval=bookmark_interval)
        runner = web.AppRunner(api.app, access_log=None, shutdown_timeout=3.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        if bootstrap_objects:
            await bootstrap.bootstrap(registry, "127.0.0.1", port)
        api.ready = True
        url = f"http://127.0.0.1:{port}"
        client = ApiClient(url, TEST_TOKEN)
        yield InProcess(url, TEST_TOKEN, client, api, store)
    finally:
        if client is not None:
            await client.close()
        if api is not None:
            watch.end_all(api.handlers.active_watches)
        if runner is not None:
            await runner.cleanup()
        if own_store:
            await store.close()
