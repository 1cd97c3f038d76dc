"""The scheduler's watch loop: pending pods in, Bindings (or PodScheduled=False) out.

Reads pods and nodes only from shared informers. Pods it has bound but not yet seen bound in its
cache are "assumed" (upstream's scheduler cache), so consecutive decisions do not overcommit a
node. A pod that fits nowhere gets PodScheduled=False/Unschedulable with the FitError text and a
FailedScheduling Event, and waits until the cluster changes (node added or updated, a pod
deleted or finished) or a periodic flush (upstream podMaxInUnschedulablePodsDuration).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time

from netemu.api import errors
from netemu.client import paths
from netemu.controllers.events import NORMAL, WARNING
from netemu.controllers.kube import Obj, is_deleting, key_of, pod_is_terminal, rfc3339, set_condition
from netemu.controllers.runtime import Controller, rt, split_key
from netemu.controllers.scheduler.framework import Decision, schedule
from netemu.controllers.scheduler.snapshot import Snapshot

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
SCORES_ANNOTATION = "scheduler.netemu.io/decision"
UNSCHEDULABLE_FLUSH = 30.0
BIND_CONCURRENCY = 16


def wants_scheduling(pod: Obj) -> bool:
    """Unbound, alive, ours (schedulerName) and not held back by spec.schedulingGates."""
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName") and not is_deleting(pod) and not pod_is_terminal(pod)
            and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
            and not spec.get("schedulingGates"))


def decision_record(decision: Decision) -> str:
    """What ``netemu explain`` shows: chosen node, totals and per-plugin scores, rejections."""
    return json.dumps({
        "node": decision.node, "totals": decision.totals, "scores": decision.scores,
        "rejected": {n: list(r.reasons) for n, r in decision.rejected.items()},
    }, sort_keys=True, separators=(",", ":"))


def unschedulable_status(pod: Obj, message: str, now: float) -> list[Obj]:
    cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
            "lastProbeTime": None}
    return set_condition((pod.get("status") or {}).get("conditions") or [], cond, rfc3339(now))


class Scheduler(Controller):
    name = "scheduler"
    kinds = ("Pod", "Node")

    def setup(self) -> None:
        self.assumed: dict[str, Obj] = {}
        self._binders = asyncio.Semaphore(BIND_CONCURRENCY)
        self.unschedulable: set[str] = set()
        self.rng = random.Random()
        self._snapshot: Snapshot | None = None
        self.cache("Pod").add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.cache("Node").add_handler(lambda n: self._cluster_changed(nodes_changed=True),
                                       lambda o, n: self._node_updated(o, n),
                                       lambda n: self._invalidate())

    # -- handlers --------------------------------------------------------------------------

    def _invalidate(self) -> None:
        self._snapshot = None

    def _cluster_changed(self, nodes_changed: bool = False) -> None:
        """Something that may make an unschedulable pod fit: move them all back to the queue."""
        if nodes_changed:
            self._invalidate()
        for key in list(self.unschedulable):
            self.queue.add(key)
        self.unschedulable.clear()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        # heartbeats change only timestamps: do not requeue every pending pod for those
        if (old.get("spec") != new.get("spec") or (old.get("metadata") or {}).get("labels")
                != (new.get("metadata") or {}).get("labels")
                or _conditions(old) != _conditions(new)
                or (old.get("status") or {}).get("allocatable") != (new.get("status") or {}).get("allocatable")):
            self._cluster_changed(nodes_changed=True)

    def _track(self, pod: Obj) -> None:
        """Keep the snapshot current: one pod's change is one add/replace, not a rebuild. A pod
        assumed on a node stays counted there until the cache shows it bound."""
        if self._snapshot is None:
            return
        if not (pod.get("spec") or {}).get("nodeName") and key_of(pod) in self.assumed:
            return
        self._snapshot.add_pod(pod)

    def _pod_added(self, pod: Obj) -> None:
        self._track(pod)
        if wants_scheduling(pod):
            self.queue.add(key_of(pod))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = key_of(new)
        if (new.get("spec") or {}).get("nodeName"):
            self.assumed.pop(key, None)
        self._track(new)
        if pod_is_terminal(new) and not pod_is_terminal(old):
            self._cluster_changed()
        if key in self.unschedulable and (old.get("spec") != new.get("spec")
                                          or (old.get("metadata") or {}).get("labels")
                                          != (new.get("metadata") or {}).get("labels")):
            self.unschedulable.discard(key)  # e.g. a toleration added: worth another try
        if wants_scheduling(new) and key not in self.unschedulable:
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = key_of(pod)
        self.assumed.pop(key, None)
        self.unschedulable.discard(key)
        if self._snapshot is not None:
            self._snapshot.remove_pod(key)
        if (pod.get("spec") or {}).get("nodeName"):
            self._cluster_changed()

    async def resync_all(self) -> None:
        for pod in self.cache("Pod").list():
            if wants_scheduling(pod):
                self.queue.add(key_of(pod))
        self.background(self._flush_unschedulable())

    async def _flush_unschedulable(self) -> None:
        while True:
            await asyncio.sleep(UNSCHEDULABLE_FLUSH)
            self._cluster_changed(nodes_changed=True)  # and rebuild the snapshot from the caches

    # -- one cycle -------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            pods = {key_of(p): p for p in self.cache("Pod").list()}
            pods.update(self.assumed)
            self._snapshot = Snapshot.build(self.cache("Node").list(), list(pods.values()))
        return self._snapshot

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        pod = self.cache("Pod").get(name, ns)
        if pod is None or not wants_scheduling(pod) or key in self.assumed:
            return
        snap = self.snapshot()
        decision = schedule(pod, snap, self.rng)
        if decision.node is None:
            await self._unschedulable(key, pod, decision)
            return
        bound = dict(pod, spec=dict(pod.get("spec") or {}, nodeName=decision.node))
        self.assumed[key] = bound
        snap.add_pod(bound)
        self.unschedulable.discard(key)
        # the binding cycle runs beside the next scheduling cycles (upstream binds in a
        # goroutine): the pod is assumed on its node meanwhile, so the next decision counts it
        await self._binders.acquire()
        self.background(self._binding_cycle(key, pod, decision))

    async def _binding_cycle(self, key: str, pod: Obj, decision: Decision) -> None:
        ns, name = split_key(key)
        try:
            await self._bind(pod, decision)
        except Exception as exc:  # forget the assumption and try this pod again later
            log.info("binding %s to %s failed: %s", key, decision.node, exc)
            self.assumed.pop(key, None)
            if self._snapshot is not None:
                self._snapshot.remove_pod(key)
            self.queue.add_after(key, 1.0)
            return
        finally:
            self._binders.release()
        self.recorder.event(pod, NORMAL, "Scheduled",
                            f"Successfully assigned {ns}/{name} to {decision.node}", component=SCHEDULER_NAME)

    async def _bind(self, pod: Obj, decision: Decision) -> None:
        """POST pods/binding; the decision rides along as a Binding annotation, which the API
        server copies onto the pod (upstream assignPod does the same with binding annotations)."""
        m = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": m["name"], "namespace": m["namespace"],
                             "annotations": {SCORES_ANNOTATION: decision_record(decision)}},
                "target": {"apiVersion": "v1", "kind": "Node", "name": decision.node}}
        path = paths.resource_path(rt("Pod"), m["namespace"], m["name"], "binding")
        await self.client.request("POST", path, body=body)

    async def _unschedulable(self, key: str, pod: Obj, decision: Decision) -> None:
        self.unschedulable.add(key)
        message = decision.message
        self.recorder.event(pod, WARNING, "FailedScheduling", message, component=SCHEDULER_NAME)
        conditions = unschedulable_status(pod, message, time.time())
        if conditions == (pod.get("status") or {}).get("conditions"):
            return
        m = pod["metadata"]
        try:
            await self.client.patch(rt("Pod"), m["name"], {"status": {"conditions": conditions}},
                                    m["namespace"], subresource="status")
        except errors.NotFound:
            pass


def _conditions(node: Obj) -> list[tuple]:
    return [(c.get("type"), c.get("status")) for c in (node.get("status") or {}).get("conditions") or []]
