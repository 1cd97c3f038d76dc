"""OpenAPI schemas of the served kinds, built from the official python client's models.

The ``kubernetes`` package (already the source of fieldcheck's unknown-field check) carries
every built-in type's fields (``openapi_types``, ``attribute_map``), which are required, and
the descriptions of the types and fields (pydantic ``model_fields``). From them this builds
what upstream publishes: one schema per type named like upstream's
(``io.k8s.api.core.v1.PodSpec``, ``io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta``), each
kind's with ``x-kubernetes-group-version-kind``, references between them, and the patch
metadata of lists (``x-kubernetes-patch-merge-key`` / ``-strategy``, from the object model's
netemu/api/patch_schema.py) that kubectl's client-side apply computes strategic merge patches
with. ``ref`` renders a reference for v3 (``#/components/schemas/``) or v2 (``#/definitions/``).
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any, Callable

from netemu.api import kinds, patch_schema
from netemu.api.kinds import ResourceType
from netemu.api.managed.schema import client_models as _client

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
META_TYPES = {"ObjectMeta", "ListMeta", "LabelSelector", "LabelSelectorRequirement", "OwnerReference",
              "ManagedFieldsEntry", "Condition", "Status", "StatusDetails", "StatusCause", "DeleteOptions",
              "Preconditions", "APIResource", "APIResourceList"}
GROUP_PACKAGE = {"": "core", "apps": "apps", "discovery.k8s.io": "discovery", "coordination.k8s.io": "coordination",
                 "networking.k8s.io": "networking", "rbac.authorization.k8s.io": "rbac",
                 "authorization.k8s.io": "authorization", "authentication.k8s.io": "authentication"}
_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")
_SCALAR = {"str": {"type": "string"}, "int": {"type": "integer", "format": "int64"}, "bool": {"type": "boolean"},
           "float": {"type": "number", "format": "double"}, "datetime": {"type": "string", "format": "date-time"},
           "date": {"type": "string", "format": "date"}, "bytearray": {"type": "string", "format": "byte"},
           "object": {"type": "object"}}
INT_OR_STRING = {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
INT_OR_STRING_FIELDS = {"targetPort", "port", "maxSurge", "maxUnavailable", "minAvailable"}
Ref = Callable[[str], str]
METRICS_PKG = "io.k8s.metrics.pkg.apis.metrics.v1beta1."
METRICS_DOCS = {"NodeMetrics": "NodeMetrics sets resource usage metrics of a node.",
                "PodMetrics": "PodMetrics sets resource usage metrics of a pod."}


def model_of(rt: ResourceType) -> Any:
    client = _client()
    if client is None:
        return None
    return getattr(client, f"V1{rt.kind}", None) or getattr(client, f"CoreV1{rt.kind}", None)


def _short(model_name: str) -> str:
    return re.sub(r"^(CoreV1|RbacV1|DiscoveryV1|StorageV1|V1|V2)", "", model_name)


def _doc(text: str | None) -> str:
    """A class docstring's description (the generator appends an Attributes section)."""
    return (text or "").split("Attributes:")[0].strip()


def _patch_meta() -> dict[tuple[str, str], patch_schema.ListMeta]:
    """(type short name, field) -> list patch metadata, from the kinds' patch schemas."""
    out: dict[tuple[str, str], patch_schema.ListMeta] = {}
    holders = {"ObjectMeta": patch_schema.OBJECT_META, "Container": patch_schema.CONTAINER,
               "PodSpec": patch_schema.POD_SPEC, "PodStatus": patch_schema.POD_STATUS,
               "ServiceSpec": {"ports": patch_schema.merged("port")},
               "NodeSpec": {"podCIDRs": patch_schema.merged(None)},
               "NodeStatus": {"addresses": patch_schema.merged("type"), **patch_schema.CONDITIONS}}
    for status in ("DeploymentStatus", "ReplicaSetStatus", "StatefulSetStatus", "DaemonSetStatus", "JobStatus",
                   "NamespaceStatus", "ServiceStatus"):
        holders[status] = patch_schema.CONDITIONS
    for type_name, fields in holders.items():
        for name, meta in fields.items():
            if isinstance(meta, patch_schema.ListMeta):
                out[(type_name, name)] = meta
    return out


# core types that no served core kind reaches (so the first-reached rule would misplace them)
CORE_TYPES = {"PodTemplateSpec", "ObjectReference", "LocalObjectReference", "TypedLocalObjectReference"}


@functools.lru_cache(maxsize=1)
def home_groups() -> dict[str, str]:
    """model name -> the API group it belongs to: the group of the first served kind (core
    first) that reaches it, which is where upstream defines it in all but a few cases."""
    homes: dict[str, str] = {}

    def walk(type_name: str, group: str) -> None:
        m = _LIST.match(type_name) or _DICT.match(type_name)
        if m:
            return walk(m.group(1), group)
        model = getattr(_client(), type_name, None)
        if model is None or type_name in homes or not hasattr(model, "openapi_types"):
            return
        homes[type_name] = "" if _short(type_name) in CORE_TYPES else group
        for child in model.openapi_types.values():
            walk(child, group)
    for rt in kinds.RESOURCES:
        model = model_of(rt)
        if model is not None:
            walk(model.__name__, rt.group)
    return homes


class Builder:
    """Schemas reachable from some kinds, named as upstream names them."""

    def __init__(self, ref: Ref, v2: bool = False):
        self.ref, self.v2, self.schemas = ref, v2, {}
        self.patch = _patch_meta()

    def name(self, model_name: str, group: str) -> str:
        short = _short(model_name)
        if short in META_TYPES:
            return META + short
        group = home_groups().get(model_name, group)
        return f"io.k8s.api.{GROUP_PACKAGE.get(group, group.split('.')[0])}.v1.{short}"

    def add_kind(self, rt: ResourceType) -> str | None:
        model = model_of(rt)
        if model is None:
            return self.add_metrics_kind(rt) if rt.kind in METRICS_DOCS else None
        name = self.add_model(model.__name__, rt.group)
        self.schemas[name]["x-kubernetes-group-version-kind"] = [
            {"group": rt.group, "kind": rt.kind, "version": rt.version}]
        return name

    def add_metrics_kind(self, rt: ResourceType) -> str:
        """NodeMetrics / PodMetrics as metrics-server publishes them (no python model)."""
        def ref(name: str) -> dict[str, Any]:
            return {"$ref": self.ref(name)} if self.v2 else {"allOf": [{"$ref": self.ref(name)}]}
        quantities = {"type": "object", "additionalProperties": {"type": "string"},
                      "description": "The memory and CPU usage (Quantity strings, e.g. 12345n, 1024Ki)."}
        common = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                  "metadata": ref(self.add_model("V1ObjectMeta", "")),
                  "timestamp": {"type": "string", "format": "date-time",
                                "description": "The end of the window the usage was measured over."},
                  "window": {"type": "string", "description": "The length of that window."}}
        container = METRICS_PKG + "ContainerMetrics"
        self.schemas[container] = {"type": "object", "description": "ContainerMetrics sets resource usage "
                                   "metrics of a container.", "required": ["name", "usage"],
                                   "properties": {"name": {"type": "string"}, "usage": quantities}}
        extra = ({"usage": quantities} if rt.kind == "NodeMetrics" else
                 {"containers": {"type": "array", "items": ref(container)}})
        name = METRICS_PKG + rt.kind
        self.schemas[name] = {"type": "object", "description": METRICS_DOCS[rt.kind],
                              "properties": {**common, **extra},
                              "x-kubernetes-group-version-kind": [
                                  {"group": rt.group, "kind": rt.kind, "version": rt.version}]}
        return name

    def add_model(self, model_name: str, group: str) -> str:
        name = self.name(model_name, group)
        if name in self.schemas:
            return name
        model = getattr(_client(), model_name)
        schema: dict[str, Any] = {"type": "object", "description": _doc(model.__doc__), "properties": {}}
        self.schemas[name] = schema
        fields = getattr(model, "model_fields", {})
        required = []
        for attr, type_name in model.openapi_types.items():
            json_name = model.attribute_map[attr]
            info = fields.get(attr)
            prop = self.prop(type_name, group, json_name)
            if info is not None and info.description:
                prop = {**prop, "description": info.description}
                if info.is_required():
                    required.append(json_name)
            meta = self.patch.get((_short(model_name), json_name))
            if meta is not None:
                prop["x-kubernetes-patch-strategy"] = "merge,retainKeys" if meta.retain_keys else "merge"
                if meta.merge_key:
                    prop["x-kubernetes-patch-merge-key"] = meta.merge_key
            schema["properties"][json_name] = prop
        if required:
            schema["required"] = sorted(required)
        return name

    def prop(self, type_name: str, group: str, json_name: str = "") -> dict[str, Any]:
        m = _LIST.match(type_name)
        if m:
            return {"type": "array", "items": self.prop(m.group(1), group)}
        m = _DICT.match(type_name)
        if m:
            return {"type": "object", "additionalProperties": self.prop(m.group(1), group)}
        if type_name == "object" and json_name in INT_OR_STRING_FIELDS:
            return {"type": "string", "format": "int-or-string"} if self.v2 else dict(INT_OR_STRING)
        if type_name in _SCALAR:
            return dict(_SCALAR[type_name])
        if getattr(_client(), type_name, None) is None:
            return {}
        target = self.ref(self.add_model(type_name, group))
        return {"$ref": target} if self.v2 else {"allOf": [{"$ref": target}]}


@functools.lru_cache(maxsize=None)
def schemas_for(group: str, version: str, v2: bool = False) -> dict[str, Any]:
    """Every schema of one group-version's kinds (all served kinds when ``group`` is None)."""
    ref = (lambda n: "#/definitions/" + n) if v2 else (lambda n: "#/components/schemas/" + n)
    builder = Builder(ref, v2)
    for rt in kinds.RESOURCES if group is None else kinds.resources_in(group, version):
        builder.add_kind(rt)
    return builder.schemas


def custom_name(rt: ResourceType) -> str:
    """upstream's definition name of a custom kind: the reversed group, version, kind."""
    return ".".join([*reversed(rt.group.split(".")), rt.version, rt.kind])


def custom_schemas(rts: list[ResourceType], v2: bool = False) -> dict[str, Any]:
    """The schemas of custom kinds, from their CRDs (never cached: CRDs change), with
    ObjectMeta for their metadata, as upstream's builder publishes them."""
    ref = (lambda n: "#/definitions/" + n) if v2 else (lambda n: "#/components/schemas/" + n)
    builder = Builder(ref, v2)
    meta_ref = ref(builder.add_model("V1ObjectMeta", "")) if _client() is not None else None
    for rt in rts:
        schema = copy.deepcopy(rt.custom.schema) or {"type": "object"}
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "description": API_VERSION_DOC}
        props["kind"] = {"type": "string", "description": KIND_DOC}
        if meta_ref is not None:
            props["metadata"] = {"$ref": meta_ref} if v2 else {"allOf": [{"$ref": meta_ref}]}
        schema["x-kubernetes-group-version-kind"] = [{"group": rt.group, "kind": rt.kind, "version": rt.version}]
        builder.schemas[custom_name(rt)] = schema
    return builder.schemas


API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object. Servers should "
                   "convert recognized schemas to the latest internal value, and may reject unrecognized values.")
KIND_DOC = ("Kind is a string value representing the REST resource this object represents. Servers may infer "
            "this from the endpoint the client submits requests to. In CamelCase.")
