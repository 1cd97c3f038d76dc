"""Custom resources: the kinds a CustomResourceDefinition defines, and their strategy (pure).

``served(crd)`` turns a stored CRD into one ``ResourceType`` per served version (all stored
under the storage version's key prefix, ``/registry/<group>/<plural>/``, as upstream); the
``CustomInfo`` each carries holds what the generic machinery needs from the definition: the
version's schema, its subresources and printer columns. ``prepare_create``/``prepare_update``
are upstream's customresource strategy: prune, default, validate against the schema; with the
status subresource on, the main resource ignores status and ``/status`` ignores everything
else; metadata.generation starts at 1 and bumps on every change outside metadata (and status,
when that is a subresource). Conversion is upstream's ``None`` strategy: only apiVersion changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Any

from netemu.api import errors, meta, schema, schema_prune
from netemu.api import validation as v
from netemu.api.field import Cause
from netemu.api.kinds import ResourceType
from netemu.api.meta import Obj

GROUP = "apiextensions.k8s.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


@dataclass(frozen=True)
class CustomInfo:
    """What serving one version of a CRD needs from its definition."""

    crd_name: str
    storage_version: str
    schema: dict[str, Any] = dc_field(default_factory=dict)
    status: bool = False                       # the status subresource is on
    scale: dict[str, Any] | None = None        # specReplicasPath, statusReplicasPath, labelSelectorPath
    columns: tuple[dict[str, Any], ...] = ()   # additionalPrinterColumns
    list_kind: str = ""
    terminating: bool = False                  # the CRD is being deleted: no new resources


def _names(crd: Obj) -> Obj:
    """The names the CRD serves under: status.acceptedNames once accepted, else spec.names."""
    accepted = (crd.get("status") or {}).get("acceptedNames") or {}
    return accepted if accepted.get("plural") else (crd.get("spec") or {}).get("names") or {}


def storage_version(crd: Obj) -> str:
    for ver in (crd.get("spec") or {}).get("versions") or []:
        if ver.get("storage"):
            return ver.get("name", "")
    return ""


def served(crd: Obj) -> tuple[ResourceType, ...]:
    """The ResourceTypes of a CRD's served versions."""
    spec = crd.get("spec") or {}
    names, group = _names(crd), spec.get("group", "")
    plural, kind = names.get("plural", ""), names.get("kind", "")
    storage = storage_version(crd)
    out = []
    for ver in spec.get("versions") or []:
        if not ver.get("served"):
            continue
        subs = ver.get("subresources") or {}
        info = CustomInfo(crd_name=meta.name_of(crd), storage_version=storage,
                          schema=((ver.get("schema") or {}).get("openAPIV3Schema") or {}),
                          status="status" in subs, scale=subs.get("scale"),
                          columns=tuple(ver.get("additionalPrinterColumns") or ()),
                          list_kind=names.get("listKind") or f"{kind}List",
                          terminating=meta.is_being_deleted(crd))
        out.append(ResourceType(
            group, ver["name"], kind, plural, spec.get("scope") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            subresources=tuple(s for s in ("status", "scale") if s in subs),
            singular=names.get("singular") or kind.lower(), categories=tuple(names.get("categories") or ()),
            etcd_prefix=f"{group}/{plural}", custom=info))
    return tuple(out)


# -- the customresource strategy --------------------------------------------------------------

def _checked(rt: ResourceType, obj: Any) -> Obj:
    meta.check_body(rt.kind, obj)
    out = meta.json_copy(obj)
    out["apiVersion"], out["kind"] = rt.api_version, rt.kind
    return out


def normalize(rt: ResourceType, obj: Obj) -> list[str]:
    """Prune, drop non-nullable nulls and default ``obj`` in place; returns the pruned paths."""
    info: CustomInfo = rt.custom
    pruned = schema_prune.prune(info.schema, obj)
    schema_prune.drop_nulls(info.schema, obj)
    schema_prune.apply_defaults(info.schema, obj)
    return pruned


def on_read(rt: ResourceType, obj: Obj) -> Obj:
    """A stored object as served: the requested version's apiVersion, defaults filled in."""
    obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
    schema_prune.apply_defaults(rt.custom.schema, obj)
    return obj


def as_served(rt: ResourceType, obj: Obj) -> Obj:
    """A stored object of any kind as a read of ``rt`` returns it (a copy for custom resources,
    whose defaults change nested fields; built-in objects get a shallow copy)."""
    if rt.custom is not None:
        return on_read(rt, meta.json_copy(obj))
    return {**obj, "apiVersion": rt.api_version, "kind": rt.kind}


def validate(rt: ResourceType, obj: Obj) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=rt.namespaced)
    errs += schema.validate(rt.custom.schema, obj)
    return errs or _scale_errors(rt, obj)


def _scale_errors(rt: ResourceType, obj: Obj) -> list[Cause]:
    """upstream validates the replicas paths of the scale subresource as integers."""
    scale = rt.custom.scale
    if not scale:
        return []
    errs = []
    for key in ("specReplicasPath", "statusReplicasPath"):
        path = scale.get(key) or ""
        value, found = get_path(obj, path)
        if found and value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            errs.append({"reason": "FieldValueInvalid", "field": path.lstrip("."),
                         "message": f"Invalid value: {value!r}: must be an integer"})
    return errs


def _raise_if(rt: ResourceType, obj: Obj, causes: list[Cause]) -> None:
    if causes:
        raise errors.invalid(rt.kind, meta.name_of(obj), causes, rt.group)


def prepare_create(rt: ResourceType, obj: Obj, *, now: str) -> Obj:
    if rt.custom.terminating:
        raise errors.MethodNotAllowed("create not allowed while custom resource definition is terminating")
    out = _checked(rt, obj)
    md = meta.begin_create(out, rt.namespaced)
    if rt.custom.status:
        out.pop("status", None)
    normalize(rt, out)
    md["uid"], md["creationTimestamp"], md["generation"] = meta.new_uid(), now, 1
    _raise_if(rt, out, validate(rt, out))
    out["apiVersion"] = f"{rt.group}/{rt.custom.storage_version}"
    return out


def prepare_update(rt: ResourceType, old: Obj, new: Obj, *, subresource: str | None) -> Obj:
    """The object to store for an update of ``old`` (stored) by ``new`` (main or ``status``)."""
    from netemu.api.strategy import validate_update_meta
    if subresource not in (None, "status"):
        raise errors.NotFound(f"the server could not find the requested resource ({subresource})")
    out = _checked(rt, new)
    normalize(rt, out)
    info: CustomInfo = rt.custom
    if subresource == "status":
        kept = meta.json_copy(old)
        kept["apiVersion"], kept["kind"] = rt.api_version, rt.kind
        if "status" in out:
            kept["status"] = out["status"]
        else:
            kept.pop("status", None)
        rv = meta.metadata(out).get("resourceVersion")
        kept_md = meta.metadata(kept)
        kept_md.pop("resourceVersion", None)
        if rv is not None:
            kept_md["resourceVersion"] = rv
        out = kept
    elif info.status:
        if "status" in old:
            out["status"] = meta.json_copy(old["status"])
        else:
            out.pop("status", None)
    _system_metadata(rt, old, out)
    _raise_if(rt, out, validate(rt, out))
    _raise_if(rt, out, validate_update_meta(old.get("metadata") or {}, out.get("metadata") or {}))
    out["apiVersion"] = f"{rt.group}/{info.storage_version}"
    return out


def _system_metadata(rt: ResourceType, old: Obj, out: Obj) -> None:
    md, omd = meta.keep_system_fields(old, out), old.get("metadata") or {}
    skip = ("apiVersion", "kind", "metadata", "status") if rt.custom.status else ("apiVersion", "kind", "metadata")
    changed = any(old.get(k) != out.get(k) for k in set(old) | set(out) if k not in skip)
    md["generation"] = (omd.get("generation") or 1) + (1 if changed else 0)


# -- field paths (.spec.replicas) of the scale subresource and printer columns ------------------

def get_path(obj: Any, path: str) -> tuple[Any, bool]:
    """The value at a simple JSON path (``.spec.replicas``); (None, False) when absent."""
    cur = obj
    for part in [p for p in path.split(".") if p]:
        if not isinstance(cur, dict) or part not in cur:
            return None, False
        cur = cur[part]
    return cur, True


def set_path(obj: Obj, path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = cur[part] = {}
        cur = nxt
    cur[parts[-1]] = value
