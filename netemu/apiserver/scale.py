"""The ``scale`` subresource (autoscaling/v1 Scale) of deployments, replicasets and statefulsets (pure).

``kubectl scale`` reads and writes this view; the replicas land in the parent's spec, the
selector is rendered as a label-selector string like upstream does.
"""

from __future__ import annotations

import copy
from typing import Any

from netemu.api import custom, errors


def selector_string(selector: dict[str, Any] | None) -> str:
    """A LabelSelector as the string form (``app=web,tier in (a,b)``)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def to_scale(obj: dict[str, Any], paths: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Scale view; ``paths`` is a custom resource's scale subresource (its replicas paths)."""
    meta = obj.get("metadata") or {}
    if paths is not None:
        return _custom_scale(obj, meta, paths)
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": selector_string((obj.get("spec") or {}).get("selector"))},
    }


def _custom_scale(obj: dict[str, Any], meta: dict[str, Any], paths: dict[str, Any]) -> dict[str, Any]:
    """upstream's customresource scale: the replicas at specReplicasPath/statusReplicasPath
    (0 when unset), the selector string at labelSelectorPath."""
    spec, _ = custom.get_path(obj, paths.get("specReplicasPath", ""))
    status, _ = custom.get_path(obj, paths.get("statusReplicasPath", ""))
    out = {"kind": "Scale", "apiVersion": "autoscaling/v1",
           "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                        if k in meta},
           "spec": {"replicas": spec if isinstance(spec, int) else 0},
           "status": {"replicas": status if isinstance(status, int) else 0}}
    if paths.get("labelSelectorPath"):
        selector, found = custom.get_path(obj, paths["labelSelectorPath"])
        if found and isinstance(selector, str):
            out["status"]["selector"] = selector
    return out


def apply_scale(obj: dict[str, Any], scale: dict[str, Any], paths: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parent object with the Scale's spec.replicas (and its resourceVersion precondition)."""
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        name = (obj.get("metadata") or {}).get("name", "")
        raise errors.invalid("Scale", name, [errors.field_cause(
            "spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")], "autoscaling")
    new = copy.deepcopy(obj)
    if paths is not None:
        custom.set_path(new, paths.get("specReplicasPath", ".spec.replicas"), replicas)
    else:
        new.setdefault("spec", {})["replicas"] = replicas
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    if rv:
        new.setdefault("metadata", {})["resourceVersion"] = rv
    return new
