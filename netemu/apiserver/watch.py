"""Watch streaming: store events -> a chunked stream of ``{"type", "object"}`` JSON lines.

The protocol client-go and the python client speak: events after the requested
resourceVersion (or synthetic ADDED events for the current state when none is given), selector
transitions rendered as ADDED/DELETED like upstream's cacher, BOOKMARK events when asked, the
stream closed after ``timeoutSeconds``, and a compacted start answered with an ERROR event
carrying a 410 Status (the client relists).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from aiohttp import web

from netemu.api import errors
from netemu.api.kinds import ResourceType
from netemu.apiserver import listing, tables
from netemu.store.base import ADDED, DELETED, MODIFIED, Store, WatchEvent

log = logging.getLogger(__name__)
Obj = dict[str, Any]
_END = object()
# A quiet watch still notices within this many seconds that its client disconnected (aiohttp
# does not cancel handlers), so it does not hold a store subscription until its timeout.
CLIENT_CHECK_INTERVAL = 5.0


@dataclass
class WatchParams:
    resource_version: str = ""
    timeout: float = 1800.0
    bookmarks: bool = False
    bookmark_interval: float = 60.0
    match: Callable[[Obj], bool] | None = None
    as_table: bool = False
    include: str = "Metadata"


def filtered(event: WatchEvent, match: Callable[[Obj], bool] | None) -> tuple[str, Obj] | None:
    """The event a selector-filtered watcher sees (upstream cacher semantics), or None."""
    if match is None:
        return event.type, event.object
    now = match(event.object)
    if event.type == ADDED:
        return (ADDED, event.object) if now else None
    if event.type == DELETED:
        return (DELETED, event.object) if now else None
    before = event.prev_object is not None and match(event.prev_object)
    if now and before:
        return MODIFIED, event.object
    if now:
        return ADDED, event.object
    if before:
        return DELETED, event.object
    return None


def _parse_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise errors.BadRequest(f"invalid resourceVersion {text!r}: must be an integer") from None
    if value < 0:
        raise errors.BadRequest(f"invalid resourceVersion {text!r}: must not be negative")
    return value


async def _pump(source: AsyncIterator[WatchEvent], queue: asyncio.Queue) -> None:
    """Move store events into a queue, so waiting has a timeout without cancelling the source."""
    try:
        async for event in source:
            await queue.put(event)
        await queue.put(_END)
    except errors.StatusError as exc:
        await queue.put(exc)
    except Exception as exc:  # the store failed under us: end the stream with a 500 Status
        log.exception("watch source failed")
        await queue.put(errors.InternalError(f"watch failed: {exc}"))
    finally:
        closer = getattr(source, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:  # already closed or failed: nothing left to release
                pass


class _Encoded:
    """The JSON line of each recent event, shared by every watcher that sends it: with 100
    watchers one write is serialised once, not 100 times (events are immutable once written)."""

    def __init__(self, size: int = 2048):
        self.size = size
        self.lines: dict[tuple, bytes] = {}

    def line(self, rt: ResourceType, kind: str, obj: Obj) -> bytes:
        meta = obj.get("metadata") or {}
        key = (rt.resource, kind, meta.get("namespace"), meta.get("name"), meta.get("resourceVersion"))
        cached = self.lines.get(key)
        if cached is None or not meta.get("resourceVersion"):
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            cached = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            if len(self.lines) >= self.size:
                self.lines.pop(next(iter(self.lines)))
            self.lines[key] = cached
        return cached


ENCODED = _Encoded()


class _Writer:
    """Renders events (plain objects or Table rows) onto the response."""

    def __init__(self, resp: web.StreamResponse, rt: ResourceType, params: WatchParams):
        self.resp, self.rt, self.params, self.first = resp, rt, params, True

    async def send(self, kind: str, obj: Obj) -> None:
        if not self.params.as_table or kind not in (ADDED, MODIFIED, DELETED):
            await self.resp.write(ENCODED.line(self.rt, kind, obj))
            return
        obj["apiVersion"], obj["kind"] = self.rt.api_version, self.rt.kind
        table = tables.table(self.rt.kind, [obj], dt.datetime.now(dt.timezone.utc),
                             resource_version=(obj.get("metadata") or {}).get("resourceVersion", ""),
                             include=self.params.include, headers=self.first)
        self.first = False
        await self.resp.write(json.dumps({"type": kind, "object": table}).encode() + b"\n")

    async def error(self, exc: errors.StatusError) -> None:
        await self.resp.write(json.dumps({"type": "ERROR", "object": exc.status()}).encode() + b"\n")


def end_all(queues: set[asyncio.Queue]) -> None:
    """Ask every running watch to end (server shutdown): clients see the stream close and
    re-watch elsewhere or later, as after an upstream API server restart."""
    for queue in list(queues):
        while True:
            try:
                queue.put_nowait(_END)
                break
            except asyncio.QueueFull:
                queue.get_nowait()


async def serve(request: web.Request, store: Store, rt: ResourceType, namespace: str | None,
                params: WatchParams, active: set[asyncio.Queue] | None = None) -> web.StreamResponse:
    """Stream a watch until timeout, client disconnect, or the store closing."""
    start: int | None = _parse_rv(params.resource_version) if params.resource_version not in ("", "0") else None
    initial: list[Obj] = []
    if start is None:
        page = await listing.list_page(store, rt, namespace, match=params.match)
        initial, start = page.items, page.revision
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Cache-Control": "no-cache"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    out = _Writer(resp, rt, params)
    for obj in initial:
        await out.send(ADDED, obj)
    queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
    if active is not None:
        active.add(queue)
    pump = asyncio.ensure_future(_pump(store.watch(rt.list_prefix(namespace), start), queue))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + params.timeout
    next_bookmark = loop.time() + params.bookmark_interval
    last_rv = start
    try:
        while True:
            now = loop.time()
            if now >= deadline:
                break
            wait = min(deadline - now, CLIENT_CHECK_INTERVAL)
            if params.bookmarks:
                wait = max(min(wait, next_bookmark - now), 0.001)
            try:
                item = await asyncio.wait_for(queue.get(), timeout=wait)
            except asyncio.TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    break                                  # the client went away
                now = loop.time()
                if params.bookmarks and next_bookmark <= now < deadline:
                    await out.send("BOOKMARK", {"metadata": {"resourceVersion": str(last_rv)}})
                    next_bookmark = now + params.bookmark_interval
                continue
            if item is _END:
                break
            if isinstance(item, errors.StatusError):
                if isinstance(item, errors.Gone):
                    item = errors.Gone(f"too old resource version: {start} ({item.message})")
                await out.error(item)
                break
            last_rv = item.revision
            seen = filtered(item, params.match)
            if seen is not None:
                await out.send(*seen)
    except ConnectionResetError:
        pass
    finally:
        if active is not None:
            active.discard(queue)
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
    try:
        await resp.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    return resp
