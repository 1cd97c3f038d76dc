"""Objects every cluster has from its first start (upstream's bootstrap controllers).

The four system namespaces and the ``kubernetes`` Service (10.96.0.1:443) in ``default``. Run
at every start; what exists already is left alone, so restarts are idempotent.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from netemu.api import errors, kinds
from netemu.apiserver.registry import Registry

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
KUBERNETES_SERVICE_IP = "10.96.0.1"


def kubernetes_service(target_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": KUBERNETES_SERVICE_IP,
                 "clusterIPs": [KUBERNETES_SERVICE_IP], "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": target_port}]},
    }


def kubernetes_endpoints(ip: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip}],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}


def _routable(host: str) -> bool:
    """An address pods could reach: a concrete, non-loopback IP."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified)


async def _ensure(registry: Registry, resource: str, namespace: str | None, obj: dict[str, Any]) -> None:
    rt = kinds.by_resource("", "v1", resource)
    try:
        await registry.get(rt, namespace, obj["metadata"]["name"])
        return                                      # kept from an earlier start
    except errors.NotFound:
        pass
    try:
        await registry.create(rt, namespace, obj)
    except errors.AlreadyExists:
        pass


async def bootstrap(registry: Registry, host: str, port: int) -> None:
    for name in SYSTEM_NAMESPACES:
        await _ensure(registry, "namespaces", None,
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    await _ensure(registry, "services", "default", kubernetes_service(port))
    if _routable(host):
        await _ensure(registry, "endpoints", "default", kubernetes_endpoints(host, port))
