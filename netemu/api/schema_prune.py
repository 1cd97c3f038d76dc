"""Pruning and defaulting of custom resources by their structural schema (pure).

upstream (apiextensions-apiserver/pkg/apiserver/schema/pruning and .../defaulting) drops every
field the schema does not specify, unless ``x-kubernetes-preserve-unknown-fields`` keeps it, and
fills ``default:`` values in where a field is missing (or null and not nullable). Both run on
every write, pruning first, and defaulting also runs when an object is read from storage, so a
default added to the CRD later shows up on old objects. The root's apiVersion, kind and metadata
are the API machinery's and are never pruned.
"""

from __future__ import annotations

import copy
from typing import Any

from netemu.api.schema import ROOT_FIELDS, Schema


def prune(schema: Schema | None, obj: Any) -> list[str]:
    """Remove unknown fields from ``obj`` in place; returns their paths (for fieldValidation)."""
    if not schema or not isinstance(obj, dict):
        return []
    out: list[str] = []
    _prune_object(schema, obj, "", out, root=True)
    return out


def _prune(schema: Schema | None, value: Any, path: str, out: list[str]) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        _prune_object(schema, value, path, out)
    elif isinstance(value, list):
        items = schema.get("items")
        for i, item in enumerate(value):
            if isinstance(items, dict):
                _prune(items, item, f"{path}[{i}]", out)
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                _prune({}, item, f"{path}[{i}]", out)


def _prune_object(schema: Schema, value: dict, path: str, out: list[str], root: bool = False) -> None:
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    for key in list(value):
        child = f"{path}.{key}" if path else key
        if root and key in ROOT_FIELDS:
            continue
        if key in props:
            _prune(props[key], value[key], child, out)
        elif isinstance(extra, dict):
            _prune(extra, value[key], child, out)
        elif extra is True or preserve:
            continue
        else:
            del value[key]
            out.append(child)


def apply_defaults(schema: Schema | None, obj: Any) -> None:
    """Fill ``default`` values in, in place (upstream's structuraldefaulting.Default)."""
    if not schema or obj is None:
        return
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if "default" not in sub:
                continue
            if key not in obj or (obj[key] is None and not sub.get("nullable")):
                obj[key] = copy.deepcopy(sub["default"])
        for key, value in obj.items():
            if key in props:
                apply_defaults(props[key], value)
            elif isinstance(schema.get("additionalProperties"), dict):
                apply_defaults(schema["additionalProperties"], value)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(schema["items"], item)


def drop_nulls(schema: Schema | None, obj: Any) -> None:
    """Null values of non-nullable fields without a default go, as upstream prunes them before
    defaulting (a null where the schema says nullable stays)."""
    if not schema or not isinstance(obj, dict):
        return
    props = schema.get("properties") or {}
    for key in list(obj):
        sub = props.get(key) if key in props else (schema.get("additionalProperties")
                                                   if isinstance(schema.get("additionalProperties"), dict) else None)
        if sub is None:
            continue
        if obj[key] is None and not sub.get("nullable") and "default" not in sub:
            del obj[key]
        elif isinstance(obj[key], dict):
            drop_nulls(sub, obj[key])
        elif isinstance(obj[key], list) and isinstance(sub.get("items"), dict):
            for item in obj[key]:
                drop_nulls(sub["items"], item)
