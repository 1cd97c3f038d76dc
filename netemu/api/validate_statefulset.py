"""StatefulSet validation (pkg/apis/apps/validation, v1.32: ValidateStatefulSetSpec / Update).

What a user trips over: the selector must select the template's labels, podManagementPolicy and
updateStrategy take only upstream's values, and after create only replicas, template,
updateStrategy, minReadySeconds, ordinals and persistentVolumeClaimRetentionPolicy may change
(the pods' identities and their governing Service are fixed for the set's lifetime).
"""

from __future__ import annotations

from typing import Any

from netemu.api import field, validation as v
from netemu.api.field import Cause
from netemu.api.validate_workloads import int_or_percent, replicas_errors, template_errors

POLICIES = ("OrderedReady", "Parallel")
UPDATE_TYPES = ("RollingUpdate", "OnDelete")
RETENTION = ("Retain", "Delete")
MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
           "minReadySeconds")
FORBIDDEN_UPDATE = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")


def validate_stateful_set(obj: dict[str, Any]) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [field.required("spec")]
    errs += _policy(spec.get("podManagementPolicy")) + _update_strategy(spec.get("updateStrategy"))
    errs += replicas_errors(spec) + template_errors(spec, "statefulset")
    errs += v.non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    service = spec.get("serviceName")
    if service:   # optional since v1.32 (a set without a governing Service gets no DNS names)
        errs += v.check("spec.serviceName", service, v.is_dns1035_label)
    ordinals = spec.get("ordinals")
    if isinstance(ordinals, dict):
        errs += v.non_negative("spec.ordinals.start", ordinals.get("start"))
    errs += _retention(spec.get("persistentVolumeClaimRetentionPolicy"))
    errs += _claim_templates(spec.get("volumeClaimTemplates"))
    return errs


def _policy(policy: Any) -> list[Cause]:
    if not policy:
        return [field.required("spec.podManagementPolicy")]
    if policy not in POLICIES:
        return [field.invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'")]
    return []


def _update_strategy(strategy: Any) -> list[Cause]:
    p = "spec.updateStrategy"
    if not isinstance(strategy, dict) or not strategy.get("type"):
        return [field.required(p)]
    stype, rolling = strategy["type"], strategy.get("rollingUpdate")
    if stype == "OnDelete":
        if rolling is not None:
            return [field.invalid(f"{p}.rollingUpdate", rolling, "only allowed for updateStrategy 'RollingUpdate'")]
        return []
    if stype != "RollingUpdate":
        return [field.invalid(p, strategy, "must be 'RollingUpdate' or 'OnDelete'")]
    if not isinstance(rolling, dict):
        return []
    errs = v.non_negative(f"{p}.rollingUpdate.partition", rolling.get("partition"))
    unavailable = rolling.get("maxUnavailable")
    errs += int_or_percent(f"{p}.rollingUpdate.maxUnavailable", unavailable)
    if unavailable in (0, "0%"):
        errs.append(field.invalid(f"{p}.rollingUpdate.maxUnavailable", unavailable, "must be greater than 0"))
    return errs


def _retention(policy: Any) -> list[Cause]:
    if not isinstance(policy, dict):
        return []
    errs = []
    for key in ("whenDeleted", "whenScaled"):
        value = policy.get(key)
        if value not in RETENTION:
            errs.append(field.not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", value, RETENTION))
    return errs


def _claim_templates(claims: Any) -> list[Cause]:
    """Stored, never provisioned (netemu has no volumes): only the names must be usable."""
    items, errs = v.list_of_dicts("spec.volumeClaimTemplates", claims)
    for i, claim in enumerate(items):
        name = (claim.get("metadata") or {}).get("name") if isinstance(claim.get("metadata"), dict) else None
        path = f"spec.volumeClaimTemplates[{i}].metadata.name"
        errs += [field.required(path)] if not name else v.check(path, name, v.is_dns1123_subdomain)
    return errs


def validate_controller_revision(obj: dict[str, Any]) -> list[Cause]:
    """ValidateControllerRevision: data required, revision non-negative."""
    errs = v.object_meta(obj.get("metadata"), namespaced=True)
    if obj.get("data") is None:
        errs.append(field.required("data"))
    return errs + v.non_negative("revision", obj.get("revision"))


def validate_revision_update(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """A revision's data never changes (only its revision number may be bumped)."""
    return [field.immutable("data", new.get("data"))] if old.get("data") != new.get("data") else []


def validate_update(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """Only the MUTABLE spec fields may change (upstream ValidateStatefulSetUpdate)."""
    o, n = old.get("spec") or {}, new.get("spec") or {}
    fixed_old = {k: val for k, val in o.items() if k not in MUTABLE}
    fixed_new = {k: val for k, val in n.items() if k not in MUTABLE}
    if fixed_old != fixed_new:
        return [field.forbidden("spec", FORBIDDEN_UPDATE)]
    return []
