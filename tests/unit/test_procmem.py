"""Small TLS read buffers: set process-wide, refused below one TLS record, and a multi-megabyte
body still crosses a TLS connection intact (served with the API server's own certificates)."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ssl

import aiohttp
import pytest
from aiohttp import web

from netemu.apiserver import certs
from netemu.procmem import shrink_tls_read_buffers


@pytest.fixture
def restore_size():
    before = asyncio.sslproto.SSLProtocol.max_size
    yield
    asyncio.sslproto.SSLProtocol.max_size = before


def test_too_small_is_refused(restore_size):
    before = asyncio.sslproto.SSLProtocol.max_size
    with pytest.raises(ValueError):
        shrink_tls_read_buffers(4096)
    assert asyncio.sslproto.SSLProtocol.max_size == before


def test_big_bodies_cross_tls_with_small_buffers(tmp_path, restore_size):
    assert shrink_tls_read_buffers(16 * 1024)
    assert asyncio.sslproto.SSLProtocol.max_size == 16 * 1024
    body = bytes(range(256)) * 12_000                          # ~3 MB, both directions

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    async def main():
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/echo", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            server_ctx, ca_pem = certs.server_context(tmp_path, "127.0.0.1")
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
            await site.start()
            port = runner.addresses[0][1]
            client_ctx = ssl.create_default_context(cadata=ca_pem.decode())
            async with aiohttp.ClientSession() as s:
                async with s.post(f"https://127.0.0.1:{port}/echo", data=body, ssl=client_ctx) as resp:
                    assert resp.status == 200
                    assert await resp.read() == body
        finally:
            await runner.cleanup()
    asyncio.run(asyncio.wait_for(main(), 60))
