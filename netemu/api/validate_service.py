"""Service validation (pkg/apis/core/validation: ValidateService / ValidateServiceUpdate).

Allocation problems (an IP or port already taken, out of range) are the allocator's to report;
this module checks the shape: types, ports, names, selectors, the fields each type allows, and
which fields an update may not change.
"""

from __future__ import annotations

from typing import Any

from netemu.api import field, validation as v
from netemu.api.defaults import externally_accessible
from netemu.api.field import Cause

TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
MAX_AFFINITY_SECONDS = 86400


def validate(obj: dict[str, Any]) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True, name_check="dns1035")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [field.required("spec")]
    stype = spec.get("type")
    errs += v.one_of("spec.type", stype, TYPES)
    if stype == "ExternalName":
        errs += _external_name(spec)
    else:
        errs += _cluster_ips(spec)
    errs += _ports(spec, stype)
    errs += v.labels("spec.selector", spec.get("selector"))
    errs += _affinity(spec)
    errs += _traffic_policies(spec, stype)
    for i, ip in enumerate(spec.get("externalIPs") or []):
        if not v.is_ip(ip):
            errs.append(field.invalid(f"spec.externalIPs[{i}]", ip, "must be a valid IP address"))
    ranges = spec.get("loadBalancerSourceRanges") or []
    if ranges and stype != "LoadBalancer":
        errs.append(field.forbidden("spec.loadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"))
    for i, cidr in enumerate(ranges if isinstance(ranges, list) else [ranges]):
        if not v.is_cidr(str(cidr).strip()):
            errs.append(field.invalid(f"spec.loadBalancerSourceRanges[{i}]", cidr,
                                      "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 "))
    hc = spec.get("healthCheckNodePort")
    if hc and not (stype == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"):
        errs.append(field.invalid("spec.healthCheckNodePort", hc,
                                  "may only be set when `type` is 'LoadBalancer' and "
                                  "`externalTrafficPolicy` is 'Local'"))
    if spec.get("allocateLoadBalancerNodePorts") is not None and stype != "LoadBalancer":
        errs.append(field.forbidden("spec.allocateLoadBalancerNodePorts",
                                    "may only be used when `type` is 'LoadBalancer'"))
    return errs


def _external_name(spec: dict) -> list[Cause]:
    errs: list[Cause] = []
    name = spec.get("externalName")
    if not name:
        errs.append(field.required("spec.externalName"))
    else:
        errs += v.check("spec.externalName", str(name).rstrip("."), v.is_dns1123_subdomain)
    if spec.get("clusterIP"):
        errs.append(field.forbidden("spec.clusterIP", "may not be set for ExternalName services"))
    if spec.get("clusterIPs"):
        errs.append(field.forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
    return errs


def _cluster_ips(spec: dict) -> list[Cause]:
    errs: list[Cause] = []
    ips = spec.get("clusterIPs") or []
    if not isinstance(ips, list):
        return [field.type_invalid("spec.clusterIPs", ips, "must be a list of strings")]
    ip = spec.get("clusterIP")
    if ip and ips and ips[0] != ip:
        errs.append(field.invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    if len(ips) > 1:
        errs.append(field.invalid("spec.clusterIPs", ips,
                                  "may only hold up to 1 values when ipFamilyPolicy is SingleStack "
                                  "(this cluster is single-stack IPv4)"))
    for i, one in enumerate(ips):
        if one != "None" and not v.is_ipv4(one):
            errs.append(field.invalid(f"spec.clusterIPs[{i}]", one,
                                      "must be empty, 'None', or a valid IP address"))
    if "None" in ips and len(ips) > 1:
        errs.append(field.invalid("spec.clusterIPs", ips, "'None' must be the first and only value"))
    if "None" in ips and spec.get("type") != "ClusterIP":
        errs.append(field.invalid("spec.clusterIPs[0]", "None", "may not be set to 'None' for "
                                  f"{spec.get('type')} services"))
    errs += v.one_of("spec.ipFamilyPolicy", spec.get("ipFamilyPolicy"), FAMILY_POLICIES, required=False)
    for i, fam in enumerate(spec.get("ipFamilies") or []):
        if fam != "IPv4":
            errs.append(field.not_supported(f"spec.ipFamilies[{i}]", fam, ("IPv4",)))
    return errs


def _ports(spec: dict, stype: Any) -> list[Cause]:
    ports, errs = v.list_of_dicts("spec.ports", spec.get("ports"))
    headless = (spec.get("clusterIPs") or [None])[0] == "None" or spec.get("clusterIP") == "None"
    if not ports and stype != "ExternalName" and not headless:
        errs.append(field.required("spec.ports"))
    names: set = set()
    seen: set = set()
    node_ports: set = set()
    for i, port in enumerate(ports):
        p = f"spec.ports[{i}]"
        name = port.get("name", "")
        if len(ports) > 1 and not name:
            errs.append(field.required(f"{p}.name"))
        elif name:
            errs += v.check(f"{p}.name", name, v.is_dns1123_label)
            if name in names:
                errs.append(field.duplicate(f"{p}.name", name))
            names.add(name)
        errs += v.port_number(f"{p}.port", port.get("port"))
        errs += v.protocol(f"{p}.protocol", port.get("protocol"))
        key = (port.get("port"), port.get("protocol"))
        if key in seen:
            errs.append(field.duplicate(p, {"port": port.get("port"), "protocol": port.get("protocol")}))
        seen.add(key)
        if "targetPort" in port:
            errs += v.port_num_or_name(f"{p}.targetPort", port["targetPort"])
        node_port = port.get("nodePort")
        if node_port:
            if stype not in ("NodePort", "LoadBalancer"):
                errs.append(field.forbidden(f"{p}.nodePort", f"may not be used when `type` is '{stype}'"))
            elif not v.is_int(node_port) or not 1 <= node_port <= 65535:
                errs.append(field.invalid(f"{p}.nodePort", node_port, v.PORT_RANGE_MSG))
            elif (node_port, port.get("protocol")) in node_ports:
                errs.append(field.duplicate(f"{p}.nodePort", node_port))
            node_ports.add((node_port, port.get("protocol")))
    return errs


def _affinity(spec: dict) -> list[Cause]:
    affinity = spec.get("sessionAffinity")
    errs = v.one_of("spec.sessionAffinity", affinity, AFFINITIES)
    config = spec.get("sessionAffinityConfig")
    if affinity == "ClientIP":
        timeout = ((config or {}).get("clientIP") or {}).get("timeoutSeconds") if isinstance(config, dict) else None
        if not v.is_int(timeout) or not 0 < timeout <= MAX_AFFINITY_SECONDS:
            errs.append(field.invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                                      f"must be greater than 0 and less than {MAX_AFFINITY_SECONDS}"))
    elif config:
        errs.append(field.forbidden("spec.sessionAffinityConfig",
                                    f"must not be set when session affinity is {affinity}"))
    return errs


def _traffic_policies(spec: dict, stype: Any) -> list[Cause]:
    """``validateServiceExternalTrafficPolicy`` + ``validateServiceInternalTrafficFieldsValue``:
    ETP only on externally-accessible Services; ITP required on ClusterIP/NodePort/LoadBalancer
    and, for historical reasons, tolerated (but still checked) on ExternalName."""
    errs: list[Cause] = []
    etp = spec.get("externalTrafficPolicy")
    if externally_accessible(spec):
        errs += v.one_of("spec.externalTrafficPolicy", etp, TRAFFIC_POLICIES)
    elif etp:
        errs.append(field.invalid("spec.externalTrafficPolicy", etp,
                                  "may only be set for externally-accessible services"))
    itp = spec.get("internalTrafficPolicy")
    errs += v.one_of("spec.internalTrafficPolicy", itp, TRAFFIC_POLICIES,
                     required=stype in ("ClusterIP", "NodePort", "LoadBalancer"))
    return errs


def validate_update(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """``ValidateServiceUpdate``: cluster IPs may not change once set (except to/from ExternalName)."""
    o, n = old.get("spec") or {}, new.get("spec") or {}
    if "ExternalName" in (o.get("type"), n.get("type")):
        return []
    old_ips, new_ips = o.get("clusterIPs") or [], n.get("clusterIPs") or []
    if not old_ips:
        return []
    if not new_ips:
        return [field.invalid("spec.clusterIPs[0]", new_ips, "primary clusterIP can not be unset")]
    if new_ips[0] != old_ips[0]:
        return [field.invalid("spec.clusterIPs[0]", new_ips, "may not change once set")]
    return []
