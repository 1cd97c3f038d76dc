"""The registry strategy per kind (upstream pkg/registry/*/strategy.go plus rest.BeforeCreate/Update).

The API server calls exactly these, in this order, and writes what they return:

- ``prepare_create(rt, obj, now=...)``: defaults, system metadata (uid, creationTimestamp,
  generation), the status upstream resets on create, then validation (``errors.Invalid``).
- ``prepare_update(rt, old, new, subresource=None|"status")``: a main update keeps the stored
  status, a status update keeps the stored spec; system metadata cannot change; generation bumps
  when the spec does; immutable fields are enforced; then validation.
- ``prepare_binding(pod, binding)``: the ``pods/binding`` subresource (the scheduler's write).

Everything is pure (no I/O, no clock: the server passes ``now``), so the rules are unit-tested.
Allocation of cluster IPs and node ports is the separate ``allocators`` step, as upstream.
"""

from __future__ import annotations

import base64
from typing import Any, Callable

from netemu.api import custom, defaults, errors, field, meta, service_update, types, validation as v
from netemu.api import template_generation, validate_crd, validate_job
from netemu.api import validate_ingress, validate_misc as misc, validate_pod, validate_service
from netemu.api import validate_statefulset as sts, validate_workloads as wl
from netemu.api.field import Cause
from netemu.api.kinds import ResourceType
from netemu.api.meta import Obj


VALIDATORS: dict[str, Callable[[Obj], list[Cause]]] = {
    "Namespace": misc.namespace, "Node": misc.node, "Pod": validate_pod.validate,
    "Service": validate_service.validate, "Endpoints": misc.endpoints, "ConfigMap": misc.config_map,
    "Secret": misc.secret, "ServiceAccount": misc.service_account, "Event": misc.event,
    "EndpointSlice": misc.endpoint_slice, "Deployment": wl.validate_deployment,
    "ReplicaSet": wl.validate_replica_set, "DaemonSet": wl.validate_daemon_set,
    "Job": validate_job.validate, "Lease": misc.lease, "Ingress": validate_ingress.ingress,
    "IngressClass": validate_ingress.ingress_class, "Role": misc.role, "RoleBinding": misc.role_binding,
    "ClusterRole": misc.cluster_role, "ClusterRoleBinding": misc.cluster_role_binding,
    "CustomResourceDefinition": validate_crd.validate, "StatefulSet": sts.validate_stateful_set,
    "ControllerRevision": sts.validate_controller_revision,
}

# kinds whose strategy sets metadata.generation (1 on create, +1 per spec change), as upstream
# 1.32 does: the ones with an observedGeneration or a generation-driven consumer. Services,
# Pods (until 1.33), Nodes and Namespaces have no generation on a real cluster either.
GENERATION_KINDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "Ingress",
                              "IngressClass", "EndpointSlice", "CustomResourceDefinition"})
# the part of the object that counts as "spec" for generation (EndpointSlice has no spec)
_SPEC_KEYS = {"EndpointSlice": ("addressType", "endpoints", "ports")}


def validate(rt: ResourceType, obj: Obj) -> list[Cause]:
    """All field causes for ``obj`` as a ``rt`` object (empty list = valid)."""
    if not isinstance(obj, dict):
        return [field.type_invalid("", obj, "must be a JSON object")]
    validator = VALIDATORS.get(rt.kind)
    if validator is None:
        return v.object_meta(obj.get("metadata"), namespaced=rt.namespaced)
    return validator(obj)


def _raise_if(rt: ResourceType, obj: Obj, causes: list[Cause]) -> None:
    if causes:
        raise errors.invalid(rt.kind, meta.name_of(obj) if isinstance(obj, dict) else "", causes, rt.group)


def _checked_copy(rt: ResourceType, obj: Any) -> Obj:
    meta.check_body(rt.kind, obj)
    types.check(rt.kind, rt.api_version, obj)
    rest = {k: val for k, val in obj.items() if k not in ("apiVersion", "kind")}
    out = {"apiVersion": rt.api_version, "kind": rt.kind, **_copy_without_nulls(rest)}
    if rt.kind == "ControllerRevision" and "data" in obj:   # a RawExtension: stored as sent, nulls too
        out["data"] = meta.json_copy(obj["data"])
    return out


def _copy_without_nulls(value: Any) -> Any:
    """A copy with ``"field": null`` entries dropped: Go decodes them to zero values, which
    the JSON encoder then omits, so a stored object never holds a null field."""
    if isinstance(value, dict):
        return {k: _copy_without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_copy_without_nulls(v) for v in value]
    return value


# -- create -------------------------------------------------------------------------------------

def prepare_create(rt: ResourceType, obj: Obj, *, now: str) -> Obj:
    """The object to store for a create; raises ``errors.Invalid`` (422) or ``BadRequest`` (400)."""
    if rt.custom is not None:
        return custom.prepare_create(rt, obj, now=now)
    out = _checked_copy(rt, obj)
    md = meta.begin_create(out, rt.namespaced)
    defaults.apply_defaults(rt.kind, out)
    _CREATE_HOOKS.get(rt.kind, _nothing)(out)
    md["uid"] = meta.new_uid()
    md["creationTimestamp"] = now
    if rt.kind == "Job":                # its selector is generated from the uid
        validate_job.generate_selector(out)
    if rt.kind in GENERATION_KINDS:
        md["generation"] = 1
    else:
        md.pop("generation", None)
    _raise_if(rt, out, validate(rt, out))
    if rt.kind == "Ingress":            # upstream's ValidateIngressCreate adds one rule
        _raise_if(rt, out, validate_ingress.ingress_create(out))
    if rt.kind == "CustomResourceDefinition":
        validate_crd.initial_status(out, now)
    return out


def _nothing(obj: Obj, old: Obj | None = None) -> None:
    """Kinds with no create/update hook."""


def _reset_status(status: Obj) -> Callable[[Obj], None]:
    def hook(obj: Obj) -> None:
        obj["status"] = meta.json_copy(status)
    return hook


def _pod_create(pod: Obj) -> None:
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod.get("spec"))}


def _namespace_create(ns: Obj) -> None:
    ns["status"] = {"phase": "Active"}
    spec = ns.get("spec") if isinstance(ns.get("spec"), dict) else {}
    finalizers = list(spec.get("finalizers") or [])
    if "kubernetes" not in finalizers:
        finalizers.append("kubernetes")
    spec["finalizers"] = finalizers
    ns["spec"] = spec


def _secret_string_data(secret: Obj, old: Obj | None = None) -> None:
    """``stringData`` is write-only: merged into ``data`` (base64) as upstream's conversion does."""
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict):
        data = secret.get("data") if isinstance(secret.get("data"), dict) else {}
        for k, val in string_data.items():
            if isinstance(val, str):
                data[k] = base64.b64encode(val.encode()).decode()
        secret["data"] = data
    elif string_data is not None:
        secret["stringData"] = string_data  # let validation name the bad field


_CREATE_HOOKS: dict[str, Callable[[Obj], None]] = {
    "Pod": _pod_create,
    "Service": _reset_status({"loadBalancer": {}}),
    "Deployment": _reset_status({}),
    "ReplicaSet": _reset_status({"replicas": 0}),
    "StatefulSet": _reset_status({"replicas": 0, "availableReplicas": 0}),
    "Job": _reset_status({}),
    "DaemonSet": lambda ds: (_reset_status({"currentNumberScheduled": 0, "numberMisscheduled": 0,
                                            "desiredNumberScheduled": 0, "numberReady": 0})(ds),
                             template_generation.on_create(ds)),
    "Ingress": _reset_status({"loadBalancer": {}}),
    "Namespace": _namespace_create,
    "Secret": _secret_string_data,
}


def qos_class(spec: Any) -> str:
    """``GetPodQOS``: Guaranteed (limits = requests for cpu and memory everywhere), BestEffort
    (no requests or limits at all), else Burstable."""
    containers = [c for c in (spec or {}).get("containers") or [] if isinstance(c, dict)] \
        if isinstance(spec, dict) else []
    any_set, guaranteed = False, bool(containers)
    for c in containers:
        res = c.get("resources") if isinstance(c.get("resources"), dict) else {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits or requests:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in limits or requests.get(r, limits[r]) != limits[r]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# -- update -------------------------------------------------------------------------------------

def prepare_update(rt: ResourceType, old: Obj, new: Obj, *, subresource: str | None = None) -> Obj:
    """The object to store for an update of ``old`` by ``new`` (main resource, ``status``, or a
    namespace's ``finalize``)."""
    if rt.custom is not None:
        return custom.prepare_update(rt, old, new, subresource=subresource)
    if subresource not in (None, "status") and (subresource, rt.kind) not in _OWN_SUBRESOURCES:
        raise errors.NotFound(f"the server could not find the requested resource ({subresource})")
    out = _checked_copy(rt, new)
    defaults.apply_defaults(rt.kind, out)
    if subresource == "finalize":
        out = _finalize_update(old, out)
    elif subresource == "ephemeralcontainers":
        out = _ephemeral_update(old, out)
    elif subresource == "status":
        out = _status_update(rt, old, out)
    else:
        if "status" in rt.subresources:
            if "status" in old:
                out["status"] = meta.json_copy(old["status"])
            else:
                out.pop("status", None)
        _UPDATE_HOOKS.get(rt.kind, _nothing)(out, old)
    if rt.kind == "DaemonSet" and subresource in (None, "status"):
        template_generation.on_update(out, old)
    _system_metadata(rt, old, out)
    # the update rules compare shapes, so they run only on an object that is itself valid
    _raise_if(rt, out, validate(rt, out))
    _raise_if(rt, out, validate_update(rt, old, out, subresource=subresource))
    return out


def _with_request_version(out: Obj, new: Obj) -> Obj:
    """A one-field subresource write keeps the stored object; the request's resourceVersion, if
    any, is still its precondition."""
    if "resourceVersion" in meta.metadata(new):
        meta.metadata(out)["resourceVersion"] = meta.metadata(new)["resourceVersion"]
    return out


_OWN_SUBRESOURCES = {("finalize", "Namespace"), ("ephemeralcontainers", "Pod")}


def _ephemeral_update(old: Obj, new: Obj) -> Obj:
    """pods/NAME/ephemeralcontainers (``kubectl debug``): everything stored stays but
    ``spec.ephemeralContainers``, taken from the request (upstream's podEphemeralContainersStrategy)."""
    out = meta.json_copy(old)
    wanted = (new.get("spec") or {}).get("ephemeralContainers") if isinstance(new.get("spec"), dict) else None
    spec = out.setdefault("spec", {})
    if wanted:
        spec["ephemeralContainers"] = meta.json_copy(wanted)
    else:
        spec.pop("ephemeralContainers", None)
    return _with_request_version(out, new)


def _status_update(rt: ResourceType, old: Obj, new: Obj) -> Obj:
    """Keep everything stored except ``status`` (and labels/annotations where upstream allows)."""
    out = meta.json_copy(old)
    if "status" in new:
        out["status"] = new["status"]
    else:
        out.pop("status", None)
    nmd, omd = meta.metadata(new), meta.metadata(out)
    keys = ("annotations",) if rt.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet") \
        else ("labels", "annotations")
    for key in keys:
        if nmd.get(key) is not None:
            omd[key] = nmd[key]
        else:
            omd.pop(key, None)
    if "resourceVersion" in nmd:
        omd["resourceVersion"] = nmd["resourceVersion"]
    else:
        omd.pop("resourceVersion", None)
    return out


def _system_metadata(rt: ResourceType, old: Obj, out: Obj) -> None:
    """``rest.BeforeUpdate``: uid defaults to the stored one, timestamps and generation are the
    server's; generation bumps when the spec changes."""
    md, omd = meta.keep_system_fields(old, out), old.get("metadata") or {}
    if rt.kind not in GENERATION_KINDS:
        md.pop("generation", None)
        return
    generation = omd.get("generation") or 1
    if _spec_changed(rt.kind, old, out):
        generation += 1
    md["generation"] = generation


def _spec_changed(kind: str, old: Obj, new: Obj) -> bool:
    keys = _SPEC_KEYS.get(kind, ("spec",))
    if any(old.get(k) != new.get(k) for k in keys):
        return True
    if kind == "Deployment":  # annotations too: rollback and change-cause live there
        return meta.annotations_of(old) != meta.annotations_of(new)
    return False


def _service_update(svc: Obj, old: Obj) -> None:
    service_update.patch_allocated_values(svc, old)
    service_update.normalize_cluster_ips(svc, old)
    service_update.drop_type_dependent_fields(svc, old)


def _namespace_update(ns: Obj, old: Obj) -> None:
    """Only the ``finalize`` subresource changes ``spec.finalizers``."""
    spec = ns.get("spec") if isinstance(ns.get("spec"), dict) else {}
    spec["finalizers"] = meta.json_copy((old.get("spec") or {}).get("finalizers") or [])
    ns["spec"] = spec


def _finalize_update(old: Obj, new: Obj) -> Obj:
    """namespaces/NAME/finalize: everything stored stays but ``spec.finalizers``, taken from the
    request (upstream's namespaceFinalizeStrategy); the names must be qualified names."""
    out = meta.json_copy(old)
    spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    wanted = spec.get("finalizers") or []
    causes = v.finalizers("spec.finalizers", wanted)
    if causes:
        raise errors.invalid("Namespace", meta.metadata(old).get("name", ""), causes)
    out.setdefault("spec", {})["finalizers"] = meta.json_copy(wanted)
    return _with_request_version(out, new)


_UPDATE_HOOKS: dict[str, Callable[[Obj, Obj], None]] = {
    "CustomResourceDefinition": validate_crd.update_status,
    "Service": _service_update,
    "Namespace": _namespace_update,
    "Secret": _secret_string_data,
}


# -- update validation ----------------------------------------------------------------------------

def validate_update(rt: ResourceType, old: Obj, new: Obj, *, subresource: str | None = None) -> list[Cause]:
    """Causes an update may add: metadata that cannot change, and each kind's immutable fields."""
    errs = _meta_update(old.get("metadata") or {}, new.get("metadata") or {})
    if subresource == "status":
        return errs
    kind = rt.kind
    if kind == "Service":
        errs += validate_service.validate_update(old, new)
    elif kind in ("Deployment", "ReplicaSet", "DaemonSet"):
        errs += wl.validate_update(old, new)
    elif kind == "StatefulSet":
        errs += sts.validate_update(old, new)
    elif kind == "Job":
        errs += validate_job.validate_update(old, new)
    elif kind == "ControllerRevision":
        errs += sts.validate_revision_update(old, new)
    elif kind == "Pod" and subresource == "ephemeralcontainers":
        errs += validate_pod.ephemeral_update(old, new)
    elif kind == "Pod":
        errs += validate_pod.validate_update(old, new)
    elif kind in ("ConfigMap", "Secret"):
        errs += _immutable_data(kind, old, new)
    elif kind == "IngressClass":
        errs += validate_ingress.ingress_class_update(old, new)
    elif kind == "EndpointSlice" and old.get("addressType") != new.get("addressType"):
        errs.append(field.immutable("addressType", new.get("addressType")))
    elif kind in ("RoleBinding", "ClusterRoleBinding") and old.get("roleRef") != new.get("roleRef"):
        errs.append(field.invalid("roleRef", new.get("roleRef"), "cannot change roleRef"))
    elif kind == "Node":
        errs += _node_update(old, new)
    elif kind == "CustomResourceDefinition":
        errs += validate_crd.validate_update(old, new)
    return errs


def validate_update_meta(omd: Obj, nmd: Obj) -> list[Cause]:
    """Metadata an update may not change (also the custom resources' rule)."""
    return _meta_update(omd, nmd)


def _meta_update(omd: Obj, nmd: Obj) -> list[Cause]:
    errs = []
    for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                "deletionGracePeriodSeconds"):
        if omd.get(key) != nmd.get(key):
            errs.append(field.immutable(f"metadata.{key}", nmd.get(key)))
    if omd.get("deletionTimestamp"):
        added = [f for f in nmd.get("finalizers") or [] if f not in (omd.get("finalizers") or [])]
        if added:
            errs.append(field.forbidden("metadata.finalizers",
                                        f"no new finalizers can be added if the object is being deleted, "
                                        f"found new finalizers {field.go_repr(added)}"))
    return errs


def _immutable_data(kind: str, old: Obj, new: Obj) -> list[Cause]:
    errs = []
    if kind == "Secret" and old.get("type") != new.get("type"):
        errs.append(field.immutable("type", new.get("type")))
    if not old.get("immutable"):
        return errs
    msg = "field is immutable when `immutable` is set"
    if not new.get("immutable"):
        errs.append(field.forbidden("immutable", msg))
    for key in ("data", "binaryData") if kind == "ConfigMap" else ("data",):
        if (old.get(key) or {}) != (new.get(key) or {}):
            errs.append(field.forbidden(key, msg))
    return errs


def _node_update(old: Obj, new: Obj) -> list[Cause]:
    o, n = old.get("spec") or {}, new.get("spec") or {}
    if o.get("podCIDRs") and o.get("podCIDRs") != n.get("podCIDRs"):
        return [field.forbidden("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to valid")]
    return []


# -- pods/binding ---------------------------------------------------------------------------------

def prepare_binding(pod: Obj, binding: Obj) -> Obj:
    """The pod after a ``Binding`` (the scheduler's ``pods/<name>/binding`` create).

    Like upstream's ``BindingREST.setPodHostAndAnnotations``: 409 Conflict if the pod is already
    bound or being deleted; the binding's annotations are copied onto the pod.
    """
    if not isinstance(binding, dict):
        raise errors.BadRequest("the body of a Binding must be a JSON object")
    target = binding.get("target") if isinstance(binding.get("target"), dict) else {}
    node = target.get("name")
    if not node:
        raise errors.invalid("Binding", meta.name_of(binding), [field.required("target.name")])
    name = meta.name_of(pod)
    if meta.is_being_deleted(pod):
        raise errors.Conflict(f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is being deleted, cannot be assigned to a host')
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise errors.Conflict(f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is already assigned to node "{current}"')
    out = meta.json_copy(pod)
    out.setdefault("spec", {})["nodeName"] = node
    annotations = (binding.get("metadata") or {}).get("annotations") or {}
    if annotations:
        md = meta.metadata(out)
        md["annotations"] = {**(md.get("annotations") or {}), **annotations}
    return out
