"""Kubernetes protobuf request bodies -> JSON objects, for the kinds kubectl creates that way.

kubectl's typed clients (``kubectl create deployment|service|configmap|secret|namespace|
serviceaccount|role|rolebinding...``) send ``application/vnd.kubernetes.protobuf`` and never
fall back to JSON. The body is the ``k8s\\x00`` magic and a ``runtime.Unknown`` envelope (type
meta + the object's own protobuf bytes). Decoding needs each message's field numbers, which
``protoschema`` lists for the kinds and fields those commands send. A field or kind that is not
listed is refused with 415 naming it: nothing is ever dropped silently.

Go's proto2 encoding writes every non-pointer field, zero values included, where JSON would
leave them out (``omitempty``); zero scalars are dropped unless the schema marks the field as a
pointer (``replicas: 0`` is a real value), so the JSON equals what the JSON client would send.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from netemu.api import errors
from netemu.apiserver.protoschema import KINDS, MESSAGES, Field

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"


def _unsupported(what: str) -> errors.UnsupportedMediaType:
    return errors.UnsupportedMediaType(
        f"netemu cannot decode this protobuf body ({what}); send JSON or YAML instead, e.g. "
        "`kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise errors.BadRequest("truncated protobuf body")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise errors.BadRequest("malformed protobuf varint")


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """The raw (field number, wire type, value) triples of one message, in order."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise errors.BadRequest("truncated protobuf body")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise errors.BadRequest(f"unsupported protobuf wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(f: Field, wire: int, value: Any) -> Any:
    kind = f.type
    if kind == "string":
        return value.decode("utf-8")
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "int":
        return _signed(value)
    if kind == "bool":
        return bool(value)
    if kind == "time":
        parts = {n: v for n, _, v in fields(value)}
        seconds = _signed(parts.get(1, 0))
        if not seconds and not parts.get(2):
            return None
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "quantity":
        return {n: v for n, _, v in fields(value)}.get(1, b"").decode()
    if kind == "intstr":
        parts = {n: v for n, _, v in fields(value)}
        return parts.get(3, b"").decode() if parts.get(1) == 1 else _signed(parts.get(2, 0))
    return message(kind, value)


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value is False


def message(name: str, buf: bytes) -> dict[str, Any]:
    """Decode one message of type ``name`` into its JSON form."""
    schema = MESSAGES.get(name)
    if schema is None:
        raise _unsupported(f"message {name}")
    out: dict[str, Any] = {}
    for number, wire, value in fields(buf):
        f = schema.get(number)
        if f is None:
            raise _unsupported(f"field {number} of {name}")
        if f.map_of:
            entry = {n: v for n, _, v in fields(value)}
            key = entry.get(1, b"").decode()
            out.setdefault(f.name, {})[key] = _scalar(Field("", f.map_of), 2, entry.get(2, b""))
            continue
        decoded = _scalar(f, wire, value)
        if f.repeated:
            out.setdefault(f.name, []).append(decoded)
        elif f.pointer or not _is_zero(decoded):
            out[f.name] = decoded
        else:
            out.pop(f.name, None)
    return out


def decode(raw: bytes) -> dict[str, Any]:
    """A ``k8s\\x00`` + runtime.Unknown body -> the object as JSON (apiVersion, kind set)."""
    if not raw.startswith(MAGIC):
        raise errors.BadRequest("the protobuf body does not start with the k8s magic prefix")
    envelope = {n: v for n, _, v in fields(raw[len(MAGIC):])}
    type_meta = {n: v for n, _, v in fields(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
    encoding = envelope.get(3, b"").decode()
    if encoding:
        raise _unsupported(f"content encoding {encoding!r}")
    top = KINDS.get((api_version, kind))
    if top is None:
        raise _unsupported(f"kind {kind} of {api_version or 'no apiVersion'}")
    obj = message(top, envelope.get(2, b""))
    return {"apiVersion": api_version, "kind": kind, **obj}
