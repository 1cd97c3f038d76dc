"""Objects every cluster has from its first start (upstream's bootstrap controllers).

The default RBAC policy (netemu/apiserver/policy.py), the four system namespaces and the ``kubernetes`` Service (10.96.0.1:443) in ``default``, and,
when the server listens on an address pods can reach, its Endpoints and EndpointSlice (so
kube-proxy routes 10.96.0.1 to it). Run at every start: what exists is kept, only the
endpoints follow the server's current address.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from netemu.api import errors, kinds
from netemu.apiserver import policy
from netemu.apiserver.registry import Registry
from netemu.apiserver.services import service_ips

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
KUBERNETES_SERVICE_IP = "10.96.0.1"


def kubernetes_service(target_port: int, ip: str = KUBERNETES_SERVICE_IP) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "sessionAffinity": "None",
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


def kubernetes_endpoint_slice(ip: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


async def _ensure(registry: Registry, rt: kinds.ResourceType, namespace: str | None, obj: dict[str, Any],
                  reconcile: tuple[str, ...] = ()) -> None:
    """Create ``obj`` if missing; if present, bring the ``reconcile`` top-level fields up to
    date (the API server's address may change between starts) and keep everything else."""
    name = obj["metadata"]["name"]
    try:
        current = await registry.get(rt, namespace, name)
    except errors.NotFound:
        try:
            await registry.create(rt, namespace, obj)
        except errors.AlreadyExists:
            pass
        return
    if all(current.get(k) == obj.get(k) for k in reconcile):
        return

    def refresh(old: dict[str, Any]) -> dict[str, Any]:
        for key in reconcile:
            old[key] = obj[key]
        return old
    await registry.guaranteed_update(rt, namespace, name, refresh)


async def ensure_policy(registry: Registry) -> None:
    """The default ClusterRoles and ClusterRoleBindings (upstream's rbac/bootstrap-roles hook):
    missing ones are created, those still marked autoupdate brought back to the defaults."""
    rbac = "rbac.authorization.k8s.io/v1"
    for wanted in policy.cluster_roles() + policy.cluster_role_bindings():
        rt = kinds.by_kind(rbac, wanted["kind"])
        name = wanted["metadata"]["name"]
        try:
            current = await registry.get(rt, None, name)
        except errors.NotFound:
            current = None
        write = policy.reconcile(current, wanted)
        if write is None:
            continue
        if current is None:
            try:
                await registry.create(rt, None, write)
            except errors.AlreadyExists:
                pass
        else:
            await registry.guaranteed_update(rt, None, name, lambda old, w=write: w)


async def bootstrap(registry: Registry, host: str, port: int,
                    service_cidr: str = DEFAULT_SERVICE_CIDR, *, rbac_policy: bool = True) -> None:
    core = lambda resource: kinds.by_resource("", "v1", resource)  # noqa: E731
    if rbac_policy:
        await ensure_policy(registry)
    for name in SYSTEM_NAMESPACES:
        await _ensure(registry, core("namespaces"), None,
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    await _ensure(registry, core("services"), "default", kubernetes_service(port, service_ips(service_cidr)[0]))
    if _routable(host):
        await _ensure(registry, core("endpoints"), "default", kubernetes_endpoints(host, port), ("subsets",))
        await _ensure(registry, kinds.by_resource("discovery.k8s.io", "v1", "endpointslices"), "default",
                      kubernetes_endpoint_slice(host, port), ("endpoints", "ports"))
