"""The shape of each kind as structured-merge-diff sees it: which maps are structs, which
lists are associative (and by which keys), which are sets, which are atomic.

Fields and their types come from the official python client's models (``openapi_types`` and
``attribute_map``: the same source as the unknown-field check and the OpenAPI documents). The
list semantics come from upstream's type tags (``+listType=map`` / ``+listMapKey``,
``+listType=set``, ``+structType=atomic``, ``+mapType=atomic`` of k8s.io/api v1.32, and for
lists with only ``+patchMergeKey`` kube-openapi's rule: a merge key makes an associative list
with that one key), which the models do not carry, so they are listed here. A list not named
here is atomic, as upstream's default is. A kind with no model (a custom resource) is
"deduced": maps are granular, lists atomic, like upstream's untyped schema.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")
_MODEL_PREFIX = re.compile(r"^(CoreV1|RbacV1|DiscoveryV1|StorageV1|EventsV1|V1|V2)")

# (model short name, JSON field) -> the list-map keys (an associative list)
LIST_MAPS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ObjectMeta", "ownerReferences"): ("uid",),
    ("PodSpec", "containers"): ("name",),
    ("PodSpec", "initContainers"): ("name",),
    ("PodSpec", "ephemeralContainers"): ("name",),
    ("PodSpec", "volumes"): ("name",),
    ("PodSpec", "imagePullSecrets"): ("name",),
    ("PodSpec", "hostAliases"): ("ip",),
    ("PodSpec", "topologySpreadConstraints"): ("topologyKey", "whenUnsatisfiable"),
    ("PodSpec", "schedulingGates"): ("name",),
    ("PodSpec", "resourceClaims"): ("name",),
    ("Container", "ports"): ("containerPort", "protocol"),
    ("Container", "env"): ("name",),
    ("Container", "volumeMounts"): ("mountPath",),
    ("Container", "volumeDevices"): ("devicePath",),
    ("EphemeralContainer", "ports"): ("containerPort", "protocol"),
    ("EphemeralContainer", "env"): ("name",),
    ("EphemeralContainer", "volumeMounts"): ("mountPath",),
    ("EphemeralContainer", "volumeDevices"): ("devicePath",),
    ("ResourceRequirements", "claims"): ("name",),
    ("ServiceSpec", "ports"): ("port", "protocol"),
    ("ServiceAccount", "secrets"): ("name",),
    ("PodStatus", "conditions"): ("type",),
    ("PodStatus", "podIPs"): ("ip",),
    ("PodStatus", "hostIPs"): ("ip",),
    ("NodeStatus", "conditions"): ("type",),
    ("NodeStatus", "addresses"): ("type",),
    ("NamespaceStatus", "conditions"): ("type",),
    ("ServiceStatus", "conditions"): ("type",),
    ("DeploymentStatus", "conditions"): ("type",),
    ("ReplicaSetStatus", "conditions"): ("type",),
    ("StatefulSetStatus", "conditions"): ("type",),
    ("StatefulSetStatus", "conditions"): ("type",),
    ("DaemonSetStatus", "conditions"): ("type",),
    ("PersistentVolumeClaimStatus", "conditions"): ("type",),
}
# (model short name, JSON field) lists that are sets of scalars
LIST_SETS = {("ObjectMeta", "finalizers"), ("NodeSpec", "podCIDRs")}
ATOMIC_STRUCTS = {"LabelSelector", "LocalObjectReference", "ObjectReference", "NodeSelector",
                  "NodeSelectorTerm", "TypedLocalObjectReference", "TopologySelectorTerm"}
ATOMIC_MAPS = {("ServiceSpec", "selector"), ("PodSpec", "nodeSelector"),
               ("ReplicationControllerSpec", "selector")}
# key fields with a default (``+default=``): an item that omits one is keyed by the default
KEY_DEFAULTS = {"protocol": "TCP"}


class Atom:
    """One node of a schema: ``scalar``, ``struct`` (named fields), ``map`` (string keys, one
    element type), ``list`` (``atomic``, ``set`` or ``map`` with ``keys``) or ``untyped``."""

    __slots__ = ("kind", "atomic", "model", "elem", "list_type", "keys", "_fields")

    def __init__(self, kind: str, *, atomic: bool = False, model: Any = None, elem: "Atom | None" = None,
                 list_type: str = "atomic", keys: tuple[str, ...] = (), fields: "dict[str, Atom] | None" = None):
        self.kind, self.atomic, self.model, self.elem = kind, atomic, model, elem
        self.list_type, self.keys = list_type, keys
        self._fields = fields          # a struct's fields, by JSON name (from ``model`` when None)

    def field(self, name: str) -> "Atom | None":
        """A struct's declared field (None when undeclared)."""
        if self.kind != "struct":
            return None
        if self._fields is None:
            self._fields = _struct_fields(self.model)
        return self._fields.get(name)

    def child(self, name: str) -> tuple["Atom", bool]:
        """(type of the entry ``name`` of this map or struct, whether it is a declared field)."""
        declared = self.field(name)
        if declared is not None:
            return declared, True
        if self.kind == "map" and self.elem is not None:
            return self.elem, False
        return UNTYPED, False

    def __repr__(self) -> str:
        return f"Atom({self.kind}, {self.model.__name__ if self.model else self.list_type})"


SCALAR = Atom("scalar")
UNTYPED = Atom("untyped")


def struct(**fields: Atom) -> Atom:
    """A struct of the given fields (schemas written by hand, as upstream's tests do)."""
    return Atom("struct", fields=fields)


def list_of(elem: Atom, list_type: str = "atomic", keys: tuple[str, ...] = ()) -> Atom:
    return Atom("list", elem=elem, list_type=list_type, keys=keys, atomic=list_type == "atomic")


def short_name(model: Any) -> str:
    return _MODEL_PREFIX.sub("", model.__name__)


@functools.lru_cache(maxsize=1)
def client_models() -> Any:
    """The official python client's ``client`` module (its models), or None without it."""
    try:
        from kubernetes import client
    except ImportError:
        return None
    return client


def _type_of(type_str: str, owner: str, json_name: str) -> Atom:
    m = _LIST.match(type_str)
    if m:
        elem = _type_of(m.group(1), owner, json_name)
        keys = LIST_MAPS.get((owner, json_name))
        if keys:
            return Atom("list", elem=elem, list_type="map", keys=keys)
        if (owner, json_name) in LIST_SETS:
            return Atom("list", elem=elem, list_type="set")
        return Atom("list", elem=elem, atomic=True)
    m = _DICT.match(type_str)
    if m:
        return Atom("map", elem=_type_of(m.group(1), owner, json_name),
                    atomic=(owner, json_name) in ATOMIC_MAPS)
    if type_str == "object":
        return UNTYPED                       # IntOrString, RawExtension: whatever the value is
    model = getattr(client_models(), type_str, None)
    if model is not None and hasattr(model, "openapi_types"):
        return _struct(model)
    return SCALAR


@functools.lru_cache(maxsize=None)
def _struct(model: Any) -> Atom:
    return Atom("struct", model=model, atomic=short_name(model) in ATOMIC_STRUCTS)


def _struct_fields(model: Any) -> dict[str, Atom]:
    owner = short_name(model)
    return {model.attribute_map[attr]: _type_of(type_str, owner, model.attribute_map[attr])
            for attr, type_str in model.openapi_types.items()}


@functools.lru_cache(maxsize=None)
def for_kind(kind: str) -> Atom:
    """The root type of ``kind``: its model's struct, or ``UNTYPED`` for kinds without one."""
    client = client_models()
    if client is None:
        return UNTYPED
    for prefix in ("V1", "CoreV1", "RbacV1", "DiscoveryV1", "EventsV1", "V2"):
        model = getattr(client, f"{prefix}{kind}", None)
        if model is not None and hasattr(model, "openapi_types"):
            return _struct(model)
    return UNTYPED
