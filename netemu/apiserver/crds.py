"""CustomResourceDefinitions in the API server: serving their kinds, and cleaning up after them.

upstream's apiextensions-apiserver watches CRDs and, per established CRD, serves a handler for
its resources; its finalizer controller deletes every custom resource of a CRD being deleted
before it removes the ``customresourcecleanup.apiextensions.k8s.io`` finalizer. Here the CRD's
``KindHooks`` do both: each stored CRD's served versions are registered in ``netemu.api.kinds``
(so routing, discovery, OpenAPI, RBAC, lists and watches find them, as for any built-in kind)
the moment it is written, and a CRD marked for deletion gets a cleanup task that deletes its
resources through the registry (their own finalizers are honoured: the CRD waits for them).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from netemu.api import custom, errors, kinds, meta
from netemu.api.kinds import ResourceType
from netemu.api.meta import Obj
from netemu.apiserver.hooks import KindHooks
from netemu.store.base import Store

log = logging.getLogger(__name__)
CRDS = kinds.by_resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
CLEANUP_POLL = 0.2          # seconds between looks at resources that finalizers still hold


def register(crd: Obj) -> None:
    kinds.register_custom(meta.name_of(crd), custom.served(crd))


class CrdHooks(KindHooks):
    def __init__(self, store: Store):
        self.store = store
        self.registry = None
        self.tasks: dict[str, asyncio.Task] = {}

    def attach(self, registry) -> None:
        self.registry = registry

    async def start(self) -> None:
        kinds.clear_custom()               # what an earlier server in this process served is gone
        listed = await self.store.list(CRDS.key_prefix)
        for crd in listed.items:
            register(crd)
            if meta.is_being_deleted(crd):
                self.on_terminating(crd)

    async def on_create(self, rt: ResourceType, obj: Obj) -> Callable[[], None] | None:
        register(obj)
        return lambda: kinds.register_custom(meta.name_of(obj), ())

    async def on_update(self, rt: ResourceType, old: Obj, new: Obj) -> Callable[[bool], None] | None:
        def commit(ok: bool) -> None:
            if ok:
                register(new)
        return commit

    def on_delete(self, obj: Obj) -> None:
        kinds.register_custom(meta.name_of(obj), ())

    def on_terminating(self, obj: Obj) -> None:
        register(obj)
        name = meta.name_of(obj)
        if self.registry is not None and name not in self.tasks:
            self.tasks[name] = asyncio.ensure_future(self._cleanup(name))

    async def _cleanup(self, name: str) -> None:
        """Delete every resource of the CRD, wait until none is left, drop the finalizer."""
        try:
            while True:
                try:
                    crd = await self.registry.get(CRDS, None, name)
                except errors.NotFound:
                    return
                served = custom.served(crd)
                left = await self._delete_all(served[0]) if served else 0
                if not left:
                    break
                await asyncio.sleep(CLEANUP_POLL)

            def without_finalizer(obj: Obj) -> Obj:
                md = meta.metadata(obj)
                md["finalizers"] = [f for f in md.get("finalizers") or [] if f != custom.CLEANUP_FINALIZER]
                return obj
            await self.registry.guaranteed_update(CRDS, None, name, without_finalizer)
        except errors.NotFound:
            pass
        except Exception:
            log.exception("cleaning up the resources of CRD %s failed", name)
        finally:
            self.tasks.pop(name, None)

    async def _delete_all(self, rt: ResourceType) -> int:
        """Delete each stored object of ``rt`` (once marked, again is a no-op); how many remain."""
        listed = await self.store.list(rt.key_prefix)
        for obj in listed.items:
            md = obj.get("metadata") or {}
            if md.get("deletionTimestamp"):
                continue
            try:
                await self.registry.delete(rt, md.get("namespace"), md.get("name", ""))
            except errors.NotFound:
                pass
        return len((await self.store.list(rt.key_prefix)).items)
