"""Validation of the smaller kinds: Namespace, Node, Endpoints, ConfigMap, Secret, ServiceAccount,
Event (core/v1), EndpointSlice, Lease and RBAC (Ingress and IngressClass: validate_ingress.py).

Each follows its upstream validation.go closely enough that the same bad manifest gets the same
field path and wording; rarely used corners (FQDN slices) are checked for shape only.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from netemu.api import field, validation as v
from netemu.api.field import Cause
from netemu.api.validate_pod import TAINT_EFFECTS

CONFIG_MAX_BYTES = 1024 * 1024


def namespace(obj: dict) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=False, name_check="label")
    phase = (obj.get("status") or {}).get("phase") if isinstance(obj.get("status"), dict) else None
    return errs + v.one_of("status.phase", phase, ("Active", "Terminating"), required=False)


def node(obj: dict) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=False)
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        return errs + [field.type_invalid("spec", spec, "must be an object")]
    cidrs = list(spec.get("podCIDRs") or [])
    if spec.get("podCIDR") and cidrs and cidrs[0] != spec["podCIDR"]:
        errs.append(field.invalid("spec.podCIDRs", cidrs, "first value must match `spec.podCIDR`"))
    for i, cidr in enumerate(cidrs):
        if not v.is_cidr(cidr):
            errs.append(field.invalid(f"spec.podCIDRs[{i}]", cidr, "must be a valid CIDR"))
    taints, terrs = v.list_of_dicts("spec.taints", spec.get("taints"))
    errs += terrs
    for i, t in enumerate(taints):
        p = f"spec.taints[{i}]"
        errs += [field.required(f"{p}.key")] if not t.get("key") else v.check(f"{p}.key", t["key"], v.is_qualified_name)
        errs += v.one_of(f"{p}.effect", t.get("effect"), TAINT_EFFECTS)
    return errs


def endpoints(obj: dict) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True)
    subsets, serrs = v.list_of_dicts("subsets", obj.get("subsets"))
    errs += serrs
    for i, subset in enumerate(subsets):
        for key in ("addresses", "notReadyAddresses"):
            addrs, aerrs = v.list_of_dicts(f"subsets[{i}].{key}", subset.get(key))
            errs += aerrs
            for j, a in enumerate(addrs):
                if not v.is_ip(a.get("ip")):
                    errs.append(field.invalid(f"subsets[{i}].{key}[{j}].ip", a.get("ip"), "must be a valid IP address"))
        ports, perrs = v.list_of_dicts(f"subsets[{i}].ports", subset.get("ports"))
        errs += perrs
        for j, port in enumerate(ports):
            p = f"subsets[{i}].ports[{j}]"
            if len(ports) > 1 and not port.get("name"):
                errs.append(field.required(f"{p}.name"))
            errs += v.port_number(f"{p}.port", port.get("port"))
            errs += v.protocol(f"{p}.protocol", port.get("protocol"))
    return errs


def _data_keys(obj: dict, binary: bool) -> list[Cause]:
    errs: list[Cause] = []
    total = 0
    seen: set = set()
    for key in ("data", "binaryData") if binary else ("data", "stringData"):
        data = obj.get(key)
        errs += v.string_map(key, data)
        for k, val in (data or {}).items() if isinstance(data, dict) else ():
            errs += v.check(key, k, v.is_config_key)
            if key == "binaryData" and k in seen:
                errs.append(field.invalid(key, k, "duplicate of key present in data"))
            seen.add(k)
            total += len(k) + (len(val) if isinstance(val, str) else 0)
    if total > CONFIG_MAX_BYTES:
        errs.append(field.too_long("" if binary else "data", CONFIG_MAX_BYTES))
    return errs


def config_map(obj: dict) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True) + _data_keys(obj, binary=True)
    for k, val in (obj.get("binaryData") or {}).items() if isinstance(obj.get("binaryData"), dict) else ():
        if isinstance(val, str) and not _is_base64(val):
            errs.append(field.invalid(f"binaryData[{k}]", val, "must be base64-encoded"))
    return errs


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
        return True
    except (binascii.Error, ValueError):
        return False


def secret(obj: dict) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True) + _data_keys(obj, binary=False)
    for k, val in (obj.get("data") or {}).items() if isinstance(obj.get("data"), dict) else ():
        if isinstance(val, str) and not _is_base64(val):
            errs.append(field.invalid(f"data[{k}]", val, "must be base64-encoded"))
    if not obj.get("type"):
        errs.append(field.required("type"))
    elif obj["type"] == "kubernetes.io/service-account-token":
        if not ((obj.get("metadata") or {}).get("annotations") or {}).get("kubernetes.io/service-account.name"):
            errs.append(field.required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif isinstance(obj.get("data") or {}, dict):
        data = obj.get("data") or {}
        required = SECRET_KEYS.get(obj["type"], ())
        if obj["type"] == "kubernetes.io/basic-auth":
            required = () if ("username" in data or "password" in data) else ("username", "password")
        errs += [field.required(f"data[{k}]") for k in required if k not in data]
    return errs


# keys each well-known Secret type must carry (ValidateSecret)
SECRET_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def service_account(obj: dict) -> list[Cause]:
    return v.object_meta(obj.get("metadata"), namespaced=True)


def event(obj: dict) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True, name_check="segment")
    involved = obj.get("involvedObject")
    if not isinstance(involved, dict):
        return errs + [field.required("involvedObject")]
    ns = (obj.get("metadata") or {}).get("namespace")
    if involved.get("namespace") and ns and involved["namespace"] != ns:
        errs.append(field.invalid("involvedObject.namespace", involved["namespace"],
                                  "does not match event.namespace"))
    errs += v.one_of("type", obj.get("type"), ("Normal", "Warning"), required=False)
    return errs


# -- discovery.k8s.io, coordination.k8s.io, networking.k8s.io -------------------------------------

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")


def endpoint_slice(obj: dict) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True)
    atype = obj.get("addressType")
    errs += v.one_of("addressType", atype, ADDRESS_TYPES)
    eps, eerrs = v.list_of_dicts("endpoints", obj.get("endpoints"))
    errs += eerrs
    if len(eps) > 1000:
        errs.append(field.too_many("endpoints", len(eps), 1000))
    for i, ep in enumerate(eps):
        p = f"endpoints[{i}]"
        addrs = ep.get("addresses")
        if not isinstance(addrs, list) or not addrs:
            errs.append(field.required(f"{p}.addresses", "must contain at least 1 address"))
            addrs = []
        elif len(addrs) > 100:
            errs.append(field.too_many(f"{p}.addresses", len(addrs), 100))
        for j, a in enumerate(addrs):
            errs += _slice_address(f"{p}.addresses[{j}]", a, atype)
        if ep.get("nodeName"):
            errs += v.check(f"{p}.nodeName", ep["nodeName"], v.is_dns1123_subdomain)
        if ep.get("hostname"):
            errs += v.check(f"{p}.hostname", ep["hostname"], v.is_dns1123_label)
        conditions = ep.get("conditions")
        if conditions is not None and not isinstance(conditions, dict):
            errs.append(field.type_invalid(f"{p}.conditions", conditions, "must be an object"))
    ports, perrs = v.list_of_dicts("ports", obj.get("ports"))
    errs += perrs
    names: set = set()
    for i, port in enumerate(ports):
        p = f"ports[{i}]"
        name = port.get("name") or ""
        if name:
            errs += v.check(f"{p}.name", name, v.is_dns1123_label)
        if name in names:
            errs.append(field.duplicate(f"{p}.name", name))
        names.add(name)
        if port.get("port") is not None:
            errs += v.port_number(f"{p}.port", port["port"])
        errs += v.protocol(f"{p}.protocol", port.get("protocol"))
    return errs


def _slice_address(path: str, addr: Any, atype: Any) -> list[Cause]:
    if atype == "IPv4" and not v.is_ipv4(addr):
        return [field.invalid(path, addr, "must be a valid IPv4 address")]
    if atype == "IPv6" and (not v.is_ip(addr) or v.is_ipv4(addr)):
        return [field.invalid(path, addr, "must be a valid IPv6 address")]
    if atype == "FQDN":
        return v.check(path, addr, v.is_dns1123_subdomain)
    return []


def lease(obj: dict) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True)
    spec = obj.get("spec") or {}
    for key in ("leaseDurationSeconds", "leaseTransitions"):
        value = spec.get(key) if isinstance(spec, dict) else None
        if value is not None and (not v.is_int(value) or value < (1 if key == "leaseDurationSeconds" else 0)):
            detail = "must be greater than 0" if key == "leaseDurationSeconds" else "must be greater than or equal to 0"
            errs.append(field.invalid(f"spec.{key}", value, detail))
    return errs


# -- rbac.authorization.k8s.io ------------------------------------------------------------------

RBAC_GROUP = "rbac.authorization.k8s.io"


def _rules(obj: dict, namespaced: bool) -> list[Cause]:
    rules, errs = v.list_of_dicts("rules", obj.get("rules"))
    for i, rule in enumerate(rules):
        p = f"rules[{i}]"
        if not rule.get("verbs"):
            errs.append(field.required(f"{p}.verbs", "verbs must contain at least one value"))
        if rule.get("nonResourceURLs"):
            if namespaced:
                errs.append(field.invalid(f"{p}.nonResourceURLs", rule["nonResourceURLs"],
                                          "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                errs.append(field.invalid(f"{p}.nonResourceURLs", rule["nonResourceURLs"],
                                          "rules cannot apply to both regular resources and non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            errs.append(field.required(f"{p}.apiGroups", "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            errs.append(field.required(f"{p}.resources", "resource rules must supply at least one resource"))
    return errs


def role(obj: dict) -> list[Cause]:
    return v.object_meta(obj.get("metadata"), namespaced=True, name_check="segment") + _rules(obj, True)


def cluster_role(obj: dict) -> list[Cause]:
    """An aggregated ClusterRole may carry rules too: upstream's aggregation controller writes
    the union of its parts into them (kubectl get clusterrole admin shows both)."""
    errs = v.object_meta(obj.get("metadata"), namespaced=False, name_check="segment")
    return errs + _rules(obj, False)


def _binding(obj: dict, namespaced: bool) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=namespaced, name_check="segment")
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        errs.append(field.required("roleRef"))
    else:
        if ref.get("apiGroup") != RBAC_GROUP:
            errs.append(field.not_supported("roleRef.apiGroup", ref.get("apiGroup"), (RBAC_GROUP,)))
        kinds = ("ClusterRole", "Role") if namespaced else ("ClusterRole",)
        errs += v.one_of("roleRef.kind", ref.get("kind"), kinds)
        errs += [field.required("roleRef.name")] if not ref.get("name") else \
            v.check("roleRef.name", ref["name"], v.is_path_segment_name)
    subjects, serrs = v.list_of_dicts("subjects", obj.get("subjects"))
    errs += serrs
    for i, s in enumerate(subjects):
        p = f"subjects[{i}]"
        if not s.get("name"):
            errs.append(field.required(f"{p}.name"))
        kind = s.get("kind")
        errs += v.one_of(f"{p}.kind", kind, ("Group", "ServiceAccount", "User"))
        if kind == "ServiceAccount":
            if s.get("apiGroup"):
                errs.append(field.not_supported(f"{p}.apiGroup", s["apiGroup"], ("",)))
            if not namespaced and not s.get("namespace"):
                errs.append(field.required(f"{p}.namespace"))
        elif kind in ("User", "Group") and s.get("apiGroup") != RBAC_GROUP:
            errs.append(field.not_supported(f"{p}.apiGroup", s.get("apiGroup"), (RBAC_GROUP,)))
    return errs


def role_binding(obj: dict) -> list[Cause]:
    return _binding(obj, True)


def cluster_role_binding(obj: dict) -> list[Cause]:
    return _binding(obj, False)
