"""The StatefulSet controller's decisions, pure (pkg/controller/statefulset, v1.32, simplified).

Pods are named NAME-<ordinal> for ordinals start..start+replicas-1, with spec.hostname = the
pod's name and spec.subdomain = spec.serviceName, so the governing headless Service's DNS gives
each a stable name (web-0.nginx.default.svc.cluster.local). ``plan`` says what one sync does:

- OrderedReady: create the lowest missing ordinal only once every lower one is Running and
  Ready; scale down from the highest ordinal, one pod at a time, each gone before the next.
- Parallel: create and delete all at once.
- RollingUpdate: once every replica is healthy, delete the highest-ordinal pod not at the update
  revision (at or above the partition); it comes back from the new template. One at a time.
- OnDelete: pods change revision only when the user deletes them.

Revisions are a hash of the pod template (upstream hashes the ControllerRevision's data the
same way); ``statefulset_history`` keeps the ControllerRevision objects. A pod below the
partition that must be recreated gets the current revision's template from its
ControllerRevision (or a live pod of that revision if it was deleted).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from netemu.controllers.history import typed_template
from netemu.controllers.kube import Obj, is_deleting, labels_of, meta, name_of, ns_of, owner_ref, pod_is_ready

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"   # upstream rand.SafeEncodeString's alphabet


def revision_name(sts: Obj) -> str:
    """``NAME-<hash of the template>``: the controller-revision-hash label value, as upstream."""
    template = typed_template((sts.get("spec") or {}).get("template") or {})
    digest = int.from_bytes(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()[:4], "big")
    return f"{name_of(sts)}-{''.join(_SAFE[int(ch)] for ch in str(digest))}"


def ordinal_range(sts: Obj) -> range:
    spec = sts.get("spec") or {}
    start = int(((spec.get("ordinals") or {}).get("start")) or 0)
    return range(start, start + int(spec.get("replicas", 1)))


def ordinal_of(sts: Obj, pod: Obj) -> int | None:
    m = re.fullmatch(re.escape(name_of(sts)) + r"-(0|[1-9][0-9]*)", name_of(pod))
    return int(m.group(1)) if m else None


def is_healthy(pod: Obj) -> bool:
    """upstream isRunningAndReady."""
    return (pod.get("status") or {}).get("phase") == "Running" and pod_is_ready(pod) and not is_deleting(pod)


def is_failed(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def revision_of(pod: Obj) -> str:
    return labels_of(pod).get(REVISION_LABEL, "")


def pod_for(sts: Obj, ordinal: int, revision: str, template: Obj) -> Obj:
    """The pod of one ordinal at ``revision`` from ``template`` (its identity fields set)."""
    spec = sts.get("spec") or {}
    name = f"{name_of(sts)}-{ordinal}"
    tmeta = template.get("metadata") or {}
    labels = {**(tmeta.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
              REVISION_LABEL: revision}
    metadata: Obj = {"name": name, "namespace": ns_of(sts), "labels": labels, "ownerReferences": [owner_ref(sts)]}
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    pod_spec = json.loads(json.dumps(template.get("spec") or {}))
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def template_of_pod(pod: Obj) -> Obj:
    """A live pod turned back into the template it was made from (for the current revision)."""
    spec = json.loads(json.dumps(pod.get("spec") or {}))
    for key in ("nodeName", "hostname", "subdomain"):
        spec.pop(key, None)
    labels = {k: v for k, v in labels_of(pod).items() if k not in (POD_NAME_LABEL, POD_INDEX_LABEL, REVISION_LABEL)}
    return {"metadata": {"labels": labels, "annotations": meta(pod).get("annotations") or {}}, "spec": spec}


@dataclass
class Plan:
    create: list[int] = field(default_factory=list)      # ordinals
    delete: list[Obj] = field(default_factory=list)      # pods
    waiting: str = ""                                      # why nothing more happens now (tests, logs)


def _partition(sts: Obj) -> int:
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    return int(((strategy.get("rollingUpdate") or {}).get("partition")) or 0)


def create_revision(sts: Obj, ordinal: int, current: str, update: str) -> str:
    """upstream newVersionedStatefulSetPod: below the partition a pod keeps the current revision."""
    strategy = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy == "RollingUpdate" and current != update and ordinal < _partition(sts):
        return current
    return update


def plan(sts: Obj, pods: list[Obj], update: str) -> Plan:
    """One sync's creates and deletes for ``pods`` (this set's, by controllerRef)."""
    if is_deleting(sts):
        return Plan(waiting="StatefulSet is being deleted")
    parallel = (sts.get("spec") or {}).get("podManagementPolicy") == "Parallel"
    wanted = ordinal_range(sts)
    by_ordinal = {o: p for p in pods if (o := ordinal_of(sts, p)) is not None}
    out = Plan()
    for ordinal in wanted:                       # replicas, lowest first
        pod = by_ordinal.get(ordinal)
        if pod is not None and is_failed(pod) and not is_deleting(pod):
            out.delete.append(pod)               # recreated, same name, next sync
            if not parallel:
                return _wait(out, f"recreating failed pod {name_of(pod)}")
            continue
        if pod is None:
            out.create.append(ordinal)
            if not parallel:
                return _wait(out, f"creating {name_of(sts)}-{ordinal}")
            continue
        if not parallel and not is_healthy(pod):
            return _wait(out, f"waiting for {name_of(pod)} to be Running and Ready")
    condemned = sorted((o for o in by_ordinal if o not in wanted), reverse=True)
    for ordinal in condemned:                    # scale down, highest first
        pod = by_ordinal[ordinal]
        if is_deleting(pod):
            if not parallel:
                return _wait(out, f"waiting for {name_of(pod)} to terminate")
            continue
        out.delete.append(pod)
        if not parallel:
            return _wait(out, f"deleting {name_of(pod)}")
    if out.create or out.delete:
        return out
    return _rolling_update(sts, [by_ordinal[o] for o in wanted if o in by_ordinal], update)


def _rolling_update(sts: Obj, replicas: list[Obj], update: str) -> Plan:
    strategy = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy != "RollingUpdate":
        return Plan()
    partition = _partition(sts)
    for pod in sorted(replicas, key=lambda p: -(ordinal_of(sts, p) or 0)):
        ordinal = ordinal_of(sts, pod) or 0
        if ordinal < partition:
            break
        if revision_of(pod) != update and not is_deleting(pod):
            return Plan(delete=[pod], waiting=f"updating {name_of(pod)}")
        if not is_healthy(pod):
            return Plan(waiting=f"waiting for {name_of(pod)} to be Running and Ready")
    return Plan()


def _wait(p: Plan, why: str) -> Plan:
    p.waiting = why
    return p


def status_for(sts: Obj, pods: list[Obj], update: str, available) -> Obj:
    """StatefulSetStatus; ``available(pod)`` says whether a pod counts as available
    (Ready for minReadySeconds). The rollout completes (currentRevision becomes the update
    revision) once every replica is updated and ready, as upstream completeRollingUpdate."""
    old = sts.get("status") or {}
    current = old.get("currentRevision") or update
    live = [p for p in pods if not is_deleting(p) and ordinal_of(sts, p) is not None]
    status: Obj = {
        "observedGeneration": meta(sts).get("generation", 1),
        "replicas": len(live),
        "readyReplicas": sum(1 for p in live if is_healthy(p)),
        "availableReplicas": sum(1 for p in live if is_healthy(p) and available(p)),
        "currentReplicas": sum(1 for p in live if revision_of(p) == current),
        "updatedReplicas": sum(1 for p in live if revision_of(p) == update),
        "currentRevision": current, "updateRevision": update,
        "collisionCount": old.get("collisionCount", 0),
    }
    strategy = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
    want = len(ordinal_range(sts))
    if (strategy == "RollingUpdate" and status["updatedReplicas"] == want == status["replicas"]
            and status["readyReplicas"] == want):
        status["currentRevision"], status["currentReplicas"] = update, status["updatedReplicas"]
    elif strategy == "OnDelete" and status["updatedReplicas"] == status["replicas"]:
        status["currentRevision"], status["currentReplicas"] = update, status["updatedReplicas"]
    if old.get("conditions"):
        status["conditions"] = old["conditions"]
    return status
