"""DaemonSet controller: one pod per eligible node, node by node rolling updates, honest status.

The decisions are netemu.controllers.daemonset_plan (pure); this loop watches DaemonSets, Pods
and Nodes, creates daemon pods (unbound: the scheduler binds them through their node-name
affinity, as upstream since 1.12), deletes the planned ones, and PUTs the status that
``kubectl rollout status ds/NAME`` reads. A pod left on a node that was deleted is the pod
garbage collector's (netemu.controllers.podgc), as upstream.
"""

from __future__ import annotations

import time

from netemu.controllers import daemonset_plan as dp
from netemu.controllers.kube import Obj
from netemu.controllers.podowner import PodOwner
from netemu.controllers.replicaset import status_changed
from netemu.controllers.runtime import put_latest, rt, split_key


class DaemonSetController(PodOwner):
    name = "daemonset"
    service_account = "daemon-set-controller"
    kinds = ("DaemonSet", "Pod", "Node")
    owner_kind, component = "DaemonSet", "daemonset-controller"

    def setup(self) -> None:
        super().setup()
        self.cache("Node").add_handler(self._node, lambda o, n: self._node(n), self._node)

    def expectation_name(self, pod: Obj) -> str:
        return dp.target_node(pod)      # pods are made with generateName: creates are keyed by node

    def _node(self, node: Obj) -> None:
        for ds in self.cache("DaemonSet").list():
            self.enqueue_obj(ds)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        ds = self.cache("DaemonSet").get(name, ns)
        if ds is None:
            self.expectations.forget(key)
            return
        nodes, owned = self.cache("Node").list(), self.owned(ds)
        if self.expectations.satisfied(key):
            plan, hash_ = dp.plan(ds, nodes, owned), dp.template_hash(ds)
            creates = [(node, dp.new_pod(ds, node, hash_)) for node in dict.fromkeys(plan.create)]
            await self.write_pods(key, ds, creates, list({p["metadata"]["name"]: p for p in plan.delete}.values()))
        status = dp.status_for(ds, nodes, owned, time.time())
        if status_changed(ds, status):
            await put_latest(self.client, rt("DaemonSet"), ds, lambda d: {**d, "status": status},
                             subresource="status")
        if status["numberReady"] != status["numberAvailable"] or status["numberUnavailable"]:
            self.queue.add_after(key, 1.0)       # minReadySeconds and the rollout's next node
