"""``metadata.managedFields`` entries to managers and back (upstream's managedfields
internal/managedfields.go and capmanagers.go).

Entries are sorted as upstream sorts them (operation, time, manager, apiVersion,
subresource); at most ``MAX_UPDATE_MANAGERS`` Update entries are kept, the oldest merged into
one ``ancient-changes`` entry, so an object written by many clients does not grow forever.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from netemu.api.managed.fieldpath import FieldSet, path
from netemu.api.managed.updater import ManagerKey, Managers

MAX_UPDATE_MANAGERS = 10
ANCIENT = "ancient-changes"
# stripMeta: fields of every object that no manager owns
STRIPPED = FieldSet.of(path("apiVersion"), path("kind"), path("metadata"),
                       *(path("metadata", f) for f in ("name", "namespace", "creationTimestamp", "selfLink", "uid",
                                                        "clusterName", "generation", "managedFields",
                                                        "resourceVersion")))


@dataclass
class Managed:
    """The decoded managedFields of an object: field sets and times by manager."""

    fields: Managers = field(default_factory=dict)
    times: dict[ManagerKey, str] = field(default_factory=dict)


class BadManagedFields(ValueError):
    """managedFields a client sent that cannot be decoded."""


def decode(entries: Any) -> Managed:
    """Parse ``metadata.managedFields``; raises BadManagedFields naming the bad entry."""
    out = Managed()
    if entries is None:
        return out
    if not isinstance(entries, list):
        raise BadManagedFields("metadata.managedFields must be a list")
    for i, entry in enumerate(entries):
        where = f"metadata.managedFields[{i}]"
        if not isinstance(entry, dict):
            raise BadManagedFields(f"{where} must be an object")
        operation = entry.get("operation")
        if operation not in ("Apply", "Update"):
            raise BadManagedFields(f'{where}.operation: Unsupported value: {operation!r}: supported values: '
                                   '"Apply", "Update"')
        if entry.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise BadManagedFields(f'{where}.fieldsType: Unsupported value: {entry.get("fieldsType")!r}: '
                                   'supported values: "FieldsV1"')
        key = ManagerKey(str(entry.get("manager") or ""), operation, str(entry.get("subresource") or ""))
        try:
            owned = _parse(entry.get("fieldsV1") or {})
        except (ValueError, TypeError) as exc:
            raise BadManagedFields(f"{where}.fieldsV1: {exc}") from None
        out.fields[key] = out.fields[key].union(owned) if key in out.fields else owned
        if entry.get("time"):
            out.times[key] = str(entry["time"])
    return out


def _parse(doc: Any) -> FieldSet:
    """FieldsV1 parsed once per distinct document (most writes leave most entries as they
    were, and parsing is the larger part of the cost of recording managed fields)."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return _parse_text(text)


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> FieldSet:
    return FieldSet.from_fields_v1(json.loads(text))


def is_reset(entries: Any) -> bool:
    """``managedFields: []`` or ``[{}]`` in a write: the client asks to clear them."""
    return isinstance(entries, list) and (not entries or (len(entries) == 1 and entries[0] == {}))


def encode(managed: Managed, api_version: str) -> list[dict[str, Any]]:
    """The entries to store, capped and sorted like upstream's."""
    _cap(managed)
    entries = []
    for key, owned in managed.fields.items():
        if owned.empty():
            continue
        entry: dict[str, Any] = {"manager": key.manager, "operation": key.operation, "apiVersion": api_version}
        if key in managed.times:
            entry["time"] = managed.times[key]
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = owned.to_fields_v1()
        if key.subresource:
            entry["subresource"] = key.subresource
        entries.append(entry)
    entries.sort(key=lambda e: (e["operation"], e.get("time", ""), e["manager"], e["apiVersion"],
                                e.get("subresource", "")))
    return entries


def _cap(managed: Managed) -> None:
    updates = sorted((k for k in managed.fields if not k.applied and k.manager != ANCIENT),
                     key=lambda k: managed.times.get(k, ""))
    ancient = ManagerKey(ANCIENT, "Update")
    excess = len(updates) + (ancient in managed.fields) - MAX_UPDATE_MANAGERS
    for key in updates[:max(0, excess)]:
        merged = managed.fields.pop(key)
        managed.fields[ancient] = managed.fields[ancient].union(merged) if ancient in managed.fields else merged
        if key in managed.times:
            managed.times[ancient] = max(managed.times[key], managed.times.get(ancient, ""))
        managed.times.pop(key, None)
