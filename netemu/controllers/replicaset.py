"""ReplicaSet controller: as many active pods as spec.replicas, and an honest status.

The planner is pure: which pods are this ReplicaSet's, how many to create, which to delete
(upstream's ranking: unscheduled, pending, not ready, recently ready, restarted, newer go first)
and the status counts. The loop creates pods from the template with an ownerReference, deletes
the ranked pods, and waits for its own writes to show up in the cache (expectations) before it
counts again.

Creates go out as upstream's ``slowStartBatch`` sends them (pkg/controller/replicaset/
replica_set.go, v1.32): batches of 1, 2, 4, ... concurrent creates, the next batch only once the
whole batch before succeeded; deletes all at once. One create after another made a scale to 300
pods take 60 s at 30 nodes, the pods waiting for their turn to be created (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from netemu.api import errors
from netemu.controllers import claim
from netemu.controllers.claim import OrphanWatch
from netemu.controllers.kube import (Obj, condition, is_deleting, labels_of, meta, name_of, ns_of, owner_ref,
                                     parse_time, pod_is_active, pod_is_ready)
from netemu.controllers.podowner import PodOwner, raise_first
from netemu.controllers.runtime import put_latest, rt, split_key

BURST = 500  # upstream burstReplicas: at most this many creates/deletes per sync
SLOW_START_INITIAL_BATCH = 1  # upstream controller.SlowStartInitialBatchSize
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # upstream utilrand alphanumerics (no vowels)


def random_suffix(n: int = 5, rng: random.Random | None = None) -> str:
    rng = rng or random
    return "".join(rng.choice(_NAME_CHARS) for _ in range(n))


def claim_step(rs: Obj, pods: list[Obj]) -> claim.Claim:
    """Which of the namespace's pods are this ReplicaSet's, as upstream's syncReplicaSet decides
    (pkg/controller/replicaset/replica_set.go, v1.32): ``controller.FilterActivePods`` first, then
    ClaimPods over what is left -- a finished or terminating pod is neither adopted nor released
    nor counted; orphans are adopted and stale pods released only while the set is not being
    deleted (netemu.controllers.claim)."""
    return claim.claim(rs, [p for p in pods if pod_is_active(p)])


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    if not pod_is_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


def _phase_rank(pod: Obj) -> int:
    return {"Pending": 0, "Unknown": 1, "Running": 2}.get((pod.get("status") or {}).get("phase"), 0)


def _restarts(pod: Obj) -> int:
    return max((c.get("restartCount", 0) for c in (pod.get("status") or {}).get("containerStatuses") or []),
               default=0)


def deletion_rank(pod: Obj) -> tuple:
    """Sort key: smaller goes first (upstream controller.ActivePods Less)."""
    ready_since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime")) or 0.0
    created = parse_time(meta(pod).get("creationTimestamp")) or 0.0
    return (bool((pod.get("spec") or {}).get("nodeName")), _phase_rank(pod), pod_is_ready(pod),
            -ready_since if pod_is_ready(pod) else 0.0, -_restarts(pod), -created, name_of(pod))


def pods_to_delete(pods: list[Obj], count: int) -> list[Obj]:
    return sorted(pods, key=deletion_rank)[:count]


@dataclass
class Plan:
    create: int = 0
    delete: list[Obj] = field(default_factory=list)


def plan(rs: Obj, active: list[Obj]) -> Plan:
    """How to move from ``active`` owned pods to spec.replicas (none while being deleted)."""
    if is_deleting(rs):
        return Plan()
    want = int((rs.get("spec") or {}).get("replicas", 1))
    diff = len(active) - want
    if diff < 0:
        return Plan(create=min(-diff, BURST))
    if diff > 0:
        return Plan(delete=pods_to_delete(active, min(diff, BURST)))
    return Plan()


def status_for(rs: Obj, owned: list[Obj], now: float, failure: str | None = None) -> Obj:
    spec = rs.get("spec") or {}
    active = [p for p in owned if pod_is_active(p)]
    template_labels = labels_of((spec.get("template") or {}))
    min_ready = int(spec.get("minReadySeconds") or 0)
    status: Obj = {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(1 for p in active
                                    if all(labels_of(p).get(k) == v for k, v in template_labels.items())),
        "readyReplicas": sum(1 for p in active if pod_is_ready(p)),
        "availableReplicas": sum(1 for p in active if is_available(p, min_ready, now)),
        "observedGeneration": meta(rs).get("generation", 1),
    }
    old = [c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if failure:
        old.append({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": failure,
                    "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})
    status["conditions"] = old
    return status


def status_changed(obj: Obj, status: Obj) -> bool:
    """Compare ignoring empty lists vs absent keys, so an idle sync writes nothing."""
    def norm(d: Obj) -> Obj:
        return {k: v for k, v in d.items() if v not in (None, [], {})}
    return norm(status) != norm(obj.get("status") or {})


def pod_from_template(rs: Obj, name: str) -> Obj:
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    metadata: Obj = {"name": name, "namespace": ns_of(rs), "labels": dict(tmeta.get("labels") or {}),
                     "ownerReferences": [owner_ref(rs)]}
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": dict(template.get("spec") or {})}


class ReplicaSetController(OrphanWatch, PodOwner):
    name = "replicaset"
    service_account = "replicaset-controller"
    kinds = ("ReplicaSet", "Pod")
    owner_kind = "ReplicaSet"
    component = "replicaset-controller"

    def setup(self) -> None:
        super().setup()
        self.watch_orphans("Pod")    # an orphan added or relabelled wakes the sets that may adopt it

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        rs = self.cache("ReplicaSet").get(name, ns)
        if rs is None:
            self.expectations.forget(key)
            return
        satisfied = self.expectations.satisfied(key)      # before the pods are read, as upstream
        owned = await claim.write(self.client, rt("Pod"), rs, claim_step(rs, self.cache("Pod").list(ns)),
                                  claim.recheck_deletion(self.client, rt("ReplicaSet"), rs))
        failure = None
        if satisfied:
            failure = await self._manage(key, rs, owned)
        status = status_for(rs, owned, time.time(), failure)
        if status_changed(rs, status):           # PUT, as upstream's controller (its role has no patch)
            await put_latest(self.client, rt("ReplicaSet"), rs, lambda r: {**r, "status": status},
                             subresource="status")
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready and status["readyReplicas"] != status["availableReplicas"]:
            self.queue.add_after(key, 1.0)  # re-check when pods become available

    async def _manage(self, key: str, rs: Obj, active: list[Obj]) -> str | None:
        p = plan(rs, active)

        async def create_one() -> None:
            pod_name = f"{name_of(rs)}-{random_suffix()}"
            await self._create(key, rs, pod_name, pod_from_template(rs, pod_name))

        failure = None
        if p.create:
            _, error = await slow_start_batch(p.create, SLOW_START_INITIAL_BATCH, create_one)
            failure = str(error) if error is not None else None
        if p.delete:
            await self.write_pods(key, rs, [], p.delete)
        return failure


async def slow_start_batch(count: int, initial: int, fn) -> tuple[int, errors.StatusError | None]:
    """Call ``fn`` ``count`` times in concurrent batches of ``initial``, 2x, 4x, ... (upstream
    slowStartBatch): a failing batch ends it after the whole batch has finished, so a quota or
    admission error costs one small batch, not ``count`` calls. Returns (successes, the first
    API error); an exception that is not an API answer (a timeout) is raised after its batch."""
    remaining, successes = count, 0
    size = min(remaining, initial)
    while size > 0:
        results = await asyncio.gather(*(fn() for _ in range(size)), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        raise_first([r for r in failed if not isinstance(r, errors.StatusError)])
        successes += size - len(failed)
        if failed:
            return successes, failed[0]
        remaining -= size
        size = min(2 * size, remaining)
    return successes, None
