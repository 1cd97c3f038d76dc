"""The embedded store: SQLite, one writer thread with group commit, readers on a small pool.

Why this shape:
- Durable on acknowledgement costs one fsync per COMMIT (WAL, ``synchronous=FULL``). An fsync
  takes milliseconds, far too long for the event loop, so writes go to one writer thread. While
  it waits on a COMMIT, further writes queue up and the next transaction takes them all (group
  commit): many concurrent writers share one fsync, each still acknowledged only after it.
- Each write in a batch runs in its own SAVEPOINT: a Conflict in one leaves the others intact.
- The writer hands each committed batch to the event loop in one callback, which first fans the
  changes out to live watchers (``fanout.Hub``) and then resolves the writers' futures, so
  events reach watchers in revision order and never before the write is durable.
- Reads use their own connections (WAL readers see a consistent snapshot and never wait for the
  writer) on a small thread pool, because a big list is not sub-millisecond.
- One process owns a database file (an flock on ``PATH.lock``): the writer keeps the revision in
  memory, so a second writer process would corrupt the revision sequence. A second opener gets a
  clear error instead.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable

from netemu.api.errors import InternalError, NotFound, StatusError
from netemu.store import sqlite_db
from netemu.store.base import DELETED, ListResult, Store, WatchEvent
from netemu.store.fanout import Change, Hub
from netemu.store.keys import (check_key, check_list_args, check_prefix, check_revision,
                               decode_object, encode_object)

DEFAULT_HISTORY = 10_000
MAX_BATCH = 512


class StoreOpenError(Exception):
    """The database cannot be opened as a store (message says why; the file is left as it was)."""


class StoreLocked(StoreOpenError):
    """Another process has this database open."""


def shared_event(ch: Change) -> WatchEvent:
    """The one WatchEvent of a live change, decoded on first use and kept on the change itself:
    with 100 watchers of pods, a pod write is parsed once instead of 100 times (twice each, with
    its previous value), and watchers that queue it hold references, not copies. Its dicts are
    shared, so only ``watch(..., shared=True)`` callers (who promise not to mutate) get it."""
    event = ch.__dict__.get("_event")
    if event is None:
        event = to_event(ch)
        object.__setattr__(ch, "_event", event)        # a cache, not state: Change stays frozen
    return event


def to_event(ch: Change) -> WatchEvent:
    """A fresh WatchEvent; a DELETED event carries the last value at the delete's revision."""
    prev = decode_object(ch.prev_value, ch.prev_revision) if ch.prev_value is not None else None
    if ch.type == DELETED:
        obj = decode_object(ch.prev_value, ch.revision)
    else:
        obj = decode_object(ch.value, ch.revision)
    return WatchEvent(ch.type, ch.key, obj, ch.revision, prev)


class _Op:
    __slots__ = ("apply", "future")

    def __init__(self, apply: Callable[[sqlite_db.Writer], Change | None], future: asyncio.Future):
        self.apply = apply
        self.future = future


class SqliteStore(Store):
    """``SqliteStore(path, history=N)``: keeps the newest N events for watch and old-revision lists."""

    def __init__(self, path: str, *, history: int = DEFAULT_HISTORY, max_watch_buffer: int = 10_000):
        if history < 1:
            raise ValueError("history must be at least 1 event")
        self.path = os.fspath(path)
        self.history = history
        self._lock_fd = _lock(self.path)
        try:
            _create_private(self.path)
            self._wconn = sqlite_db.connect(self.path)
            revision, compacted = sqlite_db.read_meta(self._wconn)
        except (sqlite_db.NotOurDatabase, sqlite3.Error) as exc:
            os.close(self._lock_fd)
            raise StoreOpenError(str(exc) if isinstance(exc, sqlite_db.NotOurDatabase)
                                 else f"cannot open {self.path}: {exc}") from None
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._writer = sqlite_db.Writer(self._wconn, revision, compacted)
        self._revision = revision            # newest acknowledged revision (loop side)
        self._hub = Hub(max_watch_buffer)
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sqlite-read")
        self._rconns: list = []
        self._local = threading.local()
        self._closed = False
        self._thread = threading.Thread(target=self._write_loop, name="sqlite-write", daemon=True)
        self._thread.start()

    # ---- plumbing -------------------------------------------------------------------------

    def _check_open(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise InternalError("store is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("SqliteStore is bound to the event loop that first used it")
        return loop

    async def _write(self, apply: Callable[[sqlite_db.Writer], Change | None]) -> Change | None:
        loop = self._check_open()
        fut = loop.create_future()
        self._queue.put(_Op(apply, fut))
        return await fut

    async def _read(self, fn, *args):
        loop = self._check_open()
        return await loop.run_in_executor(self._readers, self._in_reader, fn, args)

    def _in_reader(self, fn, args):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite_db.connect(self.path, readonly=True)
            self._rconns.append(conn)
        return fn(conn, *args)

    def _write_loop(self) -> None:
        """The writer thread: take every queued op, one transaction, one fsync, one callback."""
        while True:
            op = self._queue.get()
            if op is None:
                return
            batch, stop = [op], False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                results, changes = self._commit(batch)
            except BaseException as exc:  # noqa: BLE001 - the writer thread must never die
                results, changes = [InternalError(f"store write failed: {exc!r}")] * len(batch), []
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._deliver, batch, results, changes)
            except RuntimeError:  # loop closed under us: nobody is waiting any more
                pass
            if stop:
                return

    def _commit(self, batch: list[_Op]) -> tuple[list, list[Change]]:
        w, conn = self._writer, self._wconn
        saved = (w.revision, w.compacted, w.meta_dirty)
        results: list[Change | None | BaseException] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                conn.execute("SAVEPOINT op")
                before = (w.revision, w.compacted)
                try:
                    results.append(op.apply(w))
                    conn.execute("RELEASE op")
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    w.revision, w.compacted = before
                    results.append(exc if isinstance(exc, StatusError)
                                   else InternalError(f"store write failed: {exc}"))
            w.auto_compact(self.history)
            w.flush_meta()
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the whole batch failed (disk full, I/O)
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass            # SQLite rolls back by itself when it cannot
            w.revision, w.compacted, w.meta_dirty = saved
            err = InternalError(f"store commit failed: {exc}")
            return [err] * len(batch), []
        changes = [r for r in results if isinstance(r, Change)]
        return results, changes

    def _deliver(self, batch: list[_Op], results: list, changes: list[Change]) -> None:
        if changes:
            self._revision = max(self._revision, changes[-1].revision)
            self._hub.publish(changes)
        for op, res in zip(batch, results):
            if op.future.done():
                continue
            if isinstance(res, BaseException):
                op.future.set_exception(res)
            else:
                op.future.set_result(res)

    # ---- the Store contract ---------------------------------------------------------------

    async def get(self, key: str) -> dict[str, Any]:
        key = check_key(key)
        row = await self._read(sqlite_db.get, key)
        if row is None:
            raise NotFound(f"key {key} not found", details={"key": key})
        return decode_object(row[0], row[1])

    async def list(self, prefix: str, *, limit: int | None = None, start_after: str | None = None,
                   revision: int | None = None) -> ListResult:
        prefix = check_list_args(prefix, limit, start_after, revision)
        rows, rev, more = await self._read(sqlite_db.list_range, prefix, limit, start_after, revision)
        items = [decode_object(value, mod) for _, value, mod in rows]
        return ListResult(items, rev, more, rows[-1][0] if more else None)

    async def create(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        key, value = check_key(key), encode_object(obj)
        ch = await self._write(lambda w: w.create(key, value))
        return decode_object(ch.value, ch.revision)

    async def update(self, key: str, obj: dict[str, Any], *,
                     expected_revision: int | None = None) -> dict[str, Any]:
        key, value = check_key(key), encode_object(obj)
        check_revision(expected_revision, "expected_revision")
        ch = await self._write(lambda w: w.update(key, value, expected_revision))
        return decode_object(ch.value, ch.revision)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> dict[str, Any]:
        key = check_key(key)
        check_revision(expected_revision, "expected_revision")
        ch = await self._write(lambda w: w.delete(key, expected_revision))
        return decode_object(ch.prev_value, ch.prev_revision)

    async def watch(self, prefix: str, since: int, *, shared: bool = False) -> AsyncIterator[WatchEvent]:
        """History from the log, then live changes from the hub, without gaps or duplicates:
        subscribe first, read history second, and skip live changes already replayed.
        ``shared``: live events are decoded once for all shared watchers (read-only objects)."""
        prefix = check_prefix(prefix)
        check_revision(since, "watch revision", optional=False)
        self._check_open()
        sub = self._hub.subscribe(prefix)
        decode = shared_event if shared else to_event
        try:
            last = since
            batch: list[Change] | None = await self._read(sqlite_db.history, prefix, since)
            while batch is not None:
                for ch in batch:
                    if ch.revision > last:
                        last = ch.revision
                        yield decode(ch)
                if sub.overflowed:   # fell behind: catch up from the log (or Gone)
                    sub.reset_overflow()
                    batch = await self._read(sqlite_db.history, prefix, last)
                    continue
                batch = await sub.next_batch()
        finally:
            self._hub.unsubscribe(sub)

    async def current_revision(self) -> int:
        self._check_open()
        return self._revision

    async def compact(self, revision: int) -> None:
        check_revision(revision, "compact revision", optional=False)
        await self._write(lambda w: w.compact(revision))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub.close()
        self._queue.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self._readers.shutdown(wait=True)
        for conn in [self._wconn, *self._rconns]:
            conn.close()
        os.close(self._lock_fd)

    @property
    def watcher_count(self) -> int:
        return len(self._hub)


def _create_private(path: str) -> None:
    """A new database is created 0600 (it holds Secrets); SQLite gives its -wal and -shm files
    the database file's permissions."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise sqlite3.OperationalError(f"{exc.strerror}") from None


def _lock(path: str) -> int:
    try:
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreOpenError(f"cannot open {path}: {exc.strerror} ({path}.lock)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreLocked(f"{path} is in use by another process (lock {path}.lock)") from None
    return fd
