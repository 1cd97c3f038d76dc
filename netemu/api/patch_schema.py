"""Patch metadata of our kinds' fields: the ``patchStrategy`` / ``patchMergeKey`` struct tags of
k8s.io/api that strategic merge patch reads.

Only lists need entries: a list with a merge key is merged element by element, a list marked
``merge`` without a key (finalizers, podCIDRs) is a set union, every other list is replaced
whole (tolerations, externalIPs, EndpointSlice endpoints: upstream has no tags there either).
Maps are always merged, so a map node lists only the children that lead to tagged lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ListMeta:
    merge_key: str | None          # None with merge=True: a set of primitives
    item: dict[str, Any] = field(default_factory=dict)   # schema of each element (a map node)
    retain_keys: bool = False


def merged(key: str | None, item: dict[str, Any] | None = None, *, retain_keys: bool = False) -> ListMeta:
    return ListMeta(key, item or {}, retain_keys)


OBJECT_META = {"finalizers": merged(None), "ownerReferences": merged("uid")}

CONTAINER = {
    "ports": merged("containerPort"),
    "env": merged("name"),
    "volumeMounts": merged("mountPath"),
    "volumeDevices": merged("devicePath"),
}

POD_SPEC = {
    "containers": merged("name", CONTAINER),
    "initContainers": merged("name", CONTAINER),
    "ephemeralContainers": merged("name", CONTAINER),
    "volumes": merged("name", retain_keys=True),
    "imagePullSecrets": merged("name"),
    "hostAliases": merged("ip"),
    "topologySpreadConstraints": merged("topologyKey"),
    "schedulingGates": merged("name"),
    "resourceClaims": merged("name", retain_keys=True),
}

CONDITIONS = {"conditions": merged("type")}

POD_STATUS = {**CONDITIONS, "podIPs": merged("ip"), "hostIPs": merged("ip")}

POD_TEMPLATE = {"metadata": OBJECT_META, "spec": POD_SPEC}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Pod": {"metadata": OBJECT_META, "spec": POD_SPEC, "status": POD_STATUS},
    "Service": {"metadata": OBJECT_META, "spec": {"ports": merged("port")}, "status": CONDITIONS},
    "Deployment": {"metadata": OBJECT_META, "spec": {"template": POD_TEMPLATE}, "status": CONDITIONS},
    "ReplicaSet": {"metadata": OBJECT_META, "spec": {"template": POD_TEMPLATE}, "status": CONDITIONS},
    "StatefulSet": {"metadata": OBJECT_META, "spec": {"template": POD_TEMPLATE}, "status": CONDITIONS},
    "Job": {"metadata": OBJECT_META, "spec": {"template": POD_TEMPLATE}, "status": CONDITIONS},
    "DaemonSet": {"metadata": OBJECT_META, "spec": {"template": POD_TEMPLATE}, "status": CONDITIONS},
    "Node": {"metadata": OBJECT_META, "spec": {"podCIDRs": merged(None)},
             "status": {**CONDITIONS, "addresses": merged("type")}},
    "Namespace": {"metadata": OBJECT_META, "status": CONDITIONS},
}


def schema_for(kind: str) -> dict[str, Any]:
    """The root map node of ``kind`` (just ObjectMeta for kinds with no tagged lists)."""
    return SCHEMAS.get(kind, {"metadata": OBJECT_META})
