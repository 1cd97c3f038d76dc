"""Validation of Ingress and IngressClass (networking.k8s.io/v1), as upstream's
pkg/apis/networking/validation/validation.go (v1.32: validateIngress, ValidateIngressCreate,
validateIngressRules, validateHTTPIngressPath, validateIngressBackend, validateIngressTLS,
ValidateIngressClass): the same bad manifest gets the same field paths and words.
"""

from __future__ import annotations

import re

from netemu.api import field, validation as v
from netemu.api.field import Cause

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
WILDCARD_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must "
                "consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character "
                "(e.g. '*.example.com', regex used for validation is "
                r"'\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_WILDCARD = re.compile(r"^\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_CONTROLLER = 250
_DOMAIN_PREFIXED = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/\S+$")


def is_wildcard_subdomain(value: str) -> list[str]:
    return ([f"must be no more than 253 characters"] if len(value) > 253 else []) + \
        ([] if _WILDCARD.match(value) else [WILDCARD_MSG])


def _host(path: str, host: str) -> list[Cause]:
    errs = []
    if v.is_ip(host):
        errs.append(field.invalid(path, host, "must be a DNS name, not an IP address"))
    errs += v.check(path, host, is_wildcard_subdomain if "*" in host else v.is_dns1123_subdomain)
    return errs


def ingress(obj: dict) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [field.required("spec")]
    rules, rerrs = v.list_of_dicts("spec.rules", spec.get("rules"))
    errs += rerrs
    if not rules and spec.get("defaultBackend") is None:
        errs.append(field.invalid("spec", spec.get("rules"), "either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        errs += _backend("spec.defaultBackend", spec["defaultBackend"])
    for i, rule in enumerate(rules):
        if rule.get("host"):
            errs += _host(f"spec.rules[{i}].host", rule["host"])
        http = rule.get("http")
        if http is None:
            continue
        paths, perrs = v.list_of_dicts(f"spec.rules[{i}].http.paths", (http or {}).get("paths"))
        errs += perrs
        if not paths:
            errs.append(field.required(f"spec.rules[{i}].http.paths"))
        for j, path in enumerate(paths):
            errs += _http_path(f"spec.rules[{i}].http.paths[{j}]", path)
    tls, terrs = v.list_of_dicts("spec.tls", spec.get("tls"))
    errs += terrs
    for i, item in enumerate(tls):
        for j, host in enumerate(item.get("hosts") or []):
            errs += v.check(f"spec.tls[{i}].hosts[{j}]", host, is_wildcard_subdomain if "*" in host
                            else v.is_dns1123_subdomain)
        if item.get("secretName"):
            errs += v.check(f"spec.tls[{i}].secretName", item["secretName"], v.is_dns1123_subdomain)
    if spec.get("ingressClassName") is not None:
        errs += v.check("spec.ingressClassName", spec["ingressClassName"], v.is_dns1123_subdomain)
    return errs


def ingress_create(obj: dict) -> list[Cause]:
    """ValidateIngressCreate: the legacy class annotation must agree with ingressClassName."""
    annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(CLASS_ANNOTATION)
    name = (obj.get("spec") or {}).get("ingressClassName")
    if annotation is not None and name is not None and annotation != name:
        return [field.invalid(f"annotations.{CLASS_ANNOTATION}", annotation,
                              "must match `ingressClassName` when both are specified")]
    return []


def _http_path(p: str, path: dict) -> list[Cause]:
    kind, value = path.get("pathType"), path.get("path") or ""
    errs: list[Cause] = []
    if kind is None:
        return [field.required(f"{p}.pathType", "pathType must be specified")]
    if kind in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errs.append(field.invalid(f"{p}.path", value, "must be an absolute path"))
        if value:
            errs += [field.invalid(f"{p}.path", value, f"must not contain '{s}'")
                     for s in INVALID_PATH_SEQUENCES if s in value]
            errs += [field.invalid(f"{p}.path", value, f"cannot end with '{s}'")
                     for s in INVALID_PATH_SUFFIXES if value.endswith(s)]
    elif kind == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.append(field.invalid(f"{p}.path", value, "must be an absolute path"))
    else:
        errs.append(field.not_supported(f"{p}.pathType", kind, PATH_TYPES))
    return errs + _backend(f"{p}.backend", path.get("backend"))


def _backend(path: str, backend) -> list[Cause]:
    if not isinstance(backend, dict):
        return [field.required(path)]
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [field.invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        errs = []
        if not isinstance(resource, dict) or not resource.get("kind"):
            errs.append(field.required(f"{path}.resource.kind"))
        if not isinstance(resource, dict) or not resource.get("name"):
            errs.append(field.required(f"{path}.resource.name"))
        return errs
    if service is None:
        return [field.invalid(path, "", "resource or service backend is required")]
    errs = [field.required(f"{path}.service.name")] if not service.get("name") else \
        v.check(f"{path}.service.name", service["name"], v.is_dns1035_label)
    port = service.get("port") if isinstance(service.get("port"), dict) else {}
    name, number = port.get("name") or "", port.get("number") or 0
    if name and number:
        errs.append(field.invalid(path, "", "cannot set both port name & port number"))
    elif name:
        errs += v.check(f"{path}.service.port.name", name, v.is_port_name)
    elif number:
        errs += v.port_number(f"{path}.service.port.number", number)
    else:
        errs.append(field.required(path, "port name or number is required"))
    return errs


def ingress_class(obj: dict) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=False)
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    controller = spec.get("controller")
    if not controller:
        errs.append(field.required("spec.controller"))
    elif len(controller) > MAX_CONTROLLER:
        errs.append(field.too_long("spec.controller", MAX_CONTROLLER))
    elif not _DOMAIN_PREFIXED.match(controller):
        errs.append(field.invalid("spec.controller", controller, "must be a domain-prefixed path (such as \"acme.io/foo\")"))
    params = spec.get("parameters")
    if isinstance(params, dict):
        if not params.get("kind"):
            errs.append(field.required("spec.parameters.kind"))
        if not params.get("name"):
            errs.append(field.required("spec.parameters.name"))
        scope = params.get("scope")
        if scope is not None:
            errs += v.one_of("spec.parameters.scope", scope, ("Cluster", "Namespace"))
            if scope == "Namespace" and not params.get("namespace"):
                errs.append(field.required("spec.parameters.namespace", "`parameters.scope` is set to 'Namespace'"))
            if scope == "Cluster" and params.get("namespace"):
                errs.append(field.forbidden("spec.parameters.namespace", "`parameters.scope` is set to 'Cluster'"))
    return errs


def ingress_class_update(old: dict, new: dict) -> list[Cause]:
    """The controller of an IngressClass never changes."""
    before, after = (old.get("spec") or {}).get("controller"), (new.get("spec") or {}).get("controller")
    return [field.immutable("spec.controller", after)] if before != after else []
