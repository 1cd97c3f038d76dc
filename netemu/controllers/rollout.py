"""Deployment rollout arithmetic, pure (upstream pkg/controller/deployment/util and rolling.go).

Which ReplicaSet is "new" (its template equals the Deployment's, ignoring pod-template-hash),
how far a RollingUpdate may surge and how many pods may be unavailable, what each ReplicaSet's
replica count should become next, and the Deployment's status with the conditions and reasons
`kubectl rollout status` reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass

from netemu.controllers.kube import Obj, meta, name_of, parse_time, rfc3339

REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
_SAFE = str.maketrans("0123456789abcdefghijklmnopqrstuv", "bcdfghjklmnpqrstvwxz2456789bcdfg")


def replicas_of(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def strip_hash(template: Obj) -> Obj:
    t = json.loads(json.dumps(template or {}))
    labels = (t.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return t


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A stable, DNS-safe hash of the pod template (upstream: fnv32a + SafeEncodeString; ours is
    sha256 over canonical JSON, the same for the same template, different when it changes)."""
    doc = json.dumps([strip_hash(template), collision_count], sort_keys=True, separators=(",", ":"))
    digest = base64.b32hexencode(hashlib.sha256(doc.encode()).digest()).decode().lower()
    return digest[:10].translate(_SAFE)


def _created(rs: Obj) -> tuple:
    return (parse_time(meta(rs).get("creationTimestamp")) or 0.0, name_of(rs))


def revision(rs: Obj) -> int:
    try:
        return int((meta(rs).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def find_new_rs(deploy: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's (upstream FindNewReplicaSet)."""
    want = strip_hash((deploy.get("spec") or {}).get("template") or {})
    for rs in sorted(rss, key=_created):
        if strip_hash((rs.get("spec") or {}).get("template") or {}) == want:
            return rs
    return None


def _intstr(value, total: int, round_up: bool) -> int:
    if value is None:
        value = "25%"
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(value)


def fenceposts(deploy: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas; both zero means 1 unavailable."""
    spec = deploy.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, 0
    ru = strategy.get("rollingUpdate") or {}
    replicas = replicas_of(deploy)
    surge = _intstr(ru.get("maxSurge"), replicas, True)
    unavailable = _intstr(ru.get("maxUnavailable"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(deploy: Obj) -> int:
    if ((deploy.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
        return 0
    return min(fenceposts(deploy)[1], replicas_of(deploy))


def new_rs_replicas(deploy: Obj, all_rss: list[Obj], new_rs_count: int) -> int:
    """upstream NewRSNewReplicas for RollingUpdate: grow the new set up to the surge limit."""
    want = replicas_of(deploy)
    surge, _ = fenceposts(deploy)
    current = sum(replicas_of(rs) for rs in all_rss)
    max_total = want + surge
    if current >= max_total:
        return new_rs_count
    return new_rs_count + max(0, min(max_total - current, want - new_rs_count))


def _available(rs: Obj) -> int:
    """Available pods, never more than the set is scaled to: right after a scale-down its status
    still counts the pods being deleted, and trusting that would scale down twice."""
    return min(int((rs.get("status") or {}).get("availableReplicas") or 0), replicas_of(rs))


def old_rs_scale_down(deploy: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> dict[str, int]:
    """New replica counts for old ReplicaSets (upstream reconcileOldReplicaSets): first the
    unhealthy pods, then available ones down to ``replicas - maxUnavailable``, oldest first."""
    old_active = [rs for rs in sorted(old_rss, key=_created) if replicas_of(rs) > 0]
    if not old_active:
        return {}
    all_rss = old_active + ([new_rs] if new_rs else [])
    min_available = replicas_of(deploy) - max_unavailable(deploy)
    new_unavailable = (replicas_of(new_rs) - _available(new_rs)) if new_rs else 0
    budget = sum(replicas_of(rs) for rs in all_rss) - min_available - new_unavailable
    if budget <= 0:
        return {}
    target = {name_of(rs): replicas_of(rs) for rs in old_active}
    for rs in old_active:  # cleanupUnhealthyReplicas
        if budget <= 0:
            break
        unhealthy = replicas_of(rs) - _available(rs)
        cut = min(budget, unhealthy, target[name_of(rs)])
        if cut > 0:
            target[name_of(rs)] -= cut
            budget -= cut
    available = sum(_available(rs) for rs in all_rss)
    remaining = available - min_available
    for rs in old_active:  # scaleDownOldReplicaSetsForRollingUpdate
        if remaining <= 0:
            break
        cut = min(target[name_of(rs)], remaining, _available(rs))
        target[name_of(rs)] -= cut
        remaining -= cut
    return {n: v for n, v in target.items() if v != replicas_of(next(r for r in old_active if name_of(r) == n))}


@dataclass
class Counts:
    replicas: int
    updated: int
    ready: int
    available: int
    unavailable: int


def counts(deploy: Obj, new_rs: Obj | None, all_rss: list[Obj]) -> Counts:
    st = lambda rs, k: int((rs.get("status") or {}).get(k) or 0)  # noqa: E731
    available = sum(st(rs, "availableReplicas") for rs in all_rss)
    total = sum(replicas_of(rs) for rs in all_rss)
    return Counts(replicas=sum(st(rs, "replicas") for rs in all_rss),
                  updated=st(new_rs, "replicas") if new_rs else 0,
                  ready=sum(st(rs, "readyReplicas") for rs in all_rss),
                  available=available, unavailable=max(0, total - available))


def _cond(conds: list[Obj], ctype: str) -> Obj | None:
    return next((c for c in conds if c.get("type") == ctype), None)


def _with(conds: list[Obj], ctype: str, status: str, reason: str, message: str, now: str) -> list[Obj]:
    old = _cond(conds, ctype)
    if old and old.get("status") == status and old.get("reason") == reason and old.get("message") == message:
        return conds
    new = {"type": ctype, "status": status, "lastUpdateTime": now, "reason": reason, "message": message,
           "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == status
           and old.get("lastTransitionTime") else now}
    return [c for c in conds if c.get("type") != ctype] + [new]


def deployment_status(deploy: Obj, new_rs: Obj | None, all_rss: list[Obj], now: float,
                      created_new: bool = False) -> Obj:
    """status with Available and Progressing conditions (upstream syncRolloutStatus)."""
    c = counts(deploy, new_rs, all_rss)
    old_status = deploy.get("status") or {}
    stamp = rfc3339(now)
    conds = list(old_status.get("conditions") or [])
    want = replicas_of(deploy)
    if c.available >= want - max_unavailable(deploy):
        conds = _with(conds, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", stamp)
    else:
        conds = _with(conds, "Available", "False", "MinimumReplicasUnavailable",
                      "Deployment does not have minimum availability.", stamp)
    rs_name = name_of(new_rs) if new_rs else ""
    generation = meta(deploy).get("generation", 1)
    complete = (c.updated == want and c.replicas == want and c.available == want)
    progressing = _cond(conds, "Progressing")
    if new_rs is None:
        pass
    elif created_new:
        conds = _with(conds, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"', stamp)
    elif complete:
        conds = _with(conds, "Progressing", "True", "NewReplicaSetAvailable",
                      f'ReplicaSet "{rs_name}" has successfully progressed.', stamp)
    elif _made_progress(old_status, c) or progressing is None:
        reason = "ReplicaSetUpdated" if progressing else "FoundNewReplicaSet"
        msg = f'ReplicaSet "{rs_name}" is progressing.' if progressing else f'Found new replica set "{rs_name}"'
        conds = [x for x in conds if x.get("type") != "Progressing"] + [
            {"type": "Progressing", "status": "True", "lastUpdateTime": stamp, "reason": reason, "message": msg,
             "lastTransitionTime": (progressing or {}).get("lastTransitionTime") or stamp}]
    elif timed_out(deploy, progressing, now):
        conds = _with(conds, "Progressing", "False", "ProgressDeadlineExceeded",
                      f'ReplicaSet "{rs_name}" has timed out progressing.', stamp)
    status = {"observedGeneration": generation, "replicas": c.replicas, "updatedReplicas": c.updated,
              "readyReplicas": c.ready, "availableReplicas": c.available,
              "unavailableReplicas": c.unavailable, "conditions": conds}
    if old_status.get("collisionCount") is not None:
        status["collisionCount"] = old_status["collisionCount"]
    return status


def _made_progress(old: Obj, c: Counts) -> bool:
    return (c.updated > int(old.get("updatedReplicas") or 0)
            or c.ready > int(old.get("readyReplicas") or 0)
            or c.available > int(old.get("availableReplicas") or 0)
            or c.replicas - c.updated < int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0))


def timed_out(deploy: Obj, progressing: Obj | None, now: float) -> bool:
    deadline = (deploy.get("spec") or {}).get("progressDeadlineSeconds", 600)
    if progressing is None or deadline is None or progressing.get("reason") == "NewReplicaSetAvailable":
        return False
    since = parse_time(progressing.get("lastUpdateTime"))
    return since is not None and since + int(deadline) < now


# ---- scaling a Deployment mid-rollout (upstream sync + scale, proportional scaling) ----------

def _annotation_int(rs: Obj, key: str) -> int | None:
    try:
        return int((meta(rs).get("annotations") or {})[key])
    except (KeyError, ValueError):
        return None


def is_scaling_event(deploy: Obj, rss: list[Obj]) -> bool:
    """spec.replicas changed since the active ReplicaSets were last sized (their
    desired-replicas annotation says otherwise)."""
    want = replicas_of(deploy)
    return any(_annotation_int(rs, DESIRED) not in (None, want) for rs in rss if replicas_of(rs) > 0)


def _fraction(rs: Obj, deploy: Obj) -> int:
    if replicas_of(deploy) == 0:
        return -replicas_of(rs)
    max_now = replicas_of(deploy) + fenceposts(deploy)[0]
    max_before = _annotation_int(rs, MAX_REPLICAS) or int((deploy.get("status") or {}).get("replicas") or 0)
    if not max_before:
        return 0
    return int(math.floor(replicas_of(rs) * max_now / max_before + 0.5)) - replicas_of(rs)


def _proportion(rs: Obj, deploy: Obj, to_add: int, added: int) -> int:
    if replicas_of(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction, allowed = _fraction(rs, deploy), to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_scale(deploy: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> dict[str, int]:
    """New sizes when the Deployment is scaled during a rollout (upstream DeploymentController
    .scale): one active set takes the full count; a saturated new set means the old ones go to
    zero; otherwise the surge-allowed total is shared in proportion to each set's size, the
    leftover going to the largest. Sets whose size annotations are stale are included too."""
    want = replicas_of(deploy)
    every = [rs for rs in [new_rs, *old_rss] if rs is not None]
    active = [rs for rs in every if replicas_of(rs) > 0]
    if len(active) <= 1:
        target = active[0] if active else (new_rs or max(every, key=_created, default=None))
        if target is None or (replicas_of(target) == want and _annotation_int(target, DESIRED) == want):
            return {}
        return {name_of(target): want}
    if new_rs is not None and replicas_of(new_rs) == want and _available(new_rs) == want \
            and _annotation_int(new_rs, DESIRED) == want:
        return {name_of(rs): 0 for rs in old_rss if replicas_of(rs) > 0}
    if ((deploy.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
        return {}
    allowed = want + fenceposts(deploy)[0] if want > 0 else 0
    to_add = allowed - sum(replicas_of(rs) for rs in active)
    if to_add > 0:   # bigger first, newer first among equals
        active.sort(key=lambda rs: (-replicas_of(rs), -_created(rs)[0]))
    elif to_add < 0:  # bigger first, older first among equals
        active.sort(key=lambda rs: (-replicas_of(rs), _created(rs)))
    sizes, added = {}, 0
    for rs in active:
        p = _proportion(rs, deploy, to_add, added)
        sizes[name_of(rs)] = replicas_of(rs) + p
        added += p
    if to_add and active:
        first = name_of(active[0])
        sizes[first] = max(0, sizes[first] + to_add - added)
    by_name = {name_of(rs): rs for rs in every}
    return {n: v for n, v in sizes.items()
            if v != replicas_of(by_name[n]) or _annotation_int(by_name[n], DESIRED) != want}
