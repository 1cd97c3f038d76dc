"""An informer with a transform caches (and hands to handlers) only what the component needs,
from the initial list and from watch events alike."""

from __future__ import annotations

import asyncio

from netemu.api import kinds
from netemu.testing.apiserver import api_server
from netemu.client import Informer

CM = kinds.by_resource("", "v1", "configmaps")


def _slim(obj):
    return {"metadata": obj["metadata"], "data": {"keep": (obj.get("data") or {}).get("keep", "")}}


def test_transform_applies_to_list_and_watch(tmp_path):
    async def scenario():
        async with api_server(tmp_path) as srv:
            c = srv.client
            await c.create(CM, {"metadata": {"name": "a"}, "data": {"keep": "1", "big": "x" * 1000}})
            inf = Informer(c, CM, "default", transform=_slim)
            updates = []
            inf.add_handler(on_update=lambda old, new: updates.append((old["data"], new["data"])))
            stop = asyncio.Event()
            task = asyncio.ensure_future(inf.run(stop))
            await asyncio.wait_for(inf.wait_synced(), 10)
            assert inf.get("a", "default")["data"] == {"keep": "1"}
            b = await c.create(CM, {"metadata": {"name": "b"}, "data": {"keep": "2", "big": "y"}})
            b["data"]["keep"] = "3"
            await c.update(CM, b)
            for _ in range(100):
                if updates:
                    break
                await asyncio.sleep(0.05)
            assert updates == [({"keep": "2"}, {"keep": "3"})]
            assert inf.get("b", "default") == {"metadata": inf.get("b", "default")["metadata"], "data": {"keep": "3"}}
            assert inf.resource_version == inf.get("b", "default")["metadata"]["resourceVersion"]
            stop.set()
            await asyncio.wait_for(task, 10)
    asyncio.run(scenario())
