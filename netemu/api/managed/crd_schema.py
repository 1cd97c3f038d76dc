"""The structured-merge-diff shape of a custom resource, read from its CRD's structural schema.

upstream builds a custom resource's type for server-side apply from the CRD's openAPIV3Schema:
objects with ``properties`` are structs, ``additionalProperties`` maps, arrays lists whose
semantics ``x-kubernetes-list-type`` (atomic | set | map, keyed by
``x-kubernetes-list-map-keys``) and ``x-kubernetes-map-type`` name (atomic by default for lists),
``x-kubernetes-int-or-string`` a scalar and ``x-kubernetes-preserve-unknown-fields`` without
properties an untyped (deduced) node. The root's metadata is ObjectMeta, as for every kind.
"""

from __future__ import annotations

from typing import Any

from netemu.api.managed.schema import SCALAR, UNTYPED, Atom, for_kind, list_of, struct


def for_custom(schema: dict[str, Any] | None) -> Atom:
    """The root Atom of a custom resource whose version has ``schema``."""
    root = _atom(schema or {})
    if root.kind != "struct":
        return UNTYPED
    meta = for_kind("ObjectMeta")
    fields = {name: root.field(name) for name in (schema or {}).get("properties") or {}}
    fields.update(apiVersion=SCALAR, kind=SCALAR)
    if meta.kind == "struct":
        fields["metadata"] = meta
    return struct(**fields)


def _atom(schema: dict[str, Any]) -> Atom:
    if schema.get("x-kubernetes-int-or-string"):
        return SCALAR
    typ = schema.get("type")
    if typ == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        list_type = schema.get("x-kubernetes-list-type") or "atomic"
        keys = tuple(schema.get("x-kubernetes-list-map-keys") or ()) if list_type == "map" else ()
        return list_of(_atom(items), list_type, keys)
    if typ == "object" or schema.get("properties"):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        atomic = schema.get("x-kubernetes-map-type") == "atomic"
        if props:
            node = struct(**{name: _atom(sub) for name, sub in props.items()})
            node.atomic = atomic
            return node
        if isinstance(extra, dict):
            return Atom("map", elem=_atom(extra), atomic=atomic)
        return Atom("map", elem=UNTYPED, atomic=True) if atomic else UNTYPED
    if typ in ("string", "integer", "number", "boolean"):
        return SCALAR
    return UNTYPED
