"""Field errors worded like apimachinery's ``field.Error.ErrorBody()``.

A cause is the dict the API server puts in ``Status.details.causes``: ``reason`` is the upstream
CauseType (FieldValueInvalid, ...), ``message`` the ErrorBody, ``field`` the path. Keeping the
exact words matters: users paste these messages into search engines, and kubectl prints them.
"""

from __future__ import annotations

import json
from typing import Any

Cause = dict[str, str]


def go_repr(value: Any) -> str:
    """The value the way Go's ``%q`` / ``%v`` / ``%#v`` show it in upstream messages."""
    if value is None:
        return "null"
    if isinstance(value, GoValue):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(json.dumps(v) for v in value) + "}"
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return "map[string]string{" + ", ".join(f"{json.dumps(k)}:{json.dumps(v)}"
                                                 for k, v in sorted(value.items())) + "}"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class GoValue(str):
    """A value already rendered the way Go's ``%#v`` prints it (shown verbatim by ``go_repr``)."""


def go_label_selector(sel: Any) -> GoValue:
    """A metav1.LabelSelector as upstream prints it in "Invalid value: ..." messages."""
    if not isinstance(sel, dict):
        return GoValue("(*v1.LabelSelector)(nil)")
    labels = sel.get("matchLabels")
    labels_text = "map[string]string(nil)" if not labels else go_repr(labels)
    exprs = sel.get("matchExpressions")
    if not exprs:
        exprs_text = "[]v1.LabelSelectorRequirement(nil)"
    else:
        items = []
        for e in exprs if isinstance(exprs, list) else []:
            e = e if isinstance(e, dict) else {}
            values = e.get("values")
            values_text = go_repr(values) if values else "[]string(nil)"
            items.append(f'v1.LabelSelectorRequirement{{Key:{go_repr(e.get("key", ""))}, '
                         f'Operator:{go_repr(e.get("operator", ""))}, Values:{values_text}}}')
        exprs_text = "[]v1.LabelSelectorRequirement{" + ", ".join(items) + "}"
    return GoValue(f"v1.LabelSelector{{MatchLabels:{labels_text}, MatchExpressions:{exprs_text}}}")


def _cause(reason: str, path: str, body: str, detail: str = "") -> Cause:
    return {"reason": reason, "message": f"{body}: {detail}" if detail else body, "field": path}


def invalid(path: str, value: Any, detail: str) -> Cause:
    return _cause("FieldValueInvalid", path, f"Invalid value: {go_repr(value)}", detail)


def required(path: str, detail: str = "") -> Cause:
    return _cause("FieldValueRequired", path, "Required value", detail)


def not_supported(path: str, value: Any, supported: list[str] | tuple[str, ...]) -> Cause:
    values = ", ".join(json.dumps(s) for s in sorted(supported))
    return _cause("FieldValueNotSupported", path, f"Unsupported value: {go_repr(value)}",
                  f"supported values: {values}")


def not_found(path: str, value: Any) -> Cause:
    return _cause("FieldValueNotFound", path, f"Not found: {go_repr(value)}")


def forbidden(path: str, detail: str) -> Cause:
    return _cause("FieldValueForbidden", path, "Forbidden", detail)


def duplicate(path: str, value: Any) -> Cause:
    return _cause("FieldValueDuplicate", path, f"Duplicate value: {go_repr(value)}")


def too_long(path: str, max_len: int, unit: str = "bytes") -> Cause:
    return _cause("FieldValueTooLong", path, "Too long", f"must have at most {max_len} {unit}")


def too_many(path: str, actual: int, max_items: int) -> Cause:
    return _cause("FieldValueTooMany", path, f"Too many: {actual}", f"must have at most {max_items} items")


def type_invalid(path: str, value: Any, detail: str) -> Cause:
    """A field of the wrong JSON type (upstream rejects these while decoding)."""
    return _cause("FieldValueTypeInvalid", path, f"Invalid value: {go_repr(value)}", detail)


def immutable(path: str, value: Any) -> Cause:
    """``apivalidation.ValidateImmutableField``."""
    return invalid(path, value, "field is immutable")
