"""Decoding request bodies: JSON or YAML, a size limit, and clear 4xx for every client mistake.

A body that is not a mapping, is malformed, or is too large never reaches the store: the
caller gets 400 / 413 / 415 as a Status, the way upstream's decoder rejects it.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from netemu.api import errors

MAX_BODY_BYTES = 3 * 1024 * 1024          # upstream API server body limit (etcd: 1.5 MiB per value)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_size(raw: bytes) -> None:
    if len(raw) > MAX_BODY_BYTES:
        raise errors.RequestEntityTooLarge(
            f"the request body of {len(raw)} bytes is larger than the limit of {MAX_BODY_BYTES} bytes")


def decode(raw: bytes, content_type: str | None) -> Any:
    """The body as JSON data (YAML accepted too, as upstream does for application/yaml)."""
    check_size(raw)
    if not raw.strip():
        raise errors.BadRequest("the request body is empty")
    kind = media_type(content_type)
    if kind == "application/vnd.kubernetes.protobuf":
        from netemu.apiserver import protobuf
        return protobuf.decode(raw)
    try:
        if kind in ("application/yaml", "application/x-yaml", "text/yaml", APPLY_PATCH):
            return yaml.safe_load(raw.decode("utf-8"))
        return json.loads(raw)
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
        what = "YAML" if "yaml" in kind else "JSON"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise errors.BadRequest(f"the request body is not valid {what}: {first}") from None


def decode_object(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """A body that must be one object (create / update)."""
    data = decode(raw, content_type)
    if not isinstance(data, dict):
        raise errors.BadRequest(f"the request body must be a JSON object, not {type(data).__name__}")
    meta = data.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise errors.BadRequest("metadata must be an object")
    return data
