"""The kubelet's core/v1 Events (Pulled, Created, Started, Killing, Unhealthy, BackOff, Failed).

What `kubectl describe pod` shows under Events, written like client-go's recorder: source
component "kubelet" with the node as host, identical repeats (same pod, type, reason, message)
bump ``count``/``lastTimestamp`` of one Event instead of creating another. Best-effort as
upstream: never blocks a pod worker, dropped (with a log line) when the API is unreachable or
too many writes are already pending. Kept apart from netemu.controllers.events so the agent
imports nothing from the control plane; only (name, count) is remembered per key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from netemu.agent.kubelet.conditions import rfc3339
from netemu.api import errors
from netemu.api.kinds import by_kind
from netemu.api.meta import Obj

log = logging.getLogger(__name__)
EVENT = by_kind("v1", "Event")
NORMAL, WARNING = "Normal", "Warning"


def pod_event(pod: Obj, etype: str, reason: str, message: str, node: str, t: float) -> Obj:
    """The Event (pure); name ``<pod>.<hex nanoseconds>`` like upstream's."""
    meta = pod.get("metadata") or {}
    stamp = rfc3339(t)
    ns = meta.get("namespace") or "default"
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta.get('name', '')}.{int(t * 1e9):x}", "namespace": ns},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "name": meta.get("name", ""), "namespace": ns,
                               "uid": meta.get("uid", "")},
            "reason": reason, "message": message[:1024], "type": etype,
            "source": {"component": "kubelet", "host": node}, "firstTimestamp": stamp, "lastTimestamp": stamp,
            "count": 1, "reportingComponent": "kubelet", "reportingInstance": node}


class EventRecorder:
    def __init__(self, api: Any, node: str, max_pending: int = 200, max_keys: int = 4096,
                 slots: asyncio.Semaphore | None = None):
        self.api, self.node = api, node
        self.slots = slots or asyncio.Semaphore(8)
        self.max_pending, self.max_keys = max_pending, max_keys
        self._seen: dict[tuple, tuple[str, int]] = {}      # key -> (event name, count)
        self._pending: set[asyncio.Task] = set()

    def __call__(self, pod: Obj, etype: str, reason: str, message: str) -> None:
        if len(self._pending) >= self.max_pending:
            log.info("event %s for %s dropped: %d writes pending", reason, pod["metadata"].get("name"),
                     len(self._pending))
            return
        task = asyncio.ensure_future(self._write(pod_event(pod, etype, reason, message, self.node, time.time())))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def forget(self, uid: str) -> None:
        """The pod is gone: its aggregation keys go too."""
        for key in [k for k in self._seen if k[0] == uid]:
            del self._seen[key]

    async def _write(self, ev: Obj) -> None:
        async with self.slots:
            await self._write_now(ev)

    async def _write_now(self, ev: Obj) -> None:
        key = (ev["involvedObject"]["uid"], ev["type"], ev["reason"], ev["message"])
        ns = ev["metadata"]["namespace"]
        try:
            prev = self._seen.get(key)
            if prev is not None:
                name, count = prev
                self._seen[key] = (name, count + 1)
                try:
                    await self.api.patch(EVENT, name, {"count": count + 1, "lastTimestamp": ev["lastTimestamp"]}, ns)
                    return
                except errors.NotFound:
                    pass
            created = await self.api.create(EVENT, ev, ns)
            self._seen[key] = (created["metadata"]["name"], 1)
            if len(self._seen) > self.max_keys:
                self._seen.pop(next(iter(self._seen)))
        except Exception as exc:  # unreachable API, a name clash: an Event is best-effort
            log.info("event %s not recorded: %s", ev["reason"], exc)
