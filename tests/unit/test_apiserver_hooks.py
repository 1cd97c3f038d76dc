"""The registry's per-kind hooks: the generic registry names no kind; a kind with state next to
the store (Services: IPs and ports) registers a KindHooks object, and every write path calls it
at the right moment (a duplicate is refused before anything is taken, a failed or dry-run write
is undone, a removal is reported)."""

from __future__ import annotations

import asyncio

import pytest

from netemu.api import errors, kinds
from netemu.apiserver.hooks import KindHooks
from netemu.apiserver.registry import Registry
from netemu.apiserver.services import ServiceIPs
from netemu.store.factory import open_store

NS = kinds.by_resource("", "v1", "namespaces")
CM = kinds.by_resource("", "v1", "configmaps")


class Recording(KindHooks):
    def __init__(self):
        self.calls: list[tuple] = []

    async def start(self):
        self.calls.append(("start",))

    async def on_create(self, rt, obj):
        name = obj["metadata"]["name"]
        self.calls.append(("create", name))
        return lambda: self.calls.append(("undo", name))

    async def on_update(self, rt, old, new):
        name = new["metadata"]["name"]
        return lambda ok: self.calls.append(("commit", name, ok))

    def on_delete(self, obj):
        self.calls.append(("delete", obj["metadata"]["name"]))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_hooks_see_every_write_of_their_kind(tmp_path):
    async def main():
        store = open_store(f"sqlite:{tmp_path / 'db'}")
        rec = Recording()
        try:
            reg = Registry(store, hooks={"ConfigMap": rec})
            await reg.start()
            await reg.create(NS, None, {"metadata": {"name": "default"}})
            created = await reg.create(CM, "default", {"metadata": {"name": "a"}, "data": {"k": "1"}})
            with pytest.raises(errors.AlreadyExists):
                await reg.create(CM, "default", {"metadata": {"name": "a"}})
            await reg.create(CM, "default", {"metadata": {"name": "b"}}, dry_run=True)
            await reg.update(CM, "default", "a", dict(created, data={"k": "2"}))
            with pytest.raises(errors.Conflict):       # stale resourceVersion: the write fails
                await reg.update(CM, "default", "a", dict(created, data={"k": "3"}))
            await reg.delete(CM, "default", "a")
            return rec.calls
        finally:
            await store.close()

    assert run(main()) == [("start",), ("create", "a"), ("create", "b"), ("undo", "b"),
                           ("commit", "a", True), ("delete", "a")]


def test_services_have_their_ip_hooks_by_default(tmp_path):
    from netemu.apiserver.ingressclass import DefaultIngressClass
    store = open_store(f"sqlite:{tmp_path / 'db'}")
    try:
        reg = Registry(store)
        assert set(reg.hooks) == {"Service", "Ingress", "CustomResourceDefinition"} and isinstance(reg.hooks["Service"], ServiceIPs)
        assert isinstance(reg.hooks["Ingress"], DefaultIngressClass)
    finally:
        run(store.close())
