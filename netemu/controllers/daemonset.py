"""DaemonSet controller: one pod per eligible node, node by node rolling updates, honest status.

The decisions are netemu.controllers.daemonset_plan (pure); this loop watches DaemonSets, Pods
and Nodes, creates daemon pods (unbound: the scheduler binds them through their node-name
affinity, as upstream since 1.12), deletes the planned ones, and PUTs the status that
``kubectl rollout status ds/NAME`` reads. A pod left on a node that was deleted is the pod
garbage collector's (netemu.controllers.podgc), as upstream.
"""

from __future__ import annotations

import asyncio
import time

from netemu.api import errors
from netemu.controllers import daemonset_plan as dp
from netemu.controllers.events import NORMAL, WARNING
from netemu.controllers.kube import Obj, controller_ref, key_of, name_of, ns_of, uid_of
from netemu.controllers.replicaset import raise_first, status_changed
from netemu.controllers.runtime import Controller, Expectations, put_latest, rt, split_key

COMPONENT = "daemonset-controller"


class DaemonSetController(Controller):
    name = "daemonset"
    service_account = "daemon-set-controller"
    kinds = ("DaemonSet", "Pod", "Node")

    def setup(self) -> None:
        self.expectations = Expectations()
        self.cache("DaemonSet").add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n),
                                            lambda ds: self.expectations.forget(key_of(ds)))
        self.cache("Pod").add_handler(self._pod_added, lambda o, n: self._pod_changed(n), self._pod_deleted)
        self.cache("Node").add_handler(self._node, lambda o, n: self._node(n), self._node)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_ref(pod)
        if ref and ref.get("kind") == "DaemonSet":
            return f"{ns_of(pod)}/{ref['name']}"
        return None

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.observed_create(key, dp.target_node(pod))   # creates are keyed by node
            self.queue.add(key)

    def _pod_changed(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.observed_delete(key, name_of(pod))
            self.queue.add(key)

    def _node(self, node: Obj) -> None:
        for ds in self.cache("DaemonSet").list():
            self.enqueue_obj(ds)

    async def resync_all(self) -> None:
        self._node({})

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        ds = self.cache("DaemonSet").get(name, ns)
        if ds is None:
            self.expectations.forget(key)
            return
        nodes = self.cache("Node").list()
        owned = [p for p in self.cache("Pod").list(ns) if (controller_ref(p) or {}).get("uid") == uid_of(ds)]
        if self.expectations.satisfied(key):
            await self._manage(key, ds, dp.plan(ds, nodes, owned))
        now = time.time()
        status = dp.status_for(ds, nodes, owned, now)
        if status_changed(ds, status):
            await put_latest(self.client, rt("DaemonSet"), ds, lambda d: {**d, "status": status},
                             subresource="status")
        if status["numberReady"] != status["numberAvailable"] or status["numberUnavailable"]:
            self.queue.add_after(key, 1.0)       # minReadySeconds and the rollout's next node

    async def _manage(self, key: str, ds: Obj, plan: dp.Plan) -> None:
        hash_ = dp.template_hash(ds)
        seen: set[str] = set()
        creates = [n for n in plan.create if not (n in seen or seen.add(n))]
        deletes = list({name_of(p): p for p in plan.delete}.values())

        async def create(node: str) -> None:
            self.expectations.expect_create(key, node)
            try:
                pod = await self.client.create(rt("Pod"), dp.new_pod(ds, node, hash_), ns_of(ds))
            except errors.StatusError as exc:
                self.expectations.observed_create(key, node)
                self.recorder.event(ds, WARNING, "FailedCreate", f"Error creating: {exc}", component=COMPONENT)
                raise
            self.recorder.event(ds, NORMAL, "SuccessfulCreate", f"Created pod: {name_of(pod)}",
                                component=COMPONENT)

        async def delete(pod: Obj) -> None:
            self.expectations.expect_delete(key, name_of(pod))
            try:
                await self.client.delete(rt("Pod"), name_of(pod), ns_of(pod))
            except errors.NotFound:
                self.expectations.observed_delete(key, name_of(pod))
                return
            self.recorder.event(ds, NORMAL, "SuccessfulDelete", f"Deleted pod: {name_of(pod)}",
                                component=COMPONENT)
        results = await asyncio.gather(*(create(n) for n in creates), *(delete(p) for p in deletes),
                                       return_exceptions=True)
        raise_first(results)
