"""Service updates, like upstream's pkg/registry/core/service (strategy.go and storage.go).

Two fix-ups run before validation on every Service update:

- ``patch_allocated_values``: a PUT that omits clusterIP, clusterIPs, nodePorts or
  healthCheckNodePort keeps the allocated ones (idempotent re-apply of the original manifest);
- ``drop_type_dependent_fields``: switching type wipes what the new type cannot have, but only
  values the user did not change in this update (they may be asking for them explicitly).

Reference: kubernetes v1.32 (tag v1.32.0, 70d3cc986aa8221cd1dfb1121852688902d3bf53)
pkg/registry/core/service/strategy.go and storage/storage.go.
"""

from __future__ import annotations


from netemu.api.defaults import externally_accessible
from netemu.api.meta import Obj


def _spec(svc: Obj) -> dict:
    spec = svc.get("spec")
    return spec if isinstance(spec, dict) else {}


def _ports(svc: Obj) -> list[dict]:
    ports = _spec(svc).get("ports")
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


def needs_cluster_ip(svc: Obj) -> bool:
    return _spec(svc).get("type", "ClusterIP") != "ExternalName"


def needs_node_port(svc: Obj) -> bool:
    """The strategy's ``needsNodePort``: the type can hold node ports (whether or not any are
    allocated: a LoadBalancer with allocateLoadBalancerNodePorts=false may still name some)."""
    return _spec(svc).get("type") in ("NodePort", "LoadBalancer")


def should_allocate_node_ports(svc: Obj) -> bool:
    """The allocator's ``shouldAllocateNodePorts``: NodePort, or LoadBalancer unless
    allocateLoadBalancerNodePorts is false."""
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


def _same_node_ports(old: Obj, new: Obj) -> bool:
    """Upstream ``sameNodePorts``: the user may add, remove or edit ports as long as no node port
    value is new (the old set is a superset of the new one)."""
    def values(svc: Obj) -> set:
        return {p.get("nodePort") for p in _ports(svc) if p.get("nodePort")}
    return values(old) >= values(new)


def drop_type_dependent_fields(new: Obj, old: Obj) -> None:
    """Upstream ``dropTypeDependentFields`` (kubernetes v1.32 pkg/registry/core/service/strategy.go):
    wipe only what no longer applies and what the user did not change in this update; a field
    the user did change is left for validation to refuse. internalTrafficPolicy is not among
    them: upstream keeps it on an ExternalName Service (historical reasons)."""
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
    if needs_node_port(old) and not needs_node_port(new) and _same_node_ports(old, new):
        for p in _ports(new):
            p.pop("nodePort", None)
    if needs_health_check_node_port(old) and not needs_health_check_node_port(new) \
            and same("healthCheckNodePort"):
        nspec.pop("healthCheckNodePort", None)
    if ospec.get("type") == "LoadBalancer" and nspec.get("type") != "LoadBalancer":
        alloc_old, alloc_new = ospec.get("allocateLoadBalancerNodePorts"), nspec.get("allocateLoadBalancerNodePorts")
        if alloc_old is not None and alloc_new is not None and alloc_old == alloc_new:
            nspec.pop("allocateLoadBalancerNodePorts", None)
        if same("loadBalancerClass"):
            nspec.pop("loadBalancerClass", None)
    if externally_accessible(ospec) and not externally_accessible(nspec) and same("externalTrafficPolicy"):
        nspec.pop("externalTrafficPolicy", None)
    if nspec.get("type") != "LoadBalancer" and isinstance(new.get("status"), dict):
        new["status"]["loadBalancer"] = {}
