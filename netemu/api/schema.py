"""Validation of a custom resource against its CRD's structural OpenAPI v3 schema (pure).

upstream validates custom resources with kube-openapi's SchemaValidator and turns each of its
errors into a field error (apiextensions-apiserver/pkg/apiserver/validation:
kubeOpenAPIResultToFieldErrors). The messages here are those, word for word, so a user sees
``spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1``
exactly as a real cluster prints it. Only the structural subset CRDs may use is implemented
(type, properties, required, enum, bounds, pattern, lengths, items, additionalProperties,
nullable, x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields; allOf/anyOf/oneOf/not
as value validations); ``format`` and CEL ``x-kubernetes-validations`` are not checked.
"""

from __future__ import annotations

import json
import re
from typing import Any

from netemu.api import field
from netemu.api.field import Cause

Schema = dict[str, Any]
ROOT_FIELDS = ("apiVersion", "kind", "metadata")     # validated by the API machinery, not the schema


def json_type(value: Any) -> str:
    """The schema type name of a JSON value, as kube-openapi names it in type errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(expected: str, value: Any) -> bool:
    actual = json_type(value)
    return actual == expected or (expected == "number" and actual == "integer")


def _num(value: Any) -> str:
    """Go's ``%v`` of a float64 bound: 1 not 1.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _go_regex(pattern: str) -> re.Pattern | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate(schema: Schema | None, obj: Any, path: str = "", *, root: bool = True) -> list[Cause]:
    """Every field error of ``obj`` (the whole custom resource when ``root``) against ``schema``."""
    if not schema:
        return []
    errs: list[Cause] = []
    if root and isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k not in ROOT_FIELDS}
        schema = {**schema, "properties": {k: v for k, v in (schema.get("properties") or {}).items()
                                           if k not in ROOT_FIELDS},
                  "required": [r for r in schema.get("required") or [] if r not in ROOT_FIELDS]}
    _node(schema, obj, path, errs)
    return errs


def _node(schema: Schema, value: Any, path: str, errs: list[Cause]) -> None:
    name = path or "."
    if value is None:
        if schema.get("nullable") or schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("type"):
            return
        if schema.get("type"):
            errs.append(field.type_invalid(name, "null", f'{name} in body must be of type {schema["type"]}: "null"'))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if json_type(value) not in ("integer", "string"):
            errs.append(field.type_invalid(name, json_type(value),
                                           f'{name} in body must be of type integer,string: "{json_type(value)}"'))
            return
    elif schema.get("type") and not _type_ok(schema["type"], value):
        actual = json_type(value)
        errs.append(field.type_invalid(name, actual, f'{name} in body must be of type {schema["type"]}: "{actual}"'))
        return
    _enum(schema, value, name, errs)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _numeric(schema, value, name, errs)
    elif isinstance(value, str):
        _string(schema, value, name, errs)
    elif isinstance(value, list):
        _array(schema, value, path, name, errs)
    elif isinstance(value, dict):
        _object(schema, value, path, errs)
    _combinators(schema, value, path, errs)


def _enum(schema: Schema, value: Any, name: str, errs: list[Cause]) -> None:
    enum = schema.get("enum")
    if enum and value not in enum:
        allowed = [e if isinstance(e, str) else json.dumps(e, separators=(",", ":")) for e in enum]
        errs.append({**field.not_supported(name, value, allowed),
                     "message": f"Unsupported value: {field.go_repr(value)}: supported values: "
                                + ", ".join(json.dumps(a) for a in allowed)})


def _numeric(schema: Schema, value: float, name: str, errs: list[Cause]) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None:
        if schema.get("exclusiveMinimum") and value <= low:
            errs.append(field.invalid(name, value, f"{name} in body should be greater than {_num(low)}"))
        elif value < low:
            errs.append(field.invalid(name, value, f"{name} in body should be greater than or equal to {_num(low)}"))
    if high is not None:
        if schema.get("exclusiveMaximum") and value >= high:
            errs.append(field.invalid(name, value, f"{name} in body should be less than {_num(high)}"))
        elif value > high:
            errs.append(field.invalid(name, value, f"{name} in body should be less than or equal to {_num(high)}"))
    factor = schema.get("multipleOf")
    if factor and (value / factor) != int(value / factor):
        errs.append(field.invalid(name, value, f"{name} in body should be a multiple of {_num(factor)}"))


def _string(schema: Schema, value: str, name: str, errs: list[Cause]) -> None:
    length = len(value)
    if schema.get("maxLength") is not None and length > schema["maxLength"]:
        errs.append(field.too_long(name, schema["maxLength"]))
    if schema.get("minLength") is not None and length < schema["minLength"]:
        errs.append(field.invalid(name, value, f"{name} in body should be at least {schema['minLength']} chars long"))
    pattern = schema.get("pattern")
    if pattern:
        compiled = _go_regex(pattern)
        if compiled is not None and not compiled.search(value):
            errs.append(field.invalid(name, value, f"{name} in body should match '{pattern}'"))


def _array(schema: Schema, value: list, path: str, name: str, errs: list[Cause]) -> None:
    if schema.get("maxItems") is not None and len(value) > schema["maxItems"]:
        errs.append(field.too_many(name, len(value), schema["maxItems"]))
    if schema.get("minItems") is not None and len(value) < schema["minItems"]:
        errs.append(field.invalid(name, len(value), f"{name} in body should have at least {schema['minItems']} items"))
    if schema.get("uniqueItems") or schema.get("x-kubernetes-list-type") == "set":
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                errs.append(field.duplicate(f"{path}[{i}]", item))
            seen.append(item)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _node(items, item, f"{path}[{i}]", errs)


def _object(schema: Schema, value: dict, path: str, errs: list[Cause]) -> None:
    for key in schema.get("required") or []:
        if key not in value:
            errs.append(field.required(_child(path, key)))
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        child = _child(path, key)
        if key in props:
            _node(props[key], item, child, errs)
        elif isinstance(extra, dict):
            _node(extra, item, child, errs)
    if schema.get("maxProperties") is not None and len(value) > schema["maxProperties"]:
        errs.append(field.too_many(path or ".", len(value), schema["maxProperties"]))
    if schema.get("minProperties") is not None and len(value) < schema["minProperties"]:
        errs.append(field.invalid(path or ".", len(value),
                                  f"{path or '.'} in body should have at least {schema['minProperties']} properties"))


def _combinators(schema: Schema, value: Any, path: str, errs: list[Cause]) -> None:
    """allOf/anyOf/oneOf/not: value validations only (structural schemas keep types out of them)."""
    for sub in schema.get("allOf") or []:
        _node(sub, value, path, errs)
    name = path or "."
    any_of = schema.get("anyOf")
    if any_of and not any(not _errors(sub, value, path) for sub in any_of):
        errs.append(field.invalid(name, value, f'"{name}" must validate at least one schema (anyOf)'))
    one_of = schema.get("oneOf")
    if one_of:
        passing = sum(1 for sub in one_of if not _errors(sub, value, path))
        if passing != 1:
            errs.append(field.invalid(name, value, f'"{name}" must validate one and only one schema (oneOf)'))
    if isinstance(schema.get("not"), dict) and not _errors(schema["not"], value, path):
        errs.append(field.invalid(name, value, f'"{name}" must not validate the schema (not)'))


def _errors(schema: Schema, value: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    _node(schema, value, path, out)
    return out
