"""Key ranges and object (de)serialisation shared by the store backends.

Both backends answer "everything under a prefix" with a half-open key range [prefix, prefix_end),
the way etcd's ``range_end`` works, so a prefix ``/registry/pods/default/`` never matches
``/registry/pods/default2/x`` (the trailing slash is the caller's job; the kinds registry adds it).
"""

from __future__ import annotations

import json
from typing import Any

from netemu.api.errors import BadRequest


def check_key(key: Any) -> str:
    """A store key is a non-empty absolute path string; anything else is a caller's mistake."""
    if not isinstance(key, str) or not key.startswith("/") or len(key) < 2 or "\x00" in key:
        raise BadRequest(f"invalid store key {key!r}: must be an absolute path like /registry/pods/ns/name")
    return key


def check_prefix(prefix: Any) -> str:
    if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")) or "\x00" in prefix:
        raise BadRequest(f"invalid store prefix {prefix!r}: must be empty or an absolute path")
    return prefix


def check_revision(value: Any, what: str, *, optional: bool = True) -> int | None:
    """Revisions are non-negative ints (not strings: the API server parses resourceVersions)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{what} must be a non-negative integer, got {value!r}")
    return value


def check_list_args(prefix: Any, limit: Any, start_after: Any, revision: Any) -> str:
    """Validate list() arguments the same way for every backend; returns the prefix."""
    prefix = check_prefix(prefix)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BadRequest(f"limit must be a positive integer, got {limit!r}")
    if start_after is not None and not isinstance(start_after, str):
        raise BadRequest(f"start_after must be a key string, got {start_after!r}")
    check_revision(revision, "list revision")
    return prefix


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix`` (None: no bound).

    Code-point order equals UTF-8 byte order, so bumping the last character is the text version
    of etcd's "increment the last byte" rule.
    """
    if not prefix:
        return None
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return prefix_end(prefix[:-1])
    return prefix[:-1] + chr(last + 1)


def prefix_end_bytes(prefix: bytes) -> bytes:
    """etcd's ``range_end`` for a prefix: the prefix with its last byte incremented (b"\\0": all)."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return b"\x00"


def encode_object(obj: Any) -> str:
    """The stored JSON of an object: resourceVersion dropped (the store owns it, as upstream's
    versioner clears it before writing to etcd). The caller's dict is not modified."""
    if not isinstance(obj, dict):
        raise BadRequest(f"store values must be JSON objects, got {type(obj).__name__}")
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict) and "resourceVersion" in meta:
        meta = dict(meta)
        del meta["resourceVersion"]
        out["metadata"] = meta
    try:
        return json.dumps(out, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"object is not valid JSON: {exc}") from None


def decode_object(value: str | bytes, revision: int) -> dict[str, Any]:
    """A fresh dict of a stored object with ``metadata.resourceVersion`` set to ``revision``."""
    obj = json.loads(value)
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    meta["resourceVersion"] = str(revision)
    return obj
