"""The three PATCH flavours kubectl sends, applied to plain JSON dicts.

- ``merge_patch``: JSON merge patch (RFC 7386): maps merge, ``null`` deletes, lists replace.
- ``json_patch``: JSON patch (RFC 6902) through the ``jsonpatch`` package.
- ``strategic_merge_patch``: apimachinery's strategicpatch as ``kubectl apply/edit/label/
  annotate/scale`` use it: lists merged by their patchMergeKey (``patch_schema``), directives
  ``$patch: replace|delete|merge``, ``$retainKeys``, ``$setElementOrder/<list>``,
  ``$deleteFromPrimitiveList/<list>``, and ``null`` deleting a key.

Malformed patches raise ``BadRequest`` (400) and patches that cannot apply ``Invalid`` (422),
as upstream's patcher maps them; the original object is never modified.
"""

from __future__ import annotations

from typing import Any

import jsonpatch

from netemu.api import errors, meta
from netemu.api.patch_schema import ListMeta, schema_for

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def _unprocessable(message: str) -> errors.Invalid:
    return errors.Invalid(message)


# -- RFC 7386 -----------------------------------------------------------------------------------

def merge_patch(original: dict[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise errors.BadRequest("a merge patch must be a JSON object")
    return _merge7386(meta.json_copy(original), patch)


def _merge7386(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return meta.json_copy(patch)
    out = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge7386(out.get(key), value)
    return out


# -- RFC 6902 -----------------------------------------------------------------------------------

def json_patch(original: dict[str, Any], patch: Any) -> Any:
    if not isinstance(patch, list):
        raise errors.BadRequest("a JSON patch must be a JSON array of operations")
    try:
        ops = jsonpatch.JsonPatch(patch)
    except (jsonpatch.InvalidJsonPatch, TypeError, AttributeError) as e:
        raise errors.BadRequest(f"invalid JSON patch: {e}") from None
    try:
        return ops.apply(meta.json_copy(original), in_place=True)
    except jsonpatch.InvalidJsonPatch as e:
        raise errors.BadRequest(f"invalid JSON patch: {e}") from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, AssertionError,
            KeyError, IndexError, TypeError, ValueError) as e:
        raise _unprocessable(f"the JSON patch could not be applied: {e}") from None


# -- strategic merge patch ------------------------------------------------------------------------

def strategic_merge_patch(original: dict[str, Any], patch: Any, kind: str) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise errors.BadRequest("a strategic merge patch must be a JSON object")
    return _merge_map(meta.json_copy(original), meta.json_copy(patch), schema_for(kind))


def _merge_map(original: Any, patch: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``original`` (both owned by us: mutated freely)."""
    if not isinstance(original, dict):
        original = {}
    directive = patch.pop(DIRECTIVE, None)
    if directive == "replace":
        return _strip(patch, schema)
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise errors.BadRequest(f"Unable to find $patch directive {directive!r}: "
                                "supported values are replace, delete and merge")
    _retain_keys(original, patch)
    _delete_from_primitive_lists(original, patch)
    orders = {k[len(SET_ORDER):]: patch.pop(k) for k in list(patch) if k.startswith(SET_ORDER)}
    before = {k: list(original[k]) for k in orders if isinstance(original.get(k), list)}
    for key, value in patch.items():
        if key.startswith("$"):
            raise errors.BadRequest(f"unknown strategic merge patch directive {key!r}")
        sub = schema.get(key)
        if value is None:
            original.pop(key, None)
        elif isinstance(value, dict) and isinstance(original.get(key), dict):
            original[key] = _merge_map(original[key], value, sub if isinstance(sub, dict) else {})
        elif isinstance(value, list) and isinstance(original.get(key), list) and isinstance(sub, ListMeta):
            original[key] = _merge_list(original[key], value, sub)
        else:
            original[key] = _strip(value, sub)
    for key, order in orders.items():
        _set_element_order(original, key, order, schema.get(key), before.get(key, []))
    return original


def _strip(value: Any, schema: Any) -> Any:
    """A new subtree taken from the patch: directives processed against an empty original."""
    if isinstance(value, dict):
        return _merge_map({}, value, schema if isinstance(schema, dict) else {})
    if isinstance(value, list) and isinstance(schema, ListMeta):
        return _merge_list([], value, schema)
    return value


def _retain_keys(original: dict, patch: dict) -> None:
    if RETAIN_KEYS not in patch:
        return
    keep = patch.pop(RETAIN_KEYS)
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise errors.BadRequest("invalid patch format of retainKeys")
    for key in patch:
        if not key.startswith("$") and key not in keep and patch[key] is not None:
            raise errors.BadRequest("invalid patch format of retainKeys: "
                                    f"{key!r} is in the patch but not in the $retainKeys list")
    for key in list(original):
        if key not in keep:
            del original[key]


def _delete_from_primitive_lists(original: dict, patch: dict) -> None:
    for key in [k for k in patch if k.startswith(DELETE_PRIMITIVE)]:
        values = patch.pop(key)
        name = key[len(DELETE_PRIMITIVE):]
        if not isinstance(values, list):
            raise errors.BadRequest("invalid patch format of primitive list")
        if isinstance(original.get(name), list):
            original[name] = [v for v in original[name] if v not in values]


def _merge_list(original: list, patch: list, meta: ListMeta) -> list:
    if meta.merge_key is None:
        return _merge_primitives(original, patch)
    key = meta.merge_key
    replace = False
    items = []
    for element in patch:
        if not isinstance(element, dict):
            raise errors.BadRequest(f"invalid patch: list elements must be objects with merge key {key!r}")
        directive = element.get(DIRECTIVE)
        if directive == "replace":
            replace = True
        elif directive == "delete":
            if key not in element:
                raise errors.BadRequest(f"map: {element} does not contain declared merge key: {key}")
            original = [o for o in original if not (isinstance(o, dict) and o.get(key) == element[key])]
        elif directive not in (None, "merge"):
            raise errors.BadRequest(f"Unable to find $patch directive {directive!r}")
        else:
            if key not in element:
                raise errors.BadRequest(f"map: {element} does not contain declared merge key: {key}")
            items.append(element)
    if replace:
        return [_strip(e, meta.item) for e in items]
    merged = list(original)
    for element in items:
        at = next((i for i, o in enumerate(merged) if isinstance(o, dict) and o.get(key) == element[key]), None)
        if at is None:
            merged.append(_merge_map({}, element, meta.item))
        else:
            merged[at] = _merge_map(merged[at], element, meta.item)
    return merged


def _merge_primitives(original: list, patch: list) -> list:
    if any(isinstance(v, (dict, list)) for v in patch):
        raise errors.BadRequest("invalid patch format of primitive list")
    merged = list(original)
    for value in patch:
        if value not in merged:
            merged.append(value)
    return merged


def _ident(item: Any, key: str | None) -> Any:
    return item.get(key) if key is not None and isinstance(item, dict) else item


def _normalize_order(merged: list, patch_order: list, original: list, key: str | None) -> list:
    """Upstream ``normalizeElementOrder``: items named by the patch in the patch's order,
    server-only items in the original order, interleaved by their original positions."""
    server_order = [_ident(o, key) for o in original]
    patch_items = sorted((m for m in merged if _ident(m, key) in patch_order),
                         key=lambda m: patch_order.index(_ident(m, key)))
    server_only = sorted((m for m in merged if _ident(m, key) not in patch_order),
                         key=lambda m: _index(server_order, _ident(m, key)))
    out = []
    i = j = 0
    while i < len(patch_items) or j < len(server_only):
        if j >= len(server_only):
            out.append(patch_items[i])
            i += 1
        elif i >= len(patch_items):
            out.append(server_only[j])
            j += 1
        else:
            li, ri = _index(server_order, _ident(patch_items[i], key)), _index(server_order, _ident(server_only[j], key))
            if li >= 0 and ri >= 0 and li < ri:
                out.append(patch_items[i])
                i += 1
            else:
                out.append(server_only[j])
                j += 1
    return out


def _index(values: list, value: Any) -> int:
    try:
        return values.index(value)
    except ValueError:
        return -1


def _set_element_order(original: dict, name: str, order: Any, meta: Any, before: list) -> None:
    """``$setElementOrder/<name>``: the final order of the list's elements, by merge key."""
    if not isinstance(order, list):
        raise errors.BadRequest("invalid patch format of setElementOrder list")
    current = original.get(name)
    if not isinstance(current, list):
        return
    key = meta.merge_key if isinstance(meta, ListMeta) else None
    wanted = []
    for entry in order:
        if key is not None:
            if not isinstance(entry, dict) or key not in entry:
                raise errors.BadRequest("invalid patch format of setElementOrder list")
            wanted.append(entry[key])
        else:
            wanted.append(entry)
    original[name] = _normalize_order(current, wanted, before, key)
