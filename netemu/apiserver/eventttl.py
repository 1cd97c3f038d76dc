"""Events expire (upstream's --event-ttl, 1 h by default).

Upstream's API server writes every Event with an etcd lease of that TTL, renewed by each
update, so etcd drops an Event an hour after it last changed. netemu's stores have no leases:
this loop in the API server process looks every ``period`` seconds and deletes, through the
registry (watchers see DELETED), each Event whose last activity -- the latest of lastTimestamp,
eventTime, series.lastObservedTime and creationTimestamp -- is older than the TTL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Callable

from netemu.api import errors, kinds

log = logging.getLogger(__name__)
EVENTS = kinds.by_resource("", "v1", "events")
DEFAULT_TTL = 3600.0


def _parse(stamp: Any) -> dt.datetime | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def last_activity(event: dict[str, Any]) -> dt.datetime | None:
    """When the Event last changed, as far as its fields say (pure)."""
    stamps = [event.get("lastTimestamp"), event.get("eventTime"),
              (event.get("series") or {}).get("lastObservedTime"),
              (event.get("metadata") or {}).get("creationTimestamp")]
    parsed = [p for p in map(_parse, stamps) if p is not None]
    return max(parsed) if parsed else None


def expired(event: dict[str, Any], now: dt.datetime, ttl: float) -> bool:
    last = last_activity(event)
    return last is not None and (now - last).total_seconds() > ttl


async def collect(registry, now: dt.datetime, ttl: float, page: int = 500) -> int:
    """Delete every expired Event once; returns how many went."""
    gone, start = 0, None
    while True:
        listed = await registry.store.list(EVENTS.key_prefix, limit=page, start_after=start)
        for ev in listed.items:
            if expired(ev, now, ttl):
                md = ev.get("metadata") or {}
                try:
                    await registry.delete(EVENTS, md.get("namespace"), md.get("name", ""))
                    gone += 1
                except (errors.NotFound, errors.Conflict):
                    pass
        if not listed.more:
            return gone
        start = listed.next_key


async def run(registry, stop: asyncio.Event, ttl: float = DEFAULT_TTL,
              clock: Callable[[], dt.datetime] | None = None) -> None:
    """Until ``stop``: collect, then wait a tenth of the TTL (at most a minute)."""
    clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
    period = max(min(ttl / 10, 60.0), 0.05)
    while not stop.is_set():
        try:
            gone = await collect(registry, clock(), ttl)
            if gone:
                log.info("deleted %d Events older than %.0fs", gone, ttl)
        except Exception:  # the store closing under us, a transient etcd error: try again later
            log.exception("event TTL collection failed")
        try:
            await asyncio.wait_for(stop.wait(), period)
        except asyncio.TimeoutError:
            pass
