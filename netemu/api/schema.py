"""Validation of a custom resource against its CRD's structural OpenAPI v3 schema (pure).

upstream validates custom resources with kube-openapi's SchemaValidator and turns each of its
errors into a field error (apiextensions-apiserver/pkg/apiserver/validation:
kubeOpenAPIResultToFieldErrors). The messages here are those, word for word, so a user sees
``spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1``
exactly as a real cluster prints it. Only the structural subset CRDs may use is implemented
(type, properties, required, enum, bounds, pattern, lengths, items, additionalProperties,
nullable, x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields; allOf/anyOf/oneOf/not
as value validations; the common string formats); CEL ``x-kubernetes-validations`` are not checked.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from typing import Any, Callable

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


def _ip(version: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            return ipaddress.ip_address(text).version == version
        except ValueError:
            return False
    return check


def _cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
        return "/" in text
    except ValueError:
        return False


def _base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
        return True
    except (binascii.Error, ValueError):
        return False


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}"
                       r"[a-zA-Z0-9])?)*$")
# the string formats kube-openapi's strfmt registry checks (others, like int32 or password, pass)
FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda t: bool(_DATE_TIME.match(t)),
    "date": lambda t: bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", t)),
    "uuid": lambda t: bool(re.fullmatch(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                                        r"[0-9a-fA-F]{12}", t)),
    "ipv4": _ip(4), "ipv6": _ip(6), "cidr": _cidr, "byte": _base64,
    "hostname": lambda t: bool(_HOSTNAME.match(t)),
    "mac": lambda t: bool(re.fullmatch(r"([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}", t)),
}


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
    fmt = schema.get("format")
    if fmt in FORMATS and not FORMATS[fmt](value):
        errs.append(field.type_invalid(name, value, f'{name} in body must be of type {fmt}: {json.dumps(value)}'))
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
    if schema.get("x-kubernetes-list-type") == "map":
        _map_keys(schema.get("x-kubernetes-list-map-keys") or [], value, path, errs)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _node(items, item, f"{path}[{i}]", errs)


def _map_keys(keys: list[str], value: list, path: str, errs: list[Cause]) -> None:
    """A list-type map: no two items with the same key values (upstream's listtype validation)."""
    seen: set[str] = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            continue
        key = {k: item[k] for k in keys if k in item}
        text = json.dumps(key, sort_keys=True, separators=(",", ":"))
        if text in seen:
            errs.append(field.duplicate(f"{path}[{i}]", field.GoValue(f"map[string]interface {{}}{text}")))
        seen.add(text)


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
