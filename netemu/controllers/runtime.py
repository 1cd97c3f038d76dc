"""The thin, effectful shell every controller shares: shared informers and a work queue.

Like client-go's SharedInformerFactory + workqueue: one list+watch per resource for the whole
process, handlers turn changes into keys, a queue collapses duplicate keys, and workers call the
controller's ``sync(key)``, which reads the informer caches, asks a pure planner what to do and
writes the result through the API. A failing sync is retried with per-key exponential backoff;
a sync may ask to run again later (``queue.add_after``) for time-driven work (grace periods).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Iterable

from netemu.api import errors
from netemu.api.kinds import ResourceType, by_kind_name
from netemu.client import ApiClient, Informer
from netemu.controllers.kube import rv_of

log = logging.getLogger(__name__)


def rt(kind: str) -> ResourceType:
    found = by_kind_name(kind)
    if found is None:
        raise KeyError(kind)
    return found


class Informers:
    """One shared Informer per resource type, created on first use, started by ``run``."""

    def __init__(self, client: ApiClient):
        self.client = client
        self._by_kind: dict[str, Informer] = {}
        self._started: set[str] = set()

    def __getitem__(self, kind: str) -> Informer:
        if kind not in self._by_kind:
            self._by_kind[kind] = Informer(self.client, rt(kind))
        return self._by_kind[kind]

    def start(self, stop: asyncio.Event) -> list[asyncio.Task]:
        tasks = []
        for kind, inf in self._by_kind.items():
            if kind not in self._started:
                self._started.add(kind)
                tasks.append(asyncio.ensure_future(inf.run(stop)))
        return tasks

    async def wait_synced(self, kinds: Iterable[str]) -> None:
        await asyncio.gather(*(self[k].wait_synced() for k in kinds))


class WorkQueue:
    """Deduplicating async queue of string keys with delayed adds and retry backoff."""

    def __init__(self, base_delay: float = 0.05, max_delay: float = 5.0):
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.base_delay, self.max_delay = base_delay, max_delay

    def add(self, key: str) -> None:
        if key in self._processing:
            self._dirty.add(key)  # run again after the current sync, never two at once
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        """Enqueue ``key`` in ``delay`` seconds (the earliest of several requests wins)."""
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.0)
        timer = self._timers.get(key)
        if timer is not None and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> str:
        key = await self._queue.get()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str, ok: bool) -> None:
        self._processing.discard(key)
        if ok:
            self._failures.pop(key, None)
        else:
            n = self._failures[key] = self._failures.get(key, 0) + 1
            self.add_after(key, min(self.base_delay * 2 ** (n - 1), self.max_delay))
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class Controller:
    """Base of every control loop. Subclasses set ``name`` and ``kinds`` (informers they read),
    register handlers in ``setup`` and implement ``sync(key)``."""

    name = "controller"
    kinds: tuple[str, ...] = ()
    workers = 1
    # the kube-system ServiceAccount it writes as (upstream's --use-service-account-credentials),
    # and other clients it needs under other accounts: attribute -> account
    service_account: str | None = None
    other_accounts: dict[str, str] = {}

    def __init__(self, client: ApiClient, informers: Informers, settings: Any, recorder: Any):
        self.client, self.informers, self.settings, self.recorder = client, informers, settings, recorder
        self.manager_client = client        # the controller manager's own identity
        for attr in self.other_accounts:
            setattr(self, attr, client)
        self.queue = WorkQueue()
        self._background: set[asyncio.Task] = set()

    def background(self, coro: Any) -> None:
        """Run a helper task (periodic checks) for as long as the controller runs."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def setup(self) -> None:
        """Register informer handlers (called before the informers start)."""

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    def cache(self, kind: str) -> Informer:
        return self.informers[kind]

    def enqueue_obj(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace")
        self.queue.add(f"{ns}/{meta['name']}" if ns else meta["name"])

    async def run(self, stop: asyncio.Event) -> None:
        await self.informers.wait_synced(self.kinds)
        await self.resync_all()
        workers = [asyncio.ensure_future(self._worker()) for _ in range(self.workers)]
        try:
            await stop.wait()
        finally:
            helpers = workers + list(self._background)
            for t in helpers:
                t.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.queue.close()

    async def resync_all(self) -> None:
        """Enqueue everything once the caches are synced (handlers may have fired before)."""

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            ok = False
            try:
                await self.sync(key)
                ok = True
            except errors.Conflict:
                log.debug("%s %s: conflict, retrying", self.name, key)
            except (errors.NotFound, errors.AlreadyExists) as exc:
                log.debug("%s %s: %s, retrying", self.name, key, exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: sync of %s failed", self.name, key)
            finally:
                self.queue.done(key, ok)


async def put_latest(client: ApiClient, rt_: ResourceType, obj: dict[str, Any],
                     change: Callable[[dict[str, Any]], dict[str, Any]], *, subresource: str | None = None,
                     attempts: int = 4) -> dict[str, Any]:
    """PUT ``change(obj)`` (the object or its ``status``): what upstream's controllers do, and
    all their roles allow (update, not patch). A cached copy may be stale: on a Conflict the
    latest object is read and ``change`` applied to it again, at once -- a requeue with backoff
    would hold the write back for seconds behind each of the controller's own writes."""
    for attempt in range(attempts):
        try:
            return await client.update(rt_, change(obj), subresource=subresource)
        except errors.Conflict:
            if attempt == attempts - 1:
                raise
            md = obj.get("metadata") or {}
            obj = await client.get(rt_, md["name"], md.get("namespace"))
    raise AssertionError("unreachable")


async def delete_seen(client: ApiClient, rt_: ResourceType, obj: dict[str, Any], **options: Any) -> bool:
    """DELETE ``obj`` only if the object of its name is still the one seen (a uid precondition):
    True if this call deleted it. Gone already (NotFound) or replaced by a new object of the same
    name (Conflict) is False, not an error: a controller works from a cache that may be behind,
    and must not delete an object it never saw."""
    md = obj.get("metadata") or {}
    uid = md.get("uid")
    try:
        await client.delete(rt_, md["name"], md.get("namespace") or None,
                            preconditions={"uid": uid} if uid else None, **options)
    except (errors.NotFound, errors.Conflict):
        return False
    return True


def split_key(key: str) -> tuple[str | None, str]:
    ns, _, name = key.rpartition("/")
    return (ns or None), name


def now() -> float:
    return time.time()


class Expectations:
    """Creates and deletes a controller issued but has not yet seen in its cache (upstream
    ControllerExpectations): while some are outstanding the controller does not act on a stale
    count and create the same pods twice. They expire, so a lost watch event cannot wedge it."""

    def __init__(self, ttl: float = 30.0):
        self.ttl = ttl
        self._adds: dict[str, dict[str, float]] = {}
        self._dels: dict[str, dict[str, float]] = {}

    def expect_create(self, key: str, name: str) -> None:
        self._adds.setdefault(key, {})[name] = time.monotonic()

    def expect_delete(self, key: str, name: str) -> None:
        self._dels.setdefault(key, {})[name] = time.monotonic()

    def observed_create(self, key: str, name: str) -> None:
        self._adds.get(key, {}).pop(name, None)

    def observed_delete(self, key: str, name: str) -> None:
        self._dels.get(key, {}).pop(name, None)

    def forget(self, key: str) -> None:
        self._adds.pop(key, None)
        self._dels.pop(key, None)

    def satisfied(self, key: str) -> bool:
        limit = time.monotonic() - self.ttl
        for table in (self._adds, self._dels):
            pending = table.get(key, {})
            for name, t in list(pending.items()):
                if t < limit:
                    del pending[name]
            if pending:
                return False
        return True


class WriteOverlay:
    """A controller's own recent writes laid over a possibly stale cache (upstream's
    endpointSliceTracker idea): an object it just created, updated or deleted is seen as
    written until the informer catches up, so the next sync neither duplicates nor resurrects it."""

    def __init__(self) -> None:
        self._written: dict[tuple[str, str], dict[str, Any] | None] = {}  # None: deleted

    @staticmethod
    def _key(obj: dict[str, Any]) -> tuple[str, str]:
        m = obj.get("metadata") or {}
        return m.get("namespace") or "", m.get("name", "")

    def wrote(self, obj: dict[str, Any]) -> None:
        self._written[self._key(obj)] = obj

    def deleted(self, obj: dict[str, Any]) -> None:
        self._written[self._key(obj)] = None

    def merge(self, cached: list[dict[str, Any]], namespace: str | None = None) -> list[dict[str, Any]]:
        by_key = {self._key(o): o for o in cached}
        for key, mine in list(self._written.items()):
            if namespace is not None and key[0] != namespace:
                continue
            have = by_key.get(key)
            if mine is None:
                if have is None:
                    del self._written[key]     # the cache saw the delete
                else:
                    del by_key[key]
            elif have is not None and rv_of(have) >= rv_of(mine):
                del self._written[key]         # the cache caught up
            else:
                by_key[key] = mine
        return list(by_key.values())
