"""Helpers shared by the store suites (no tests here).

Run one async test body against a store backend (no pytest-asyncio: each test owns its loop).

``Backend.run(body)`` opens a fresh store inside a new event loop, calls ``body(store, k)`` and
closes the store even when the body fails. ``k(path)`` turns a key path into the backend's key:
etcd tests share one server per module, so each test lives under its own random root.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from netemu.store.base import Store


@dataclass
class Backend:
    name: str
    factory: Callable[..., Store]
    root: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def k(self, path: str) -> str:
        return self.root + path

    def run(self, body: Callable[[Store, Callable[[str], str]], Awaitable[Any]], timeout: float = 60,
            **options: Any) -> Any:
        async def main():
            store = self.factory(**{**self.options, **options})
            try:
                return await asyncio.wait_for(body(store, self.k), timeout)
            finally:
                await store.close()
        return asyncio.run(main())


def unique_root() -> str:
    return f"/t{uuid.uuid4().hex[:10]}"


async def take(it, n: int, timeout: float = 10) -> list:
    """The next ``n`` items of an async iterator (fails the test instead of hanging)."""
    out = []
    for _ in range(n):
        out.append(await asyncio.wait_for(it.__anext__(), timeout))
    return out


async def nothing_more(it, wait: float = 0.2) -> bool:
    """True when the iterator yields nothing within ``wait`` seconds."""
    task = asyncio.ensure_future(it.__anext__())
    done, _ = await asyncio.wait({task}, timeout=wait)
    if done:
        task.result()
        return False
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, StopAsyncIteration):
        pass
    return True
