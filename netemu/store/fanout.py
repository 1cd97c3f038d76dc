"""In-process watch fan-out: one committed change, many watchers, no per-watcher thread or query.

The embedded store commits on its writer thread and hands each committed batch to ``Hub.publish``
on the event loop. Every live watcher has a small buffer here; publishing is a prefix test and a
deque append per watcher, so hundreds of watchers cost little. A watcher that falls too far behind
is not allowed to grow memory without bound: its buffer is dropped and it is marked ``overflowed``;
it then catches up from the store's history (or gets ``Gone`` when that history is compacted),
which is what the Kubernetes watch cache does with a slow client.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Change:
    """One committed write as stored (JSON text, not yet decoded: each watcher decodes its own
    copy, so no consumer can mutate another's object)."""

    revision: int
    type: str                   # ADDED / MODIFIED / DELETED
    key: str
    value: str | None           # new value (None for DELETED)
    prev_value: str | None      # value before the write (None for ADDED)
    prev_revision: int          # mod revision of prev_value (0 for ADDED)


class Subscription:
    """The live side of one watch: a bounded buffer filled by ``Hub.publish``."""

    def __init__(self, prefix: str, max_buffer: int):
        self.prefix = prefix
        self._buf: deque[Change] = deque()
        self._max = max_buffer
        self._wake = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def matches(self, key: str) -> bool:
        return key.startswith(self.prefix)

    def push(self, change: Change) -> None:
        if self.overflowed:
            return
        if len(self._buf) >= self._max:
            self._buf.clear()
            self.overflowed = True
        else:
            self._buf.append(change)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    def reset_overflow(self) -> None:
        """Start buffering again; the caller re-reads history from its last revision."""
        self.overflowed = False
        self._buf.clear()

    async def next_batch(self) -> list[Change] | None:
        """Buffered changes (waiting for some); [] after an overflow; None once closed."""
        while not self._buf and not self.overflowed and not self.closed:
            self._wake.clear()
            await self._wake.wait()
        if self.overflowed:
            return []
        if self._buf:
            out = list(self._buf)
            self._buf.clear()
            return out
        return None


class Hub:
    """All live subscriptions of one store."""

    def __init__(self, max_buffer: int = 10_000):
        self._subs: set[Subscription] = set()
        self._max_buffer = max_buffer

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(self, prefix: str) -> Subscription:
        sub = Subscription(prefix, self._max_buffer)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, changes: Iterable[Change]) -> None:
        changes = list(changes)
        for sub in self._subs:
            for ch in changes:
                if ch.key.startswith(sub.prefix):
                    sub.push(ch)

    def close(self) -> None:
        for sub in list(self._subs):
            sub.close()
        self._subs.clear()
