"""Pod garbage collector: pods bound to a node that no longer exists are force-deleted
(upstream PodGC gcOrphaned), so a removed node's pods (and their endpoints) go away."""

from __future__ import annotations

from netemu.api import errors
from netemu.controllers.kube import Obj, key_of, name_of, ns_of
from netemu.controllers.runtime import Controller, rt, split_key


def orphaned(pods: list[Obj], node_names: set[str]) -> list[Obj]:
    return [p for p in pods if (p.get("spec") or {}).get("nodeName")
            and p["spec"]["nodeName"] not in node_names]


class PodGCController(Controller):
    name = "podgc"
    service_account = "pod-garbage-collector"
    kinds = ("Pod", "Node")

    def setup(self) -> None:
        self.cache("Node").add_handler(on_delete=lambda n: self._node_gone(name_of(n)))
        self.cache("Pod").add_handler(self._pod, lambda o, n: None)

    def _pod(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and self.cache("Node").has_synced and self.cache("Node").get(node) is None:
            self.queue.add(key_of(pod))

    def _node_gone(self, node: str) -> None:
        for pod in self.cache("Pod").list():
            if (pod.get("spec") or {}).get("nodeName") == node:
                self.queue.add(key_of(pod))

    async def resync_all(self) -> None:
        names = {name_of(n) for n in self.cache("Node").list()}
        for pod in orphaned(self.cache("Pod").list(), names):
            self.queue.add(key_of(pod))

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        pod = self.cache("Pod").get(name, ns)
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or self.cache("Node").get(node) is not None:
            return
        try:
            await self.client.get(rt("Node"), node)
            return  # the cache is behind: the node exists
        except errors.NotFound:
            pass
        try:
            await self.client.delete(rt("Pod"), name_of(pod), ns_of(pod), grace_period_seconds=0)
        except errors.NotFound:
            pass
