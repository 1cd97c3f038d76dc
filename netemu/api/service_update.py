"""Service updates, like upstream's pkg/registry/core/service (strategy.go and storage.go).

Two fix-ups run before validation on every Service update:

- ``patch_allocated_values``: a PUT that omits clusterIP, clusterIPs, nodePorts or
  healthCheckNodePort keeps the allocated ones (idempotent re-apply of the original manifest);
- ``drop_type_dependent_fields``: switching type wipes what the new type cannot have, but only
  values the user did not change in this update (they may be asking for them explicitly).
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _spec(svc: Obj) -> dict:
    spec = svc.get("spec")
    return spec if isinstance(spec, dict) else {}


def _ports(svc: Obj) -> list[dict]:
    ports = _spec(svc).get("ports")
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


def needs_cluster_ip(svc: Obj) -> bool:
    return _spec(svc).get("type", "ClusterIP") != "ExternalName"


def needs_node_port(svc: Obj) -> bool:
    spec = _spec(svc)
    stype = spec.get("type")
    if stype == "NodePort":
        return True
    return stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False


def needs_health_check_node_port(svc: Obj) -> bool:
    spec = _spec(svc)
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def patch_allocated_values(new: Obj, old: Obj) -> None:
    """Fill allocated values the client left out (upstream ``patchAllocatedValues``)."""
    nspec, ospec = _spec(new), _spec(old)
    if needs_cluster_ip(old) and needs_cluster_ip(new):
        if not nspec.get("clusterIP") and ospec.get("clusterIP"):
            nspec["clusterIP"] = ospec["clusterIP"]
        if not nspec.get("clusterIPs") and ospec.get("clusterIPs"):
            nspec["clusterIPs"] = list(ospec["clusterIPs"])
    if needs_node_port(old) and needs_node_port(new):
        used = {p.get("nodePort") for p in _ports(old)} & {p.get("nodePort") for p in _ports(new)}
        by_name = {p.get("name", ""): p.get("nodePort") for p in _ports(old)}
        for p in _ports(new):
            if not p.get("nodePort"):
                value = by_name.get(p.get("name", ""))
                if value and value not in used:
                    p["nodePort"] = value
                    used.add(value)
    if needs_health_check_node_port(old) and needs_health_check_node_port(new):
        if not nspec.get("healthCheckNodePort") and ospec.get("healthCheckNodePort"):
            nspec["healthCheckNodePort"] = ospec["healthCheckNodePort"]


def normalize_cluster_ips(new: Obj, old: Obj) -> None:
    """Upstream ``normalizeClusterIPs`` (update case): keep clusterIP and clusterIPs in step for
    clients that only know the singular field, so a changed clusterIP is reported as a change."""
    nspec, ospec = _spec(new), _spec(old)
    old_ips = ospec.get("clusterIPs") or []
    if old_ips and not nspec.get("clusterIPs") and ospec.get("clusterIP") == nspec.get("clusterIP"):
        nspec["clusterIPs"] = list(old_ips)
    if ospec.get("clusterIP") == nspec.get("clusterIP"):
        return
    same = nspec.get("clusterIPs") == ospec.get("clusterIPs")
    if ospec.get("clusterIP") and not nspec.get("clusterIP"):
        if same:
            nspec.pop("clusterIPs", None)
    elif same:
        nspec["clusterIPs"] = [nspec.get("clusterIP")]


def _node_ports(svc: Obj) -> list:
    return [p.get("nodePort") for p in _ports(svc)]


def drop_type_dependent_fields(new: Obj, old: Obj) -> None:
    """Upstream ``dropTypeDependentFields``: wipe only what no longer applies and was not changed."""
    nspec, ospec = _spec(new), _spec(old)

    def same(key: str) -> bool:
        return nspec.get(key) == ospec.get(key)

    if needs_cluster_ip(old) and not needs_cluster_ip(new):
        if same("clusterIP") and same("clusterIPs"):
            nspec.pop("clusterIP", None)
            nspec.pop("clusterIPs", None)
        if same("ipFamilies"):
            nspec.pop("ipFamilies", None)
        if same("ipFamilyPolicy"):
            nspec.pop("ipFamilyPolicy", None)
    if needs_node_port(old) and not needs_node_port(new) and _node_ports(old) == _node_ports(new):
        for p in _ports(new):
            p.pop("nodePort", None)
    if needs_health_check_node_port(old) and not needs_health_check_node_port(new) \
            and same("healthCheckNodePort"):
        nspec.pop("healthCheckNodePort", None)
    was_lb, is_lb = ospec.get("type") == "LoadBalancer", nspec.get("type") == "LoadBalancer"
    if was_lb and not is_lb:
        for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if same(key):
                nspec.pop(key, None)
        status = new.get("status")
        if isinstance(status, dict):
            status["loadBalancer"] = {}
    if _needs_etp(old) and not _needs_etp(new) and same("externalTrafficPolicy"):
        nspec.pop("externalTrafficPolicy", None)
    if nspec.get("type") == "ExternalName" and same("internalTrafficPolicy"):
        nspec.pop("internalTrafficPolicy", None)


def _needs_etp(svc: Obj) -> bool:
    spec = _spec(svc)
    return spec.get("type") in ("NodePort", "LoadBalancer") or bool(spec.get("externalIPs"))
