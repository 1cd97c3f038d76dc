"""Unknown-field detection for ``fieldValidation`` (Strict / Warn / Ignore), like upstream's
strict decoding: ``spec.replicass`` in a manifest is an error (kubectl sends Strict), not a
silently dropped typo.

The schema comes from the official python client's models (``openapi_types`` and
``attribute_map`` of every built-in type), when that package is importable; without it no
field is reported unknown (and the server says so once in its log).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from netemu.api import errors

log = logging.getLogger(__name__)
MODES = ("Strict", "Warn", "Ignore")
_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")
_SCALARS = {"str", "int", "bool", "float", "datetime", "date", "bytes", "object"}


@functools.lru_cache(maxsize=1)
def _models() -> Any:
    try:
        from kubernetes import client
    except ImportError:
        log.warning("the kubernetes python package is missing: unknown fields are not detected")
        return None
    return client


def warm_up() -> bool:
    """Load the schemas (a second or so); True when unknown fields can be detected."""
    return _models() is not None


def _model_for(kind: str) -> Any:
    client = _models()
    if client is None:
        return None
    for name in (f"V1{kind}", f"CoreV1{kind}", f"RbacV1{kind}", f"DiscoveryV1{kind}"):
        model = getattr(client, name, None)
        if model is not None:
            return model
    return None


def _walk(value: Any, type_name: str, path: str, out: list[str]) -> None:
    if type_name in _SCALARS or value is None:
        return
    m = _LIST.match(type_name)
    if m:
        if isinstance(value, list):
            for i, item in enumerate(value):
                _walk(item, m.group(1), f"{path}[{i}]", out)
        return
    m = _DICT.match(type_name)
    if m:
        if isinstance(value, dict):
            for key, item in value.items():
                _walk(item, m.group(1), f"{path}[{key}]", out)
        return
    model = getattr(_models(), type_name, None)
    if model is None or not isinstance(value, dict):
        return
    json_to_attr = {v: k for k, v in model.attribute_map.items()}
    for key, item in value.items():
        attr = json_to_attr.get(key)
        child = f"{path}.{key}" if path else key
        if attr is None:
            out.append(child)
        else:
            _walk(item, model.openapi_types[attr], child, out)


def unknown_fields(kind: str, obj: dict[str, Any]) -> list[str]:
    """Paths of fields the kind's schema does not have (``spec.replicass``)."""
    model = _model_for(kind)
    if model is None:
        return []
    out: list[str] = []
    _walk(obj, model.__name__, "", out)
    return out


def unknown_metadata(obj: dict[str, Any]) -> list[str]:
    """Unknown fields under ``metadata`` (ObjectMeta), for kinds without a python model."""
    out: list[str] = []
    if _models() is not None:
        _walk(obj.get("metadata"), "V1ObjectMeta", "metadata", out)
    return out


def check(kind: str, api_version: str, obj: dict[str, Any], mode: str | None,
          unknown: list[str] | None = None) -> list[str]:
    """Apply ``fieldValidation``: Strict raises 400, Warn returns the warnings, Ignore nothing.
    Without the parameter upstream warns, so we do too. ``unknown``: the unknown fields when the
    caller knows them (a custom resource's, from its schema)."""
    mode = mode or "Warn"
    if mode not in MODES:
        raise errors.BadRequest(f'fieldValidation must be one of "Strict", "Warn", "Ignore", not "{mode}"')
    if mode == "Ignore":
        return []
    if unknown is None:
        unknown = unknown_fields(kind, obj)
    if not unknown:
        return []
    messages = [f'unknown field "{p}"' for p in unknown]
    if mode == "Strict":
        version = api_version.rpartition("/")[2]
        raise errors.BadRequest(f'{kind} in version "{version}" cannot be handled as a {kind}: '
                                f"strict decoding error: {', '.join(messages)}")
    return messages
