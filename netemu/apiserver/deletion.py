"""What a DELETE does to one object (pure): remove it now, or mark it and keep it.

Upstream's rules (staging/src/k8s.io/apiserver/pkg/registry/rest/delete.go and the pod
strategy's CheckGracefulDelete):

- a pod bound to a node is deleted gracefully: ``deletionTimestamp`` = now + grace,
  ``deletionGracePeriodSeconds`` = grace (options, else spec.terminationGracePeriodSeconds, else
  30); the kubelet stops it and deletes again with grace 0, which removes it;
- a pod not bound to a node, or a delete with grace 0, removes it at once;
- ``propagationPolicy`` Foreground / Orphan add the ``foregroundDeletion`` / ``orphan``
  finalizer; Background (the default) adds nothing: the garbage collector removes dependents;
- an object with finalizers gets ``deletionTimestamp`` and stays until the finalizers are gone.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any

from netemu.api import errors, validate_crd
from netemu.api.custom import CLEANUP_FINALIZER

FOREGROUND, ORPHAN = "foregroundDeletion", "orphan"
POLICIES = ("Foreground", "Background", "Orphan")
DEFAULT_POD_GRACE = 30


@dataclass(frozen=True)
class DeletePlan:
    remove: bool                        # delete from the store now
    updated: dict[str, Any] | None = None   # else: write this (marked) object


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_options(options: dict[str, Any]) -> None:
    """Reject malformed DeleteOptions with 400/422 before anything changes."""
    policy = options.get("propagationPolicy")
    if policy is not None and policy not in POLICIES:
        raise errors.invalid("DeleteOptions", "", [errors.field_cause(
            "propagationPolicy", f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
            "FieldValueNotSupported")])
    grace = options.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise errors.BadRequest("gracePeriodSeconds must be an integer")
    if options.get("orphanDependents") is not None and policy is not None:
        raise errors.invalid("DeleteOptions", "", [errors.field_cause(
            "propagationPolicy", "orphanDependents and propagationPolicy cannot both be set")])


def check_preconditions(obj: dict[str, Any], options: dict[str, Any]) -> None:
    pre = options.get("preconditions") or {}
    meta = obj.get("metadata") or {}
    if pre.get("uid") and pre["uid"] != meta.get("uid"):
        raise errors.Conflict(f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}")
    if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
        raise errors.Conflict("Precondition failed: ResourceVersion in precondition: "
                              f"{pre['resourceVersion']}, ResourceVersion in object meta: {meta.get('resourceVersion')}")


def _pod_grace(kind: str, obj: dict[str, Any], options: dict[str, Any]) -> int:
    """Grace period in seconds; 0 means remove now."""
    if kind != "Pod":
        return 0
    grace = options.get("gracePeriodSeconds")
    if grace is None:
        grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_POD_GRACE)
    if not (obj.get("spec") or {}).get("nodeName"):
        return 0                                   # never started: nothing to stop
    phase = (obj.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        return 0
    return max(int(grace), 0)


def plan(kind: str, obj: dict[str, Any], options: dict[str, Any], now: dt.datetime) -> DeletePlan:
    """Decide what DELETE with ``options`` does to ``obj`` (which is not modified)."""
    new = copy.deepcopy(obj)
    meta = new.setdefault("metadata", {})
    finalizers = list(meta.get("finalizers") or [])
    policy = options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents"):
        policy = "Orphan"
    wanted = {"Foreground": FOREGROUND, "Orphan": ORPHAN}.get(policy or "")
    if wanted:
        finalizers = [f for f in finalizers if f not in (FOREGROUND, ORPHAN)] + [wanted]
    if kind == "CustomResourceDefinition" and CLEANUP_FINALIZER not in finalizers:
        finalizers.append(CLEANUP_FINALIZER)      # the CRD stays until its resources are gone
        validate_crd.mark_terminating(new, rfc3339(now))
    grace = _pod_grace(kind, obj, options)
    already = meta.get("deletionTimestamp")
    if already:
        current = meta.get("deletionGracePeriodSeconds")
        if grace == 0 and not finalizers:
            return DeletePlan(remove=True)
        if current is not None and grace < current:     # a shorter grace period wins
            meta["deletionGracePeriodSeconds"] = grace
            meta["deletionTimestamp"] = rfc3339(now + dt.timedelta(seconds=grace))
        if finalizers != list(meta.get("finalizers") or []):
            meta["finalizers"] = finalizers
        return DeletePlan(remove=False, updated=new)
    if grace == 0 and not finalizers:
        return DeletePlan(remove=True)
    meta["deletionTimestamp"] = rfc3339(now + dt.timedelta(seconds=grace))
    meta["deletionGracePeriodSeconds"] = grace
    if finalizers:
        meta["finalizers"] = finalizers
    return DeletePlan(remove=False, updated=new)


def finalized(obj: dict[str, Any]) -> bool:
    """An object being deleted whose finalizers are all gone (and grace is over): remove it."""
    meta = obj.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and not meta.get("finalizers") \
        and not meta.get("deletionGracePeriodSeconds")
