"""Pod and pod-template validation (ValidatePodSpec, ValidatePodUpdate).

Deployments and ReplicaSets validate their template through ``pod_spec`` with their own path
prefix, as upstream's ValidatePodTemplateSpec does.
"""

from __future__ import annotations

from typing import Any

from netemu.api import field, meta, quantity, validation as v
from netemu.api.field import Cause

RESTART_POLICIES = ("Always", "Never", "OnFailure")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
TOLERATION_OPERATORS = ("Equal", "Exists")


def validate(obj: dict[str, Any]) -> list[Cause]:
    errs = v.object_meta(obj.get("metadata"), namespaced=True)
    return errs + pod_spec("spec", obj.get("spec"))


def pod_spec(path: str, spec: Any) -> list[Cause]:
    if not isinstance(spec, dict):
        return [field.required(path)]
    errs: list[Cause] = []
    volumes, verrs = v.list_of_dicts(f"{path}.volumes", spec.get("volumes"))
    errs += verrs
    vol_names = set()
    for i, vol in enumerate(volumes):
        name = vol.get("name")
        p = f"{path}.volumes[{i}].name"
        if not name:
            errs.append(field.required(p))
        else:
            errs += v.check(p, name, v.is_dns1123_label)
            if name in vol_names:
                errs.append(field.duplicate(p, name))
            vol_names.add(name)
        sources = [k for k in vol if k != "name"]
        if len(sources) > 1:
            errs.append(field.forbidden(f"{path}.volumes[{i}].{sources[1]}", "may not specify more than 1 volume type"))
        elif not sources:
            errs.append(field.required(f"{path}.volumes[{i}]", "must specify a volume type"))
    containers, cerrs = v.list_of_dicts(f"{path}.containers", spec.get("containers"))
    errs += cerrs
    if not containers and not cerrs:
        errs.append(field.required(f"{path}.containers"))
    init, ierrs = v.list_of_dicts(f"{path}.initContainers", spec.get("initContainers"))
    errs += ierrs
    names: set = set()
    for key, items in (("initContainers", init), ("containers", containers)):
        for i, c in enumerate(items):
            errs += container(f"{path}.{key}[{i}]", c, names, vol_names)
    errs += ephemeral_containers(f"{path}.ephemeralContainers", spec.get("ephemeralContainers"), names,
                                 vol_names)
    errs += v.one_of(f"{path}.restartPolicy", spec.get("restartPolicy"), RESTART_POLICIES)
    errs += v.one_of(f"{path}.dnsPolicy", spec.get("dnsPolicy"), DNS_POLICIES)
    errs += v.labels(f"{path}.nodeSelector", spec.get("nodeSelector"))
    if spec.get("nodeName"):
        errs += v.check(f"{path}.nodeName", spec["nodeName"], v.is_dns1123_subdomain)
    errs += v.non_negative(f"{path}.terminationGracePeriodSeconds", spec.get("terminationGracePeriodSeconds"))
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (not v.is_int(ads) or ads < 1):
        errs.append(field.invalid(f"{path}.activeDeadlineSeconds", ads, "must be between 1 and 2147483647, inclusive"))
    errs += tolerations(f"{path}.tolerations", spec.get("tolerations"))
    if spec.get("hostname"):
        errs += v.check(f"{path}.hostname", spec["hostname"], v.is_dns1123_label)
    if spec.get("subdomain"):
        errs += v.check(f"{path}.subdomain", spec["subdomain"], v.is_dns1123_label)
    return errs


def container(path: str, c: dict, names: set, volumes: set) -> list[Cause]:
    errs: list[Cause] = []
    name = c.get("name")
    errs += v.unique_name(f"{path}.name", name, names, v.is_dns1123_label)
    image = c.get("image")
    if not image or (isinstance(image, str) and image.strip() != image):
        errs.append(field.required(f"{path}.image") if not image else
                    field.invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    errs += v.one_of(f"{path}.imagePullPolicy", c.get("imagePullPolicy"), PULL_POLICIES, required=False)
    errs += container_ports(f"{path}.ports", c.get("ports"))
    envs, eerrs = v.list_of_dicts(f"{path}.env", c.get("env"))
    errs += eerrs
    for i, env in enumerate(envs):
        p = f"{path}.env[{i}].name"
        errs += [field.required(p)] if not env.get("name") else v.check(p, env["name"], v.is_env_var_name)
    mounts, merrs = v.list_of_dicts(f"{path}.volumeMounts", c.get("volumeMounts"))
    errs += merrs
    for i, m in enumerate(mounts):
        p = f"{path}.volumeMounts[{i}]"
        if not m.get("name"):
            errs.append(field.required(f"{p}.name"))
        elif m["name"] not in volumes:
            errs.append(field.not_found(f"{p}.name", m["name"]))
        if not m.get("mountPath"):
            errs.append(field.required(f"{p}.mountPath"))
    errs += resources(f"{path}.resources", c.get("resources"))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        errs += _probe(f"{path}.{probe}", c.get(probe))
    return errs


# upstream's allow-list (validateEphemeralContainers): what an ephemeral container may set;
# ports, probes, lifecycle, resources and restartPolicy are forbidden ("should not be relied
# upon for fundamental pod services")
EPHEMERAL_ALLOWED = frozenset({
    "name", "image", "command", "args", "workingDir", "envFrom", "env", "volumeMounts", "volumeDevices",
    "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy", "securityContext",
    "stdin", "stdinOnce", "tty", "targetContainerName"})


def ephemeral_containers(path: str, value: Any, names: set, volumes: set) -> list[Cause]:
    """spec.ephemeralContainers: containers (names unique across the pod) limited to the
    allow-list, ``targetContainerName`` naming one of the pod's containers."""
    items, errs = v.list_of_dicts(path, value)
    targets = set(names)
    for i, c in enumerate(items):
        p = f"{path}[{i}]"
        errs += container(p, c, names, volumes)
        for key in sorted(k for k in c if k not in EPHEMERAL_ALLOWED and c[k] not in (None, [], {})):
            errs.append(field.forbidden(f"{p}.{key}", "cannot be set for an Ephemeral Container"))
        target = c.get("targetContainerName")
        if target and target not in targets:
            errs.append(field.not_found(f"{p}.targetContainerName", target))
    return errs


def ephemeral_update(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """``ValidatePodEphemeralContainersUpdate``: ephemeral containers are only ever added; an
    existing one may be neither removed nor changed."""
    olds = {c.get("name"): c for c in (old.get("spec") or {}).get("ephemeralContainers") or []
            if isinstance(c, dict)}
    news = {c.get("name"): c for c in (new.get("spec") or {}).get("ephemeralContainers") or []
            if isinstance(c, dict)}
    errs: list[Cause] = []
    for name, c in olds.items():
        if name not in news:
            errs.append(field.forbidden("spec.ephemeralContainers",
                                        f"existing ephemeral containers {field.go_repr(name)} may not be removed\n"))
        elif news[name] != c:
            errs.append(field.forbidden("spec.ephemeralContainers",
                                        f"existing ephemeral containers {field.go_repr(name)} may not be changed\n"))
    return errs


def container_ports(path: str, value: Any) -> list[Cause]:
    ports, errs = v.list_of_dicts(path, value)
    names = set()
    for i, port in enumerate(ports):
        p = f"{path}[{i}]"
        name = port.get("name")
        if name:
            errs += [field.invalid(f"{p}.name", name, m) for m in v.is_port_name(name)]
            if name in names:
                errs.append(field.duplicate(f"{p}.name", name))
            names.add(name)
        errs += v.port_number(f"{p}.containerPort", port.get("containerPort"))
        if port.get("hostPort"):
            errs += v.port_number(f"{p}.hostPort", port["hostPort"])
        errs += v.protocol(f"{p}.protocol", port.get("protocol"))
    return errs


def resources(path: str, value: Any) -> list[Cause]:
    if not isinstance(value, dict):
        return [] if value is None else [field.type_invalid(path, value, "must be an object")]
    errs: list[Cause] = []
    parsed: dict[str, dict[str, float]] = {}
    for kind in ("limits", "requests"):
        amounts = value.get(kind) or {}
        if not isinstance(amounts, dict):
            errs.append(field.type_invalid(f"{path}.{kind}", amounts, "must be an object"))
            continue
        for res, qty in amounts.items():
            try:
                parsed.setdefault(kind, {})[res] = quantity.parse(qty)
            except ValueError as e:
                errs.append(field.invalid(f"{path}.{kind}[{res}]", qty, str(e)))
                continue
            if parsed[kind][res] < 0:
                errs.append(field.invalid(f"{path}.{kind}[{res}]", qty, "must be greater than or equal to 0"))
    limits, requests = parsed.get("limits", {}), parsed.get("requests", {})
    for res, req in requests.items():
        if res in limits and req > limits[res]:
            errs.append(field.invalid(f"{path}.requests", value["requests"][res],
                                      f"must be less than or equal to {res} limit of {value['limits'][res]}"))
    return errs


def _probe(path: str, probe: Any) -> list[Cause]:
    if not isinstance(probe, dict):
        return []
    handlers = [k for k in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(k) is not None]
    errs: list[Cause] = []
    if not handlers:
        errs.append(field.required(path, "must specify a handler type"))
    elif len(handlers) > 1:
        errs.append(field.forbidden(f"{path}.{handlers[1]}", "may not specify more than 1 handler type"))
    for key in ("httpGet", "tcpSocket"):
        if isinstance(probe.get(key), dict):
            errs += v.port_num_or_name(f"{path}.{key}.port", probe[key].get("port"))
    for key in ("timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        errs += v.non_negative(f"{path}.{key}", probe.get(key))
    return errs


def tolerations(path: str, value: Any) -> list[Cause]:
    items, errs = v.list_of_dicts(path, value)
    for i, t in enumerate(items):
        p = f"{path}[{i}]"
        op = t.get("operator") or "Equal"
        if t.get("key"):
            errs += [field.invalid(f"{p}.key", t["key"], m) for m in v.is_qualified_name(t["key"])]
        elif op != "Exists":
            errs.append(field.invalid(f"{p}.operator", op,
                                      "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
        errs += v.one_of(f"{p}.operator", op, TOLERATION_OPERATORS)
        if op == "Exists" and t.get("value"):
            errs.append(field.invalid(f"{p}.operator", t["value"],
                                      "value must be empty when `operator` is 'Exists'"))
        errs += v.one_of(f"{p}.effect", t.get("effect"), TAINT_EFFECTS, required=False)
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            errs.append(field.invalid(f"{p}.effect", t.get("effect"),
                                      "effect must be 'NoExecute' when `tolerationSeconds` is set"))
    return errs


_UPDATE_MSG = ("pod updates may not change fields other than `spec.containers[*].image`,"
               "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
               "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
               "(allow it to be set to 1 if it was previously negative)")


def validate_update(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """``ValidatePodUpdate``: the spec is immutable except images, deadline and new tolerations."""
    o, n = old.get("spec") or {}, new.get("spec") or {}
    errs: list[Cause] = []
    old_ads, new_ads = o.get("activeDeadlineSeconds"), n.get("activeDeadlineSeconds")
    if old_ads is not None and (new_ads is None or (v.is_int(new_ads) and new_ads > old_ads)):
        errs.append(field.invalid("spec.activeDeadlineSeconds", new_ads,
                                  "must be less than or equal to previous value"))
    old_tol = o.get("tolerations") or []
    new_tol = n.get("tolerations") or []
    if isinstance(new_tol, list) and any(t not in new_tol for t in old_tol):
        errs.append(field.forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds"))
    # mask what may change, then the rest must be equal
    mo, mn = meta.json_copy(o), meta.json_copy(n)
    for key in ("containers", "initContainers"):
        olds, news = mo.get(key) or [], mn.get(key) or []
        if isinstance(olds, list) and isinstance(news, list) and len(olds) == len(news):
            for oc, nc in zip(olds, news):
                if isinstance(oc, dict) and isinstance(nc, dict) and nc.get("image"):
                    oc["image"] = nc["image"]
    for key in ("activeDeadlineSeconds", "tolerations"):
        mo.pop(key, None)
        mn.pop(key, None)
    if mo != mn:
        errs.append(field.forbidden("spec", _UPDATE_MSG))
    return errs
