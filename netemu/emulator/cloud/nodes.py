"""The cloud node-lifecycle controller (cloud-controller-manager's, k8s.io/cloud-provider
controllers/nodelifecycle, v1.32): every monitor period, a Node that is not Ready and whose
instance the cloud no longer has is deleted -- its pods are then removed by PodGC and their
controllers recreate them elsewhere. Here the cloud is the supervisor: ``instances()`` gives the
node hosts it currently runs (``netemu node remove`` takes one away).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Callable

from netemu.api import errors
from netemu.api.kinds import by_kind

log = logging.getLogger(__name__)
NODE, EVENT = by_kind("v1", "Node"), by_kind("v1", "Event")
MONITOR_PERIOD = 5.0          # --node-monitor-period of cloud-controller-manager


def ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def to_delete(nodes: list[dict], instances: set[str]) -> list[str]:
    """Pure: the Nodes that are not Ready and have no instance any more."""
    return sorted(n["metadata"]["name"] for n in nodes
                  if not ready(n) and n["metadata"]["name"] not in instances)


def deleting_event(node: dict) -> dict:
    name = node["metadata"]["name"]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": name, "uid": node["metadata"].get("uid", ""), "apiVersion": "v1"},
            "reason": "DeletingNode", "type": "Normal",
            "message": f"Deleting node {name} because it does not exist in the cloud provider",
            "source": {"component": "cloud-node-lifecycle-controller"},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1}


class CloudNodeLifecycle:
    def __init__(self, api, instances: Callable[[], set[str]], period: float = MONITOR_PERIOD):
        self.api, self.instances, self.period = api, instances, period

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.monitor()
            except Exception as exc:  # the API unreachable for a moment: the next period tries again
                log.warning("cloud node lifecycle: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), self.period)
            except asyncio.TimeoutError:
                pass

    async def monitor(self) -> list[str]:
        nodes = (await self.api.list(NODE)).items
        gone = to_delete(nodes, self.instances())
        by_name = {n["metadata"]["name"]: n for n in nodes}
        for name in gone:
            log.info("deleting node %s: its instance is gone from the cloud", name)
            try:
                await self.api.create(EVENT, deleting_event(by_name[name]), "default")
            except errors.StatusError:
                pass
            try:
                await self.api.delete(NODE, name)
            except errors.NotFound:
                pass
        return gone
