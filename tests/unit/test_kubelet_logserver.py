"""The kubelet's container log endpoint over real loopback HTTP: current and previous logs,
tail/limit, errors for unknown pods/containers/bad parameters, and follow streaming."""

import asyncio
import os

import aiohttp

from netemu.agent.kubelet.logserver import LogServer
from netemu.agent.kubelet.worker import log_path

POD = {"metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
       "spec": {"containers": [{"name": "app"}, {"name": "side"}]}}


def write(root, restart, text):
    path = log_path(str(root), POD, "app", restart)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        f.write(text)
    return path


def test_log_endpoint(tmp_path):
    write(tmp_path, 0, "old run\n")
    current = write(tmp_path, 1, "one\ntwo\nthree\n")
    counts = {"app": 1, "side": None}

    async def main():
        server = LogServer(lambda ns, name: POD if (ns, name) == ("default", "web") else None,
                           lambda pod, c: counts[c], str(tmp_path), "127.0.0.1", 0, follow_poll=0.05)
        await server.start()
        base = f"http://127.0.0.1:{server.bound_port}/containerLogs/default/web"
        try:
            async with aiohttp.ClientSession() as s:
                async def get(url):
                    async with s.get(url) as r:
                        return r.status, await r.text()
                assert await get(base + "/app") == (200, "one\ntwo\nthree\n")
                assert await get(base + "/app?tailLines=2&limitBytes=5") == (200, "two\nt")
                assert await get(base + "/app?previous=true") == (200, "old run\n")
                assert (await get(base + "/side"))[0] == 400                      # never started
                assert (await get(base + "/nope"))[0] == 404
                assert (await get(base.replace("/web", "/other") + "/app"))[0] == 404
                assert (await get(base + "/app?tailLines=x"))[0] == 400
                async with s.get(base + "/app?follow=true&tailLines=1") as r:
                    assert await r.content.readline() == b"three\n"
                    with open(current, "a") as f:
                        f.write("four\n")
                    assert await asyncio.wait_for(r.content.readline(), 20) == b"four\n"
        finally:
            await server.close()
    asyncio.run(asyncio.wait_for(main(), 30))
