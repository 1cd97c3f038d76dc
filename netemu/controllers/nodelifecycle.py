"""Node lifecycle: heartbeats, NotReady after the grace period, NoExecute taints, evictions.

Upstream's NodeLifecycleController and taint-eviction controller, pure at the core:
- ``observe``: a node is alive while its Lease (kube-node-lease) renewTime or its Ready
  heartbeat keeps changing; the controller times what it *observed*, not the node's clock;
- ``stale_conditions``: no sign of life for the grace period (default 40 s) sets every condition
  to Unknown ("Kubelet stopped posting node status.");
- ``desired_taints``: Ready False/Unknown -> node.kubernetes.io/not-ready / unreachable with
  NoSchedule and NoExecute (timeAdded kept), unschedulable -> NoSchedule, all removed when Ready;
- ``eviction_deadline``: a pod on a NoExecute-tainted node leaves at once without a toleration,
  after tolerationSeconds with one; pods that state none get upstream's DefaultTolerationSeconds
  (300 s, configurable) for not-ready and unreachable, as that admission plugin would add.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from netemu.api import errors
from netemu.controllers.events import NORMAL
from netemu.controllers.kube import (Obj, condition, is_deleting, name_of, ns_of, parse_time, rfc3339,
                                     set_condition)
from netemu.controllers.runtime import Controller, rt
from netemu.controllers.scheduler.filters import (NOT_READY_TAINT, UNREACHABLE_TAINT, UNSCHEDULABLE_TAINT,
                                                  toleration_tolerates)

LEASE_NAMESPACE = "kube-node-lease"
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
COMPONENT = "node-controller"
# what upstream's taint eviction writes on a pod before deleting it
DISRUPTION = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
              "message": "Taint manager: deleting due to NoExecute taint"}


@dataclass(frozen=True)
class Observed:
    signature: tuple
    at: float          # when this controller last saw the signature change


def signature(node: Obj, lease: Obj | None) -> tuple:
    ready = condition(node, "Ready") or {}
    renew = ((lease or {}).get("spec") or {}).get("renewTime")
    return renew, ready.get("lastHeartbeatTime"), ready.get("status")


def observe(prev: Observed | None, node: Obj, lease: Obj | None, now: float) -> Observed:
    sig = signature(node, lease)
    if prev is None or prev.signature != sig:
        return Observed(sig, now)
    return prev


def stale_conditions(node: Obj, observed: Observed, now: float, grace: float) -> list[Obj] | None:
    """All conditions Unknown when the node has been silent for ``grace`` (None: leave them)."""
    if now - observed.at <= grace:
        return None
    conds = list((node.get("status") or {}).get("conditions") or [])
    if condition(node, "Ready") and (condition(node, "Ready") or {}).get("status") == "Unknown":
        return None
    stamp = rfc3339(now)
    have = {c.get("type") for c in conds}
    never = not have
    for ctype in NODE_CONDITIONS:
        if ctype not in have and not never:
            continue
        reason, msg = (("NodeStatusNeverUpdated", "Kubelet never posted node status.") if never
                       else ("NodeStatusUnknown", "Kubelet stopped posting node status."))
        old = condition(node, ctype) or {}
        conds = set_condition(conds, {"type": ctype, "status": "Unknown", "reason": reason, "message": msg,
                                      "lastHeartbeatTime": old.get("lastHeartbeatTime")}, stamp)
    return conds


def desired_taints(node: Obj, now: float) -> list[Obj]:
    """The node's taints with the condition taints set right (upstream keeps timeAdded)."""
    spec = node.get("spec") or {}
    status = (condition(node, "Ready") or {}).get("status", "Unknown")
    wanted_key = {"False": NOT_READY_TAINT, "Unknown": UNREACHABLE_TAINT}.get(status)
    managed = {NOT_READY_TAINT, UNREACHABLE_TAINT, UNSCHEDULABLE_TAINT}
    current = list(spec.get("taints") or [])
    out = [t for t in current if t.get("key") not in managed]
    wanted = []
    if wanted_key:
        wanted += [(wanted_key, "NoSchedule"), (wanted_key, "NoExecute")]
    if spec.get("unschedulable"):
        wanted.append((UNSCHEDULABLE_TAINT, "NoSchedule"))
    for key, effect in wanted:
        old = next((t for t in current if t.get("key") == key and t.get("effect") == effect), None)
        taint = old or {"key": key, "effect": effect}
        if effect == "NoExecute" and not taint.get("timeAdded"):
            taint = dict(taint, timeAdded=rfc3339(now))
        out.append(taint)
    return out


def _effective_tolerations(pod: Obj, default_not_ready: int, default_unreachable: int) -> list[Obj]:
    tols = list((pod.get("spec") or {}).get("tolerations") or [])
    for key, seconds in ((NOT_READY_TAINT, default_not_ready), (UNREACHABLE_TAINT, default_unreachable)):
        probe = {"key": key, "effect": "NoExecute"}
        if not any(toleration_tolerates(t, probe) for t in tols):
            tols.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds})
    return tols


def eviction_deadline(pod: Obj, taints: list[Obj], default_not_ready: int = 300,
                      default_unreachable: int = 300) -> float | None:
    """When the pod must leave (epoch seconds; -inf: now), or None when it may stay."""
    no_execute = [t for t in taints if t.get("effect") == "NoExecute"]
    if not no_execute:
        return None
    tols = _effective_tolerations(pod, default_not_ready, default_unreachable)
    deadline: float | None = None
    for taint in no_execute:
        matching = [t for t in tols if toleration_tolerates(t, taint)]
        if not matching:
            return float("-inf")
        limited = [t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None]
        if len(limited) < len(matching):
            continue  # some toleration lasts forever
        added = parse_time(taint.get("timeAdded")) or 0.0
        at = added + max(min(limited), 0)
        deadline = at if deadline is None else min(deadline, at)
    return deadline


def not_ready_pod_conditions(pod: Obj, now: float) -> list[Obj] | None:
    """Pod conditions with Ready=False (upstream MarkPodsNotReady), None when already so."""
    ready = condition(pod, "Ready")
    if ready is not None and ready.get("status") == "False":
        return None
    conds = (pod.get("status") or {}).get("conditions") or []
    return set_condition(conds, {"type": "Ready", "status": "False"}, rfc3339(now))


class NodeLifecycleController(Controller):
    name = "nodelifecycle"
    service_account = "node-controller"
    kinds = ("Node", "Lease", "Pod")

    def setup(self) -> None:
        self.observed: dict[str, Observed] = {}
        self.cache("Node").add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n), self._node_deleted)
        self.cache("Lease").add_handler(self._lease, lambda o, n: self._lease(n))

    def _node_deleted(self, node: Obj) -> None:
        self.observed.pop(name_of(node), None)

    def _lease(self, lease: Obj) -> None:
        if ns_of(lease) == LEASE_NAMESPACE:
            self.queue.add(name_of(lease))

    async def resync_all(self) -> None:
        for node in self.cache("Node").list():
            self.enqueue_obj(node)
        self.background(self._monitor())

    async def _monitor(self) -> None:
        """Every node monitor period: look at each node again (grace periods and evictions are
        about time passing, which no watch event announces)."""
        while True:
            await asyncio.sleep(self.settings.node_monitor_period)
            for node in self.cache("Node").list():
                self.enqueue_obj(node)

    async def sync(self, key: str) -> None:
        node = self.cache("Node").get(key)
        if node is None:
            return
        now = time.time()
        lease = self.cache("Lease").get(key, LEASE_NAMESPACE)
        prev = self.observed.get(key)
        obs = self.observed[key] = observe(prev, node, lease, now)
        was_ready = (condition(node, "Ready") or {}).get("status") == "True"
        stale = stale_conditions(node, obs, now, self.settings.node_monitor_grace_period)
        if stale is not None:
            node = await self.client.patch(rt("Node"), key, {"status": {"conditions": stale}}, subresource="status")
            self.observed[key] = Observed(signature(node, lease), obs.at)
        ready_now = (condition(node, "Ready") or {}).get("status") == "True"
        if was_ready and not ready_now:
            self.recorder.event(node, NORMAL, "NodeNotReady", f"Node {key} status is now: NodeNotReady",
                                component=COMPONENT)
        taints = desired_taints(node, now)
        if taints != ((node.get("spec") or {}).get("taints") or []):
            node = await self.client.patch(rt("Node"), key, {"spec": {"taints": taints or None}})
        pods = [p for p in self.cache("Pod").list() if (p.get("spec") or {}).get("nodeName") == key]
        if not ready_now:
            await self._mark_pods_not_ready(pods, now)
        await self._evict(node, taints, pods, now)

    async def _mark_pods_not_ready(self, pods: list[Obj], now: float) -> None:
        for pod in pods:
            conds = not_ready_pod_conditions(pod, now)
            if conds is None:
                continue
            try:
                await self.client.patch(rt("Pod"), name_of(pod), {"status": {"conditions": conds}},
                                        ns_of(pod), subresource="status")
            except errors.NotFound:
                pass

    async def _evict(self, node: Obj, taints: list[Obj], pods: list[Obj], now: float) -> None:
        s = self.settings
        for pod in pods:
            if is_deleting(pod):
                continue
            deadline = eviction_deadline(pod, taints, s.default_not_ready_toleration_seconds,
                                         s.default_unreachable_toleration_seconds)
            if deadline is None:
                continue
            if deadline > now:
                self.queue.add_after(name_of(node), deadline - now + 0.05)
                continue
            try:
                conds = set_condition((pod.get("status") or {}).get("conditions") or [], DISRUPTION, rfc3339(now))
                await self.client.patch(rt("Pod"), name_of(pod), {"status": {"conditions": conds}}, ns_of(pod),
                                        subresource="status")
                await self.client.delete(rt("Pod"), name_of(pod), ns_of(pod))
            except errors.NotFound:
                continue
            self.recorder.event(pod, NORMAL, "TaintManagerEviction",
                                f"Marking for deletion Pod {ns_of(pod)}/{name_of(pod)}", component="taint-eviction-controller")
