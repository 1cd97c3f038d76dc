"""Kubernetes protobuf bodies (what kubectl's typed clients send) decoded to JSON objects."""

from __future__ import annotations

import base64

import pytest

from netemu.api import errors
from netemu.apiserver import body, protobuf


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def fld(number: int, value) -> bytes:
    if isinstance(value, int) and not isinstance(value, bool):
        return varint(number << 3) + varint(value)
    if isinstance(value, bool):
        return varint(number << 3) + varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def entry(number: int, key: str, value) -> bytes:
    return fld(number, fld(1, key) + fld(2, value))


def envelope(api_version: str, kind: str, raw: bytes, encoding: str = "") -> bytes:
    unknown = fld(1, fld(1, api_version) + fld(2, kind)) + fld(2, raw)
    if encoding:
        unknown += fld(3, encoding)
    return protobuf.MAGIC + unknown


def meta(name: str, **labels: str) -> bytes:
    out = fld(1, name) + fld(2, "") + fld(3, "") + fld(7, 0) + fld(8, b"")   # Go writes zero values
    for k, v in labels.items():
        out += entry(11, k, v)
    return out


def test_configmap_and_secret():
    cm = fld(1, meta("cfg", app="web")) + entry(2, "greeting", "hello") + entry(3, "bin", b"\x00\x01")
    obj = protobuf.decode(envelope("v1", "ConfigMap", cm))
    assert obj == {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cfg", "labels": {"app": "web"}},
                   "data": {"greeting": "hello"}, "binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()}}
    secret = fld(1, meta("s")) + entry(2, "password", b"hunter2") + fld(3, "Opaque")
    obj = protobuf.decode(envelope("v1", "Secret", secret))
    assert obj["data"] == {"password": base64.b64encode(b"hunter2").decode()} and obj["type"] == "Opaque"


def test_deployment_keeps_explicit_zero_replicas_and_decodes_intstr_and_quantities():
    container = (fld(1, "web") + fld(2, "nginx") + fld(5, "") + fld(6, fld(3, 80) + fld(4, "TCP"))
                 + fld(8, entry(1, "cpu", fld(1, "500m"))) + fld(16, False))
    pod_spec = fld(2, container) + fld(3, "") + fld(11, False)
    template = fld(1, meta("", app="web")) + fld(2, pod_spec)
    strategy = fld(1, "RollingUpdate") + fld(2, fld(1, fld(1, 1) + fld(3, "25%")) + fld(2, fld(1, 0) + fld(2, 2)))
    spec = fld(1, 0) + fld(2, entry(1, "app", "web")) + fld(3, template) + fld(4, strategy) + fld(5, 0)
    obj = protobuf.decode(envelope("apps/v1", "Deployment", fld(1, meta("web")) + fld(2, spec) + fld(3, b"")))
    assert obj["spec"]["replicas"] == 0
    assert "minReadySeconds" not in obj["spec"]
    assert obj["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": "25%", "maxSurge": 2}
    c = obj["spec"]["template"]["spec"]["containers"][0]
    assert c == {"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                 "resources": {"limits": {"cpu": "500m"}}}
    assert obj["spec"]["selector"] == {"matchLabels": {"app": "web"}} and obj["status"] == {}


def test_service_ports_and_negative_ints():
    port = fld(1, "http") + fld(2, "TCP") + fld(3, 80) + fld(4, fld(1, 0) + fld(2, 8080)) + fld(5, 0)
    spec = fld(1, port) + entry(2, "app", "web") + fld(4, "ClusterIP") + fld(12, -1 & ((1 << 64) - 1))
    obj = protobuf.decode(envelope("v1", "Service", fld(1, meta("web")) + fld(2, spec)))
    assert obj["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]
    assert obj["spec"]["healthCheckNodePort"] == -1


@pytest.mark.parametrize("raw, error", [
    (envelope("v1", "Pod", b""), errors.UnsupportedMediaType),                    # kind not listed
    (envelope("v1", "ConfigMap", fld(99, "x")), errors.UnsupportedMediaType),     # field not listed
    (envelope("v1", "ConfigMap", b"", encoding="gzip"), errors.UnsupportedMediaType),
    (b"not-k8s-protobuf", errors.BadRequest),
    (protobuf.MAGIC + b"\x0a\xff", errors.BadRequest),                             # truncated
])
def test_unsupported_or_broken_bodies_are_4xx(raw, error):
    with pytest.raises(error):
        body.decode_object(raw, protobuf.MEDIA_TYPE)
