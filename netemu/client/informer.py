"""An informer like client-go's reflector + indexer: list, then watch, and keep a local cache.

A component (controller, kubelet, kube-proxy) reads the cache instead of the API server and
reacts to add / update / delete handlers. The protocol is upstream's: list to get a snapshot and
its resourceVersion, watch from there, keep the last seen resourceVersion (bookmarks move it
without changes), relist when the server says 410 Gone, and reconnect with backoff when the
connection drops. A relist diffs the new snapshot against the cache so handlers still see
exactly the changes (deletes that happened while disconnected included).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiohttp

from netemu.api import errors
from netemu.api.kinds import ResourceType
from netemu.client.rest import ApiClient

log = logging.getLogger(__name__)

Key = tuple[str, str]           # (namespace or "", name)
Handler = Callable[..., Any]    # sync or async


def object_key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name", "")


@dataclass
class Handlers:
    on_add: Handler | None = None        # (obj)
    on_update: Handler | None = None     # (old, new)
    on_delete: Handler | None = None     # (obj)


class Informer:
    """The cache of one resource (optionally one namespace / selectors), kept current."""

    def __init__(self, client: ApiClient, rt: ResourceType, namespace: str | None = None, *,
                 label_selector: str | None = None, field_selector: str | None = None,
                 watch_timeout: int = 300, max_backoff: float = 5.0,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None):
        """``transform`` (client-go's SetTransform) trims each object before it is cached and
        handed to handlers: a kubelet that needs only podCIDR and addresses of 100 Nodes need
        not keep their whole status. It must keep metadata (name, namespace, resourceVersion)."""
        self.client, self.rt, self.namespace = client, rt, namespace
        self.transform = transform
        self.label_selector, self.field_selector = label_selector, field_selector
        self.watch_timeout, self.max_backoff = watch_timeout, max_backoff
        self.cache: dict[Key, dict[str, Any]] = {}
        self.resource_version = ""
        self._handlers: list[Handlers] = []
        self._synced = asyncio.Event()

    # -- reading the cache -------------------------------------------------------------------

    def get(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.cache.get((namespace or "", name))

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            return list(self.cache.values())
        return [o for (ns, _), o in self.cache.items() if ns == namespace]

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def add_handler(self, on_add: Handler | None = None, on_update: Handler | None = None,
                    on_delete: Handler | None = None) -> None:
        """Register handlers; objects already cached are replayed to ``on_add``."""
        handlers = Handlers(on_add, on_update, on_delete)
        self._handlers.append(handlers)
        if on_add and self.cache:
            for obj in list(self.cache.values()):
                _call_soon(on_add, obj)

    # -- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """List and watch until ``stop`` is set."""
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                work = asyncio.ensure_future(self._list_and_watch())
                done, _ = await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if work not in done:
                    work.cancel()
                    await asyncio.gather(work, return_exceptions=True)
                    return
                work.result()
        finally:
            stopper.cancel()

    async def _list_and_watch(self) -> None:
        """Relist first, unless a previous run left a cache and a resourceVersion to resume
        from (then a 410 on the watch leads to the relist)."""
        backoff = 0.1
        need_list = not (self.has_synced and self.resource_version)
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._watch_once()
                backoff = 0.1
            except errors.Gone:
                log.info("%s watch expired at %s: relisting", self.rt.resource, self.resource_version)
                need_list = True
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError,
                    errors.StatusError, ValueError) as exc:
                log.warning("%s list/watch failed (%s); retrying in %.1fs", self.rt.resource, exc, backoff)
                await asyncio.sleep(backoff * (1 + random.random() / 2))
                backoff = min(backoff * 2, self.max_backoff)
                if isinstance(exc, errors.StatusError) and not self.resource_version:
                    need_list = True

    async def _relist(self) -> None:
        result = await self.client.list_all(self.rt, self.namespace, label_selector=self.label_selector,
                                            field_selector=self.field_selector)
        items = result.items if self.transform is None else [self.transform(o) for o in result.items]
        fresh = {object_key(o): o for o in items}
        old = self.cache
        self.cache = fresh
        self.resource_version = result.resource_version
        for key, obj in fresh.items():
            if key not in old:
                await self._dispatch("add", None, obj)
            elif _rv(old[key]) != _rv(obj):
                await self._dispatch("update", old[key], obj)
        for key, obj in old.items():
            if key not in fresh:
                await self._dispatch("delete", None, obj)
        self._synced.set()

    async def _watch_once(self) -> None:
        timeout = int(self.watch_timeout * (1 + random.random() / 4))
        async for kind, obj in self.client.watch(
                self.rt, self.namespace, resource_version=self.resource_version,
                label_selector=self.label_selector, field_selector=self.field_selector,
                timeout_seconds=timeout, allow_bookmarks=True):
            await self.apply_event(kind, obj)

    async def apply_event(self, kind: str, obj: dict[str, Any]) -> None:
        """Fold one watch event into the cache and call the handlers."""
        rv = _rv(obj)
        if rv:
            self.resource_version = rv
        if kind == "BOOKMARK":
            return
        if self.transform is not None:
            obj = self.transform(obj)
        key = object_key(obj)
        old = self.cache.get(key)
        if kind == "DELETED":
            self.cache.pop(key, None)
            await self._dispatch("delete", None, obj)
        elif old is None:
            self.cache[key] = obj
            await self._dispatch("add", None, obj)
        else:
            self.cache[key] = obj
            await self._dispatch("update", old, obj)

    async def _dispatch(self, what: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        for h in list(self._handlers):
            fn = {"add": h.on_add, "update": h.on_update, "delete": h.on_delete}[what]
            if fn is None:
                continue
            try:
                result = fn(old, new) if what == "update" else fn(new)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a handler's bug must not stop the informer
                log.exception("%s %s handler failed", self.rt.resource, what)


def _rv(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "")


def _call_soon(fn: Handler, obj: dict[str, Any]) -> None:
    result = fn(obj)
    if inspect.isawaitable(result):
        asyncio.ensure_future(result)  # type: ignore[arg-type]
