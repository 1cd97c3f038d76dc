"""Deployment, ReplicaSet, StatefulSet and DaemonSet validation (pkg/apis/apps/validation).

The rule that matters most to users: the selector must select the template's own labels, or the
controller would create pods it can never count. The selector is immutable in apps/v1.
"""

from __future__ import annotations

import re
from typing import Any

from netemu.api import field, selectors, validation as v
from netemu.api.field import Cause
from netemu.api.validate_pod import pod_spec

STRATEGIES = ("Recreate", "RollingUpdate")


def template_errors(spec: dict, kind: str) -> list[Cause]:
    errs: list[Cause] = []
    sel = spec.get("selector")
    if sel is None:
        errs.append(field.required("spec.selector"))
    else:
        serrs = selectors.validate_label_selector("spec.selector", sel)
        errs += serrs
        if not serrs and not (sel.get("matchLabels") or sel.get("matchExpressions")):
            errs.append(field.invalid("spec.selector", field.go_label_selector(sel), f"empty selector is invalid for {kind}"))
    template = spec.get("template")
    if not isinstance(template, dict):
        return errs + [field.required("spec.template")]
    tmeta = template.get("metadata") or {}
    tlabels = tmeta.get("labels") if isinstance(tmeta, dict) else None
    errs += v.labels("spec.template.metadata.labels", tlabels)
    if sel is not None and not errs:
        if not selectors.from_label_selector(sel).matches(tlabels or {}):
            errs.append(field.invalid("spec.template.metadata.labels", tlabels or {},
                                      "`selector` does not match template `labels`"))
    errs += pod_spec("spec.template.spec", template.get("spec"))
    restart = (template.get("spec") or {}).get("restartPolicy") if isinstance(template.get("spec"), dict) else None
    if restart not in (None, "Always"):
        errs.append(field.not_supported("spec.template.spec.restartPolicy", restart, ("Always",)))
    if (template.get("spec") or {}).get("activeDeadlineSeconds") is not None:
        owner = "StatefulSet" if kind == "statefulset" else "ReplicaSet"
        errs.append(field.forbidden("spec.template.spec.activeDeadlineSeconds",
                                    f"activeDeadlineSeconds in {owner} is not Supported"))
    return errs


def replicas_errors(spec: dict) -> list[Cause]:
    errs = v.non_negative("spec.replicas", spec.get("replicas"))
    errs += v.non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    return errs


def validate_replica_set(obj: dict[str, Any]) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [field.required("spec")]
    return errs + replicas_errors(spec) + template_errors(spec, "replicaset")


def validate_deployment(obj: dict[str, Any]) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [field.required("spec")]
    errs += replicas_errors(spec) + template_errors(spec, "deployment") + _strategy(spec.get("strategy"))
    errs += v.non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    pds = spec.get("progressDeadlineSeconds")
    if pds is not None:
        errs += v.non_negative("spec.progressDeadlineSeconds", pds)
        mrs = spec.get("minReadySeconds") or 0
        if v.is_int(pds) and v.is_int(mrs) and pds <= mrs:
            errs.append(field.invalid("spec.progressDeadlineSeconds", pds,
                                      "must be greater than minReadySeconds"))
    return errs


DS_STRATEGIES = ("OnDelete", "RollingUpdate")


def validate_daemon_set(obj: dict[str, Any]) -> list[Cause]:
    """ValidateDaemonSetSpec: selector and template as the others, a RollingUpdate|OnDelete
    updateStrategy, and either maxUnavailable or maxSurge (not both, not neither)."""
    errs = v.object_meta(obj.get("metadata"), namespaced=True)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [field.required("spec")]
    errs += template_errors(spec, "daemonset")
    errs += v.non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    errs += v.non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    strategy = spec.get("updateStrategy")
    if not isinstance(strategy, dict):
        return errs + [field.required("spec.updateStrategy")]
    stype = strategy.get("type")
    errs += v.one_of("spec.updateStrategy.type", stype, DS_STRATEGIES)
    rolling = strategy.get("rollingUpdate")
    if stype == "RollingUpdate":
        if not isinstance(rolling, dict):
            return errs + [field.required("spec.updateStrategy.rollingUpdate")]
        errs += _daemon_rolling(rolling)
    return errs


def _daemon_rolling(rolling: dict) -> list[Cause]:
    """ValidateRollingUpdateDaemonSet: surge and unavailability are exclusive."""
    p = "spec.updateStrategy.rollingUpdate"
    errs: list[Cause] = []
    set_ = {}
    for name in ("maxUnavailable", "maxSurge"):
        value = rolling.get(name)
        set_[name] = value is not None and value != 0     # upstream: Type != Int || IntVal != 0
        if set_[name]:
            errs += int_or_percent(f"{p}.{name}", value)
            if isinstance(value, str) and (_percent(value) or 0) > 100:
                errs.append(field.invalid(f"{p}.{name}", value, "must not be greater than 100%"))
    if set_["maxUnavailable"] and set_["maxSurge"]:
        errs.append(field.invalid(f"{p}.maxSurge", rolling.get("maxSurge"),
                                  "may not be set when maxUnavailable is non-zero"))
    elif not set_["maxUnavailable"] and not set_["maxSurge"]:
        errs.append(field.required(f"{p}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errs


def _strategy(strategy: Any) -> list[Cause]:
    if not isinstance(strategy, dict):
        return [field.required("spec.strategy")] if strategy is None else [
            field.type_invalid("spec.strategy", strategy, "must be an object")]
    stype = strategy.get("type")
    errs = v.one_of("spec.strategy.type", stype, STRATEGIES)
    rolling = strategy.get("rollingUpdate")
    if stype == "Recreate" and rolling is not None:
        errs.append(field.forbidden("spec.strategy.rollingUpdate",
                                    "may not be specified when strategy `type` is 'Recreate'"))
    if stype == "RollingUpdate" and isinstance(rolling, dict):
        p = "spec.strategy.rollingUpdate"
        unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
        errs += int_or_percent(f"{p}.maxUnavailable", unavailable)
        errs += int_or_percent(f"{p}.maxSurge", surge)
        if _is_zero(surge) and _is_zero(unavailable):
            errs.append(field.invalid(f"{p}.maxUnavailable", unavailable,
                                      "may not be 0 when `maxSurge` is 0"))
        if isinstance(unavailable, str) and _percent(unavailable) is not None and _percent(unavailable) > 100:
            errs.append(field.invalid(f"{p}.maxUnavailable", unavailable, "must not be greater than 100%"))
    return errs


def _percent(value: str) -> int | None:
    m = re.fullmatch(r"([0-9]+)%", value)
    return int(m.group(1)) if m else None


def _is_zero(value: Any) -> bool:
    return value in (0, "0%", "0")


def int_or_percent(path: str, value: Any) -> list[Cause]:
    """An IntOrString that must be a non-negative integer or percentage (``25%``)."""
    if value is None:
        return []
    if isinstance(value, str):
        if _percent(value) is None:
            return [field.invalid(path, value, "a valid percent string must be a numeric string followed "
                                  "by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")]
        return []
    if not v.is_int(value) or value < 0:
        return [field.invalid(path, value, "must be greater than or equal to 0")]
    return []


def validate_update(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """apps/v1: ``spec.selector`` is immutable for Deployments and ReplicaSets."""
    o_sel = (old.get("spec") or {}).get("selector")
    n_sel = (new.get("spec") or {}).get("selector")
    if o_sel != n_sel:
        return [field.invalid("spec.selector", field.go_label_selector(n_sel), "field is immutable")]
    return []
