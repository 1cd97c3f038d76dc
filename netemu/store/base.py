"""The contract every store backend keeps (embedded SQLite, etcd v3).

Like etcd's MVCC model, which the Kubernetes API server is built on:

- one global ``revision`` counter; every successful write (create, update, delete) bumps it;
- an object's ``metadata.resourceVersion`` is the revision of its last write (its mod revision),
  as a decimal string; the store sets it on everything it returns and ignores it on input;
- writes may be conditional on the object's current revision (optimistic concurrency): a stale
  expectation raises ``Conflict`` and changes nothing;
- ``watch(prefix, since)`` yields every change with revision > ``since`` under the prefix, first
  replaying history, then live; history is bounded, and a ``since`` older than the compacted
  revision raises ``Gone`` (the API server turns it into 410, the client relists);
- errors are ``netemu.api.errors`` StatusErrors: NotFound, AlreadyExists, Conflict, Gone, and
  BadRequest for malformed keys, values, limits or revisions (nothing is written then).

Returned objects (and watch event objects, unless watched with ``shared=True``) are fresh dicts
the caller may mutate.

Values are the objects' JSON (dicts). Keys follow upstream's layout, from ``netemu.api.kinds``.
The interface is asyncio: the API server serves many watchers from one event loop.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, AsyncIterator

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


@dataclass(frozen=True)
class WatchEvent:
    """One change. ``object`` is the new value (for DELETED: the last value, at the delete's
    revision, as upstream sends it); ``revision`` is the write's revision."""

    type: str
    key: str
    object: dict[str, Any]
    revision: int
    prev_object: dict[str, Any] | None = None


@dataclass(frozen=True)
class ListResult:
    items: list[dict[str, Any]]
    revision: int                 # the store revision the list is consistent at
    more: bool = False            # True when ``limit`` cut the list short
    next_key: str | None = None   # continue after this key (exclusive)


class Store(abc.ABC):
    """A watchable, versioned key-value store of JSON objects."""

    @abc.abstractmethod
    async def get(self, key: str) -> dict[str, Any]:
        """The object at ``key`` (with resourceVersion); raises ``NotFound``."""

    @abc.abstractmethod
    async def list(self, prefix: str, *, limit: int | None = None, start_after: str | None = None,
                   revision: int | None = None) -> ListResult:
        """Objects whose key starts with ``prefix``, in key order, consistent at one revision.

        ``start_after`` continues a paged list; ``revision`` reads at an older revision (for
        continue tokens) and raises ``Gone`` when that revision is compacted.
        """

    @abc.abstractmethod
    async def create(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object; raises ``AlreadyExists`` if the key exists."""

    @abc.abstractmethod
    async def update(self, key: str, obj: dict[str, Any], *,
                     expected_revision: int | None = None) -> dict[str, Any]:
        """Replace an existing object; ``expected_revision`` makes it conditional.

        Raises ``NotFound`` (no such key) or ``Conflict`` (revision moved on).
        """

    @abc.abstractmethod
    async def delete(self, key: str, *, expected_revision: int | None = None) -> dict[str, Any]:
        """Remove an object, returning its last value; raises ``NotFound`` / ``Conflict``."""

    @abc.abstractmethod
    def watch(self, prefix: str, since: int, *, shared: bool = False) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefix`` with revision > ``since``, history first, then live.

        ``shared=True``: the caller promises not to mutate the events' objects, so a backend
        may hand the same decoded event to every such watcher (the API server's watch path:
        one decode per write instead of one per watcher).

        Raises ``Gone`` (at the first ``__anext__``) when ``since`` is older than the history.
        The iterator ends only when the store closes or the consumer stops iterating.
        """

    @abc.abstractmethod
    async def current_revision(self) -> int:
        """The revision of the newest write (0 for an empty SQLite store; a fresh etcd says 1)."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history before ``revision``, with etcd's semantics.

        The state at ``revision`` stays readable (``list(revision=revision)`` works) and a watch
        with ``since >= revision - 1`` still gets every event; older ``since``/``revision`` values
        raise ``Gone``. Compacting at or below an earlier compaction is a no-op; above the current
        revision is ``BadRequest``.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and end live watches (their iterators stop). Safe to call twice."""

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
