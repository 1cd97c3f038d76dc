"""The etcd v3 backend, over etcd's JSON gRPC gateway with aiohttp (no gRPC dependency).

Keys are upstream's (``/registry/services/specs/default/web``) and values the objects' JSON, so
``etcdctl get /registry/services --prefix`` shows what the cluster holds, as on a real control
plane. The mapping to etcd is the one upstream's storage/etcd3 store uses:

- create: a txn comparing ``create_revision == 0`` (the key does not exist);
- update/delete: a txn comparing ``mod_revision == expected`` (or ``create_revision > 0`` for an
  unconditional one), whose failure branch reads the key to tell NotFound from Conflict;
- list: a range [prefix, prefix+1) with ``limit`` and ``revision`` for consistent pages;
- watch: ``start_revision = since + 1`` with ``prev_kv`` (DELETED events carry the last value);
  a ``compact_revision`` in the answer is ``Gone``.

etcd 3.4's gateway speaks JSON with base64 keys/values and int64s as strings.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, AsyncIterator

import aiohttp

from netemu.api.errors import (AlreadyExists, BadRequest, Conflict, Gone, InternalError, NotFound,
                               ServiceUnavailable, StatusError)
from netemu.store.base import ADDED, DELETED, MODIFIED, ListResult, Store, WatchEvent
from netemu.store.keys import (check_key, check_list_args, check_prefix, check_revision,
                               decode_object, encode_object, prefix_end_bytes)

GRPC_OUT_OF_RANGE = 11
log = logging.getLogger(__name__)


def b64(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text) if text else b""


def key_range(prefix: str, start_after: str | None = None) -> dict[str, str]:
    """The range request fields for keys under ``prefix`` (after ``start_after``)."""
    start = prefix.encode()
    if start_after is not None and start_after.encode() >= start:
        start = start_after.encode() + b"\x00"          # the smallest key after start_after
    return {"key": b64(start or b"\x00"), "range_end": b64(prefix_end_bytes(prefix.encode()))}


def kv_object(kv: dict[str, Any], revision: int | None = None) -> dict[str, Any]:
    """An object from an etcd kv, at its mod revision unless told otherwise."""
    return decode_object(unb64(kv.get("value", "")), revision or int(kv["mod_revision"]))


def event_from(ev: dict[str, Any]) -> WatchEvent:
    """A WatchEvent from one etcd watch event (PUT is etcd's default and so is omitted in JSON)."""
    kv = ev["kv"]
    key = unb64(kv["key"]).decode()
    rev = int(kv["mod_revision"])
    prev = ev.get("prev_kv")
    prev_obj = kv_object(prev) if prev else None
    if ev.get("type") == "DELETE":
        obj = kv_object(prev, rev) if prev else {"metadata": {"resourceVersion": str(rev)}}
        return WatchEvent(DELETED, key, obj, rev, prev_obj)
    kind = ADDED if kv.get("create_revision") == kv.get("mod_revision") else MODIFIED
    return WatchEvent(kind, key, kv_object(kv), rev, prev_obj)


class SharedEvents:
    """The decoded events recently seen on any etcd watch stream of this store, by (key,
    revision): over etcd every API watch has its own stream, and 100 watchers of pods would
    each base64-decode and parse every pod write (and its previous value). With ``shared``
    watches the first stream to see a change decodes it and the others reuse that (read-only)
    event. Bounded: a slow stream that arrives after eviction decodes its own copy."""

    def __init__(self, size: int = 1024):
        self.size = size
        self._events: dict[tuple[str, str, str], WatchEvent] = {}

    def get(self, ev: dict[str, Any]) -> WatchEvent:
        kv = ev["kv"]
        ident = (kv["key"], str(kv.get("mod_revision")), ev.get("type") or "PUT")
        event = self._events.get(ident)
        if event is None:
            event = event_from(ev)
            if len(self._events) >= self.size:
                self._events.pop(next(iter(self._events)))
            self._events[ident] = event
        return event


def raise_for(status: int, body: dict[str, Any], what: str,
              default: type[StatusError] = InternalError) -> None:
    """Map a gateway error onto our Status errors. Unary calls answer
    ``{"error", "code", "message"}``, streams ``{"grpc_code", "http_code", "message"}``."""
    message = body.get("message") or body.get("error") or str(body)
    code = body.get("code", body.get("grpc_code"))
    if code == GRPC_OUT_OF_RANGE and "compacted" in message:
        raise Gone(f"{what}: {message}")
    if code in (3, 11):   # InvalidArgument / OutOfRange (future revision): our request was wrong
        raise BadRequest(f"{what}: {message}")
    if status >= 500 or code in (1, 4, 14):  # Cancelled / DeadlineExceeded / Unavailable
        raise ServiceUnavailable(f"etcd unavailable ({what}): {message}")
    raise default(f"etcd error ({what}): {message}")


class EtcdStore(Store):
    """``EtcdStore(["http://127.0.0.1:2379", ...], history=None)``.

    Requests fail over between endpoints. ``history=N`` compacts etcd to keep the newest N
    revisions (as ``SqliteStore(history=N)``); None leaves compaction to etcd's own settings.
    """

    def __init__(self, endpoints: list[str] | str, *, timeout: float = 30.0,
                 history: int | None = None):
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        if history is not None and history < 1:
            raise ValueError("history must be at least 1 revision")
        self.history = history
        self._compacted_hint = 0
        self._current = 0
        self._session: aiohttp.ClientSession | None = None
        self._streams: set[aiohttp.ClientResponse] = set()
        self._shared_events = SharedEvents()
        self._closed = False

    # ---- HTTP plumbing --------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise InternalError("store is closed")
        if self._session is None:
            # no connection cap: every watch holds one streaming request open
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def _open(self, path: str, body: dict[str, Any], timeout: aiohttp.ClientTimeout):
        """POST to the current endpoint, moving on to the next one when it cannot be reached
        (only connect failures are retried: the request never left, so no write is doubled)."""
        errors = []
        for i in range(len(self.endpoints)):
            idx = (self._current + i) % len(self.endpoints)
            try:
                resp = await self._http().post(self.endpoints[idx] + path, json=body, timeout=timeout)
                self._current = idx
                return resp
            except aiohttp.ClientConnectorError as exc:
                errors.append(f"{self.endpoints[idx]}: {exc}")
        raise ServiceUnavailable("etcd unreachable: " + "; ".join(errors))

    async def _post(self, path: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with await self._open(path, body, timeout) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable(f"etcd request failed ({what}): {exc!r}") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise InternalError(f"etcd answered {status} with non-JSON: {text[:200]!r}") from None
        if status != 200 or "error" in data:
            raise_for(status, data, what)
        return data

    async def _txn(self, compare: list, success: list, failure: list, what: str) -> dict[str, Any]:
        data = await self._post("/v3/kv/txn", {"compare": compare, "success": success,
                                               "failure": failure}, what)
        if data.get("succeeded") and self.history:
            await self._auto_compact(int(data["header"]["revision"]))
        return data

    async def _auto_compact(self, revision: int) -> None:
        """With ``history=N``, keep the newest N revisions, like the SQLite store (and like
        upstream's API server, which compacts etcd itself). Runs every ~N/8 writes, inline so
        it is deterministic; a failure only delays it (the write itself already succeeded)."""
        kept = revision - max(self._compacted_hint, 1) + 1
        if kept <= self.history + max(1, self.history // 8):
            return
        target = revision - self.history + 1
        self._compacted_hint = target
        try:
            await self.compact(target)
        except StatusError as exc:
            log.warning("etcd auto-compaction at %d failed: %s", target, exc.message)

    # ---- the Store contract ---------------------------------------------------------------

    async def get(self, key: str) -> dict[str, Any]:
        key = check_key(key)
        data = await self._post("/v3/kv/range", {"key": b64(key)}, f"get {key}")
        if not data.get("kvs"):
            raise NotFound(f"key {key} not found", details={"key": key})
        return kv_object(data["kvs"][0])

    async def list(self, prefix: str, *, limit: int | None = None, start_after: str | None = None,
                   revision: int | None = None) -> ListResult:
        prefix = check_list_args(prefix, limit, start_after, revision)
        body: dict[str, Any] = key_range(prefix, start_after)
        if limit is not None:
            body["limit"] = str(limit)
        if revision:
            body["revision"] = str(revision)
        data = await self._post("/v3/kv/range", body, f"list {prefix}")
        kvs = data.get("kvs", [])
        items = [kv_object(kv) for kv in kvs]
        more = bool(data.get("more"))
        at = revision or int(data["header"]["revision"])
        return ListResult(items, at, more, unb64(kvs[-1]["key"]).decode() if more and kvs else None)

    async def create(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        key, value = check_key(key), encode_object(obj)
        data = await self._txn(
            [{"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            [{"request_put": {"key": b64(key), "value": b64(value)}}], [], f"create {key}")
        if not data.get("succeeded"):
            raise AlreadyExists(f"key {key} already exists", details={"key": key})
        return decode_object(value, int(data["header"]["revision"]))

    def _guard(self, key: str, expected: int | None) -> list[dict[str, str]]:
        if expected is None:
            return [{"key": b64(key), "target": "CREATE", "result": "GREATER", "create_revision": "0"}]
        return [{"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(expected)}]

    def _failed(self, key: str, data: dict[str, Any]) -> None:
        """The failure branch read the key: absent is NotFound, present is Conflict."""
        ranged = (data.get("responses") or [{}])[0].get("response_range", {})
        if not ranged.get("kvs"):
            raise NotFound(f"key {key} not found", details={"key": key})
        raise Conflict(f"Operation cannot be fulfilled on {key}: the object has been modified; "
                       "please apply your changes to the latest version and try again",
                       details={"key": key})

    async def update(self, key: str, obj: dict[str, Any], *,
                     expected_revision: int | None = None) -> dict[str, Any]:
        key, value = check_key(key), encode_object(obj)
        check_revision(expected_revision, "expected_revision")
        data = await self._txn(self._guard(key, expected_revision),
                               [{"request_put": {"key": b64(key), "value": b64(value)}}],
                               [{"request_range": {"key": b64(key)}}], f"update {key}")
        if not data.get("succeeded"):
            self._failed(key, data)
        return decode_object(value, int(data["header"]["revision"]))

    async def delete(self, key: str, *, expected_revision: int | None = None) -> dict[str, Any]:
        key = check_key(key)
        check_revision(expected_revision, "expected_revision")
        data = await self._txn(self._guard(key, expected_revision),
                               [{"request_delete_range": {"key": b64(key), "prev_kv": True}}],
                               [{"request_range": {"key": b64(key)}}], f"delete {key}")
        if not data.get("succeeded"):
            self._failed(key, data)
        prev = data["responses"][0]["response_delete_range"].get("prev_kvs") or []
        if not prev:   # the compare said it existed; an empty answer is etcd's fault, not ours
            raise InternalError(f"etcd deleted {key} without returning its value")
        return kv_object(prev[0])

    async def watch(self, prefix: str, since: int, *, shared: bool = False) -> AsyncIterator[WatchEvent]:
        """Every watcher has its own etcd stream; ``shared`` watchers reuse one decoded event
        per change (``SharedEvents``), the others decode their own copy."""
        decode = self._shared_events.get if shared else event_from
        prefix = check_prefix(prefix)
        check_revision(since, "watch revision", optional=False)
        request = {"create_request": {**key_range(prefix), "start_revision": str(since + 1),
                                      "prev_kv": True}}
        resp = await self._open("/v3/watch", request, aiohttp.ClientTimeout(total=None))
        self._streams.add(resp)
        try:
            async for message in _json_lines(resp):
                result = message.get("result")
                if result is None:
                    if self._closed:
                        return
                    error = message.get("error")
                    raise_for(resp.status, error if isinstance(error, dict) else message,
                              f"watch {prefix}", default=ServiceUnavailable)
                if int(result.get("compact_revision", 0) or 0):
                    raise Gone(f"too old resource version: {since} "
                               f"(compacted at {result['compact_revision']})")
                if result.get("canceled"):
                    raise ServiceUnavailable(f"etcd cancelled the watch on {prefix}: "
                                             f"{result.get('cancel_reason', '')}")
                for ev in result.get("events", ()):
                    yield decode(ev)
            if not self._closed:
                raise ServiceUnavailable(f"etcd ended the watch stream on {prefix}")
        except aiohttp.ClientError as exc:
            if not self._closed:
                raise ServiceUnavailable(f"etcd watch on {prefix} broke: {exc!r}") from None
        finally:
            self._streams.discard(resp)
            resp.close()

    async def current_revision(self) -> int:
        data = await self._post("/v3/kv/range", {"key": b64(b"\x00"), "count_only": True},
                                "current revision")
        return int(data["header"]["revision"])

    async def compact(self, revision: int) -> None:
        check_revision(revision, "compact revision", optional=False)
        try:
            await self._post("/v3/kv/compaction", {"revision": str(revision)}, "compact")
        except Gone:
            pass                     # already compacted at or past it: nothing to do

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for resp in list(self._streams):
            resp.close()
        if self._session is not None:
            await self._session.close()


async def _json_lines(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The gateway's stream: one JSON document per line, lines of any length."""
    buf = b""
    async for chunk in resp.content.iter_any():
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
    if buf.strip():
        yield json.loads(buf)
