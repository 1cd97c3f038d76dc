"""The DefaultIngressClass admission plugin, as the Ingress kind's registry hooks.

Upstream (plugin/pkg/admission/network/defaultingressclass, v1.32): an Ingress created with
neither ``spec.ingressClassName`` nor the legacy ``kubernetes.io/ingress.class`` annotation gets
the IngressClass annotated ``ingressclass.kubernetes.io/is-default-class: "true"``; with several
default classes, the newest one. No default class: the Ingress stays without one. Updates are
left alone, as upstream's plugin acts on create only.
"""

from __future__ import annotations

from typing import Callable

from netemu.api import kinds
from netemu.api.kinds import ResourceType
from netemu.api.meta import Obj
from netemu.apiserver.hooks import KindHooks
from netemu.store.base import Store

INGRESS_CLASSES = kinds.by_resource("networking.k8s.io", "v1", "ingressclasses")
DEFAULT_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def default_class(classes: list[Obj]) -> str | None:
    """The newest IngressClass marked default (creationTimestamp, then name), or None."""
    marked = [c for c in classes
              if ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_ANNOTATION) == "true"]
    if not marked:
        return None
    newest = max(marked, key=lambda c: ((c["metadata"].get("creationTimestamp") or ""), c["metadata"].get("name", "")))
    return newest["metadata"]["name"]


class DefaultIngressClass(KindHooks):
    def __init__(self, store: Store):
        self.store = store

    async def on_create(self, rt: ResourceType, obj: Obj) -> Callable[[], None] | None:
        spec = obj.setdefault("spec", {})
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if spec.get("ingressClassName") or CLASS_ANNOTATION in annotations:
            return None
        listed = await self.store.list(INGRESS_CLASSES.list_prefix())
        name = default_class(listed.items)
        if name is not None:
            spec["ingressClassName"] = name
        return None
