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

from netemu.api import custom, errors
from netemu.api.kinds import ResourceType
from netemu.api.meta import Obj
from netemu.apiserver import listing, tables
from netemu.store.base import ADDED, DELETED, MODIFIED, Store, WatchEvent

log = logging.getLogger(__name__)
_END = object()
# A quiet watch still notices within this many seconds that its client disconnected (aiohttp
# does not cancel handlers), so it does not hold a store subscription until its timeout.
CLIENT_CHECK_INTERVAL = 5.0
# Events queued for one client (references to shared events, not copies), and how long that
# queue may stay full before the client counts as stalled and is cut off with 410.
WATCH_QUEUE = 1000
SLOW_WATCHER_TIMEOUT = 5.0
# At most this many queued events go out in one write (one TLS record batch, one syscall).
WRITE_BATCH = 64


@dataclass
class WatchParams:
    resource_version: str = ""
    timeout: float = 1800.0
    bookmarks: bool = False
    bookmark_interval: float = 60.0
    match: Callable[[Obj], bool] | None = None
    as_table: bool = False
    include: str = "Metadata"
    queue_size: int = WATCH_QUEUE
    slow_timeout: float = SLOW_WATCHER_TIMEOUT


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


class TooSlow(errors.Gone):
    """A watcher whose client did not take its events in time: its queue is dropped and its
    stream ends with 410 (the client relists), so a stalled client cannot hold memory."""


@dataclass
class _PumpState:
    last_rv: int               # every event up to here is queued or filtered out


def _drain(queue: asyncio.Queue) -> None:
    while not queue.empty():
        queue.get_nowait()


async def _pump(source: AsyncIterator[WatchEvent], queue: asyncio.Queue, params: WatchParams,
                state: _PumpState, abort: Callable[[], None]) -> None:
    """Move the store events this watcher sends into its bounded queue.

    Filtering happens here, before the queue, so a watcher of one node's pods queues and wakes
    for its own pods only. A queue that stays full for ``params.slow_timeout`` seconds ends the
    watch (upstream's cacher does the same with an unresponsive watcher): the queue is emptied,
    the store subscription released, a 410 is queued for the client, and if the handler is still
    stuck writing to a client that does not read, the connection is aborted."""
    try:
        async for event in source:
            seen = filtered(event, params.match)
            if seen is not None:
                item = (seen[0], seen[1], event.revision)
                try:
                    queue.put_nowait(item)
                except asyncio.QueueFull:
                    try:
                        await asyncio.wait_for(queue.put(item), params.slow_timeout)
                    except asyncio.TimeoutError:
                        _drain(queue)
                        queue.put_nowait(TooSlow(f"watch client too slow: {queue.maxsize} events not taken "
                                                 f"in {params.slow_timeout:g}s"))
                        log.warning("watch cut off: client took no event for %.0fs with %d queued",
                                    params.slow_timeout, queue.maxsize)
                        await _close(source)
                        await asyncio.sleep(params.slow_timeout)
                        if not queue.empty():           # still not even taking the error
                            abort()
                        return
            state.last_rv = event.revision
        await queue.put(_END)
    except errors.StatusError as exc:
        await queue.put(exc)
    except Exception as exc:  # the store failed under us: end the stream with a 500 Status
        log.exception("watch source failed")
        await queue.put(errors.InternalError(f"watch failed: {exc}"))
    finally:
        await _close(source)


async def _close(source: AsyncIterator[WatchEvent]) -> None:
    closer = getattr(source, "aclose", None)
    if closer is not None:
        try:
            await closer()
        except Exception:  # already closed or failed: nothing left to release
            pass


class _Encoded:
    """The JSON line of each recent event, shared by every watcher that sends it: with 100
    watchers one write is serialised once, not 100 times (events are immutable once written).
    The event's object is shared too, so it is never modified here."""

    def __init__(self, size: int = 2048):
        self.size = size
        self.lines: dict[tuple, bytes] = {}

    def line(self, rt: ResourceType, kind: str, obj: Obj) -> bytes:
        meta = obj.get("metadata") or {}
        key = (rt.group, rt.version, rt.resource, kind, meta.get("namespace"), meta.get("name"),
               meta.get("resourceVersion"))
        cached = self.lines.get(key)
        if cached is None or not meta.get("resourceVersion"):
            typed = custom.as_served(rt, obj)
            cached = json.dumps({"type": kind, "object": typed}).encode() + b"\n"
            if len(self.lines) >= self.size:
                self.lines.pop(next(iter(self.lines)))
            self.lines[key] = cached
        return cached


ENCODED = _Encoded()


class _Writer:
    """Renders events (plain objects or Table rows) as JSON lines; never modifies the objects."""

    def __init__(self, request: web.Request, resp: web.StreamResponse, rt: ResourceType, params: WatchParams):
        self.request, self.resp, self.rt, self.params, self.first = request, resp, rt, params, True

    def render(self, kind: str, obj: Obj) -> bytes:
        if not self.params.as_table or kind not in (ADDED, MODIFIED, DELETED):
            return ENCODED.line(self.rt, kind, obj)
        obj = custom.as_served(self.rt, obj)
        table = tables.table(self.rt.kind, [obj], dt.datetime.now(dt.timezone.utc),
                             resource_version=(obj.get("metadata") or {}).get("resourceVersion", ""),
                             include=self.params.include, headers=self.first, custom=self.rt.custom)
        self.first = False
        return json.dumps({"type": kind, "object": table}).encode() + b"\n"


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
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Cache-Control": "no-cache"})
    out = _Writer(request, resp, rt, params)
    chunks: list[bytes] = []
    if start is None:
        chunks, start = await _initial(store, rt, namespace, out)
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        for i, chunk in enumerate(chunks):
            chunks[i] = b""
            await _write(request, resp, chunk, params.slow_timeout)
    except ConnectionResetError:
        return resp
    queue: asyncio.Queue = asyncio.Queue(maxsize=max(1, params.queue_size))
    if active is not None:
        active.add(queue)
    state = _PumpState(start)
    pump = asyncio.ensure_future(_pump(store.watch(rt.list_prefix(namespace), start, shared=True), queue,
                                       params, state, lambda: _abort(request)))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + params.timeout
    next_bookmark = loop.time() + params.bookmark_interval
    try:
        while True:
            now = loop.time()
            if now >= deadline:
                break
            if queue.empty():
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
                        mark = out.render("BOOKMARK", {"metadata": {"resourceVersion": str(state.last_rv)}})
                        await _write(request, resp, mark, params.slow_timeout)
                        next_bookmark = now + params.bookmark_interval
                    continue
            else:
                item = queue.get_nowait()
            if not await _write_batch(out, queue, item, start):
                break
    except ConnectionResetError:
        pass
    finally:
        if active is not None:
            active.discard(queue)
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        _drain(queue)
    try:
        await resp.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    return resp


async def _initial(store: Store, rt: ResourceType, namespace: str | None,
                   out: _Writer) -> tuple[list[bytes], int]:
    """The current state as ADDED lines, rendered now, so a client slow to take it holds ~1 KB
    per object here rather than the decoded objects (several times that)."""
    page = await listing.list_page(store, rt, namespace, match=out.params.match)
    items = page.items
    return [b"".join(out.render(ADDED, obj) for obj in items[i:i + WRITE_BATCH])
            for i in range(0, len(items), WRITE_BATCH)], page.revision


async def _write_batch(out: _Writer, queue: asyncio.Queue, item: Any, start: int) -> bool:
    """Write ``item`` and the events queued behind it in one write; False when the stream ends."""
    lines: list[bytes] = []
    going = True
    while True:
        if item is _END:
            going = False
            break
        if isinstance(item, errors.StatusError):
            if isinstance(item, errors.Gone) and not isinstance(item, TooSlow):
                item = errors.Gone(f"too old resource version: {start} ({item.message})")
            lines.append(json.dumps({"type": "ERROR", "object": item.status()}).encode() + b"\n")
            going = False
            break
        lines.append(out.render(item[0], item[1]))
        # stop before taking the next item: one taken and not written would be lost (it was,
        # for the 65th of every burst of more than WRITE_BATCH events: 1 pod of 300 never seen)
        if len(lines) >= WRITE_BATCH or queue.empty():
            break
        item = queue.get_nowait()
    if lines:
        await _write(out.request, out.resp, b"".join(lines), out.params.slow_timeout)
    return going


async def _write(request: web.Request, resp: web.StreamResponse, data: bytes, timeout: float) -> None:
    """One write that a client must take within ``timeout`` (it waits only when the socket's
    buffer is full): a client that stops reading is disconnected, and its buffers freed."""
    try:
        await asyncio.wait_for(resp.write(data), timeout)
    except asyncio.TimeoutError:
        log.warning("watch client took no data for %.0fs: disconnected", timeout)
        _abort(request)
        raise ConnectionResetError("watch client stalled") from None


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None and not transport.is_closing():
        transport.abort()
