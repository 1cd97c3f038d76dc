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
from netemu.apiserver.rbac import User
from netemu.apiserver.registry import Registry, utcnow
from netemu.apiserver.sa_token import TokenIssuer
from netemu.apiserver.security import Security
from netemu.client import ApiClient
from netemu.store.base import Store
from netemu.store.factory import open_store

TEST_TOKEN = "test-admin-token"
TEST_USER = User("test-admin", ("system:masters",))   # allowed everything, with or without the policy
_ISSUER: list[TokenIssuer] = []


def test_issuer() -> TokenIssuer:
    """One ServiceAccount signing key per test process (an RSA key takes ~0.1 s to make)."""
    if not _ISSUER:
        from cryptography.hazmat.primitives.asymmetric import rsa
        _ISSUER.append(TokenIssuer(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    return _ISSUER[0]


@dataclass
class InProcess:
    url: str
    token: str
    client: ApiClient
    api: ApiServer
    store: Store

    @property
    def security(self) -> Security:
        return self.api.security


@contextlib.asynccontextmanager
async def api_server(state_dir: str | Path, *, store_url: str | None = None, store: Store | None = None,
                     clock: Callable[[], dt.datetime] = utcnow, bookmark_interval: float = 60.0,
                     bootstrap_objects: bool = True, rbac_policy: bool = False,
                     authorization_mode: str = "RBAC") -> AsyncIterator[InProcess]:
    """``async with api_server(tmp_path) as srv:`` -> srv.client talks to a fresh API server as
    a ``system:masters`` user; ``rbac_policy`` also writes the default roles and bindings (what
    tests of other identities need), ``srv.security`` issues tokens for them."""
    own_store = store is None
    if store is None:
        store = open_store(store_url or f"sqlite:{Path(state_dir) / 'state.db'}")
    runner = None
    client = None
    api = None
    try:
        registry = Registry(store, clock=clock)
        security = Security.build(registry, {TEST_TOKEN: TEST_USER}, test_issuer(), mode=authorization_mode)
        await registry.start()
        api = ApiServer(registry, security, bookmark_interval=bookmark_interval)
        runner = web.AppRunner(api.app, access_log=None, shutdown_timeout=3.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        if bootstrap_objects:
            await bootstrap.bootstrap(registry, "127.0.0.1", port, rbac_policy=rbac_policy)
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
