"""core/v1 Events, built and aggregated the way client-go's legacy event recorder does.

``kubectl describe`` and ``kubectl get events --sort-by=.metadata.creationTimestamp`` read these.
The same (source, involved object, type, reason, message) repeated bumps ``count`` and
``lastTimestamp`` of one Event instead of creating another (upstream EventCorrelator's
aggregation of identical events). Building is pure; ``Recorder`` writes without blocking the
control loop that reported (an Event is best-effort upstream too).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from netemu.api import errors
from netemu.controllers.kube import Obj, meta, rfc3339

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"


def object_reference(obj: Obj) -> Obj:
    m = meta(obj)
    ref = {"kind": obj.get("kind", ""), "name": m.get("name", ""), "uid": m.get("uid", ""),
           "apiVersion": obj.get("apiVersion", ""), "resourceVersion": m.get("resourceVersion", "")}
    if m.get("namespace"):
        ref["namespace"] = m["namespace"]
    return ref


def new_event(involved: Obj, etype: str, reason: str, message: str, component: str, t: float) -> Obj:
    """The Event upstream's recorder would create (name ``<object>.<hex nanoseconds>``)."""
    ref = object_reference(involved)
    stamp = rfc3339(t)
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{ref['name']}.{int(t * 1e9):x}", "namespace": ref.get("namespace") or "default"},
        "involvedObject": ref, "reason": reason, "message": message[:1024], "type": etype,
        "source": {"component": component}, "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        "eventTime": None, "reportingComponent": component, "reportingInstance": "",
    }


def aggregate_key(event: Obj) -> tuple:
    ref = event["involvedObject"]
    return (event["source"]["component"], ref.get("namespace", ""), ref["kind"], ref["name"], ref["uid"],
            event["type"], event["reason"], event["message"])


class Recorder:
    """Posts Events in the background; identical repeats become a count bump (PATCH)."""

    def __init__(self, client: Any, component: str = "netemu-controller-manager"):
        self.client = client
        self.component = component
        self._seen: dict[tuple, Obj] = {}
        self._tasks: set[asyncio.Task] = set()
        self._lock = asyncio.Lock()
        self.recorded: list[Obj] = []  # what was reported, newest last (bounded): for logs/tests

    def event(self, involved: Obj, etype: str, reason: str, message: str, component: str | None = None) -> None:
        ev = new_event(involved, etype, reason, message, component or self.component, time.time())
        self.recorded = (self.recorded + [ev])[-200:]
        task = asyncio.ensure_future(self._write(ev))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, ev: Obj) -> None:
        from netemu.controllers.runtime import rt
        events = rt("Event")
        key = aggregate_key(ev)
        async with self._lock:
            prev = self._seen.get(key)
            try:
                if prev is not None:
                    patch = {"count": prev["count"] + 1, "lastTimestamp": ev["lastTimestamp"]}
                    try:
                        stored = await self.client.patch(events, prev["metadata"]["name"], patch,
                                                         prev["metadata"]["namespace"])
                        self._seen[key] = stored
                        return
                    except errors.NotFound:
                        pass
                self._seen[key] = await self._create(events, ev)
                if len(self._seen) > 4096:
                    self._seen.pop(next(iter(self._seen)))
            except errors.StatusError as exc:
                log.info("event %s %s not recorded: %s", ev["reason"], ev["involvedObject"]["name"], exc)
            except Exception as exc:  # connection trouble: an Event is best-effort
                log.info("event %s not recorded: %s", ev["reason"], exc)

    async def _create(self, events: Any, ev: Obj) -> Obj:
        """Create; two Events of one object in the same nanosecond tick get distinct names."""
        for _ in range(3):
            try:
                return await self.client.create(events, ev, ev["metadata"]["namespace"])
            except errors.AlreadyExists:
                base, _, stamp = ev["metadata"]["name"].rpartition(".")
                ev["metadata"]["name"] = f"{base}.{int(stamp, 16) + 1:x}"
        return await self.client.create(events, ev, ev["metadata"]["namespace"])

    async def flush(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
