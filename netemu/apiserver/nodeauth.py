"""Node identities: upstream's Node authorizer and NodeRestriction admission plugin.

A node agent authenticates as ``system:node:NAME`` in group ``system:nodes``. The authorizer
(plugin/pkg/auth/authorizer/node) allows it the ``system:node`` ClusterRole's rules, except that
secrets and configmaps it may read, and ServiceAccount tokens it may request, only for pods
bound to that node (upstream asks its graph; we ask the store). The admission plugin
(plugin/pkg/admission/noderestriction) then limits its writes to its own Node and Lease and to
pods bound to it (status, delete, eviction; creates only mirror pods). Its messages are
upstream's, so kubectl shows a node's refusal as a real cluster would.
"""

from __future__ import annotations

from typing import Any

from netemu.api import errors, kinds
from netemu.api.meta import pod_containers
from netemu.apiserver.authz import status_details
from netemu.apiserver.policy import CLUSTER_ROLES
from netemu.apiserver.rbac import Attributes, rule_allows
from netemu.store.base import Store

NODES_GROUP, NODE_PREFIX = "system:nodes", "system:node:"
LEASE_NAMESPACE = "kube-node-lease"
MIRROR = "kubernetes.io/config.mirror"
PODS = kinds.by_resource("", "v1", "pods")
NODE_RULES = CLUSTER_ROLES["system:node"]
GRAPH = {("", "secrets"), ("", "configmaps"), ("", "serviceaccounts"), ("", "persistentvolumeclaims"),
         ("", "persistentvolumes")}


def node_name(user) -> str | None:
    if NODES_GROUP in user.groups and user.name.startswith(NODE_PREFIX):
        return user.name[len(NODE_PREFIX):] or None
    return None


def pod_references(pod: dict[str, Any]) -> dict[str, set[str]]:
    """resource -> names a pod uses: secrets, configmaps, its ServiceAccount, its PVCs."""
    spec = pod.get("spec") or {}
    refs: dict[str, set[str]] = {"secrets": set(), "configmaps": set(), "persistentvolumeclaims": set(),
                                 "serviceaccounts": {spec.get("serviceAccountName") or "default"}}
    refs["secrets"] |= {s.get("name") for s in spec.get("imagePullSecrets") or [] if isinstance(s, dict)}

    def volume_sources(vol: dict) -> None:
        if (vol.get("secret") or {}).get("secretName"):
            refs["secrets"].add(vol["secret"]["secretName"])
        if (vol.get("configMap") or {}).get("name"):
            refs["configmaps"].add(vol["configMap"]["name"])
        if (vol.get("persistentVolumeClaim") or {}).get("claimName"):
            refs["persistentvolumeclaims"].add(vol["persistentVolumeClaim"]["claimName"])
        for src in (vol.get("projected") or {}).get("sources") or []:
            if (src.get("secret") or {}).get("name"):
                refs["secrets"].add(src["secret"]["name"])
            if (src.get("configMap") or {}).get("name"):
                refs["configmaps"].add(src["configMap"]["name"])
    for vol in spec.get("volumes") or []:
        if isinstance(vol, dict):
            volume_sources(vol)
    for c in pod_containers(pod):
        for env in (c.get("env") or []) if isinstance(c, dict) else []:
            src = (env.get("valueFrom") or {}) if isinstance(env, dict) else {}
            if (src.get("secretKeyRef") or {}).get("name"):
                refs["secrets"].add(src["secretKeyRef"]["name"])
            if (src.get("configMapKeyRef") or {}).get("name"):
                refs["configmaps"].add(src["configMapKeyRef"]["name"])
        for env in (c.get("envFrom") or []) if isinstance(c, dict) else []:
            if (env.get("secretRef") or {}).get("name"):
                refs["secrets"].add(env["secretRef"]["name"])
            if (env.get("configMapRef") or {}).get("name"):
                refs["configmaps"].add(env["configMapRef"]["name"])
    return refs


class NodeAuthorizer:
    def __init__(self, store: Store):
        self.store = store

    async def _pods_on(self, node: str, namespace: str) -> list[dict[str, Any]]:
        items = (await self.store.list(PODS.list_prefix(namespace))).items
        return [p for p in items if (p.get("spec") or {}).get("nodeName") == node]

    async def __call__(self, a: Attributes) -> tuple[bool | None, str]:
        """(True, "") allowed; (False, why) refused; (None, "") not a node (RBAC decides)."""
        node = node_name(a.user)
        if node is None:
            return None, ""
        if a.resource_request and (a.api_group, a.resource) in GRAPH and not (
                a.resource == "serviceaccounts" and a.subresource not in ("", "token")):
            return await self._graph(node, a)
        if any(rule_allows(rule, a) for rule in NODE_RULES):
            return True, ""
        return None, ""

    async def _graph(self, node: str, a: Attributes) -> tuple[bool | None, str]:
        """Reads of one named object a pod of the node uses (get, or list/watch narrowed by
        metadata.name, as upstream's authorizeReadNamespacedObject); a token for its account."""
        if a.subresource == "token":
            wanted: tuple[str, ...] = ("create",)
        elif a.resource in ("secrets", "configmaps"):
            wanted = ("get", "list", "watch")
        else:
            wanted = ("get",)
        if a.verb not in wanted or not a.name:
            return False, "can only read individual resources of this type" if "get" in wanted else \
                "can only create tokens for individual service accounts"
        for pod in await self._pods_on(node, a.namespace):
            if a.name in pod_references(pod).get(a.resource, ()):
                return True, ""
        return False, f"no relationship found between node '{node}' and this object"


class NodeRestriction:
    """Admission of a node's writes; ``obj`` is the request body (create) and ``current`` the
    stored object (update/patch/delete), either may be None."""

    @staticmethod
    def admit(a: Attributes, obj: dict | None, current: dict | None) -> None:
        node = node_name(a.user)
        if node is None or a.verb in ("get", "list", "watch"):
            return
        name = a.name or ((obj or {}).get("metadata") or {}).get("name", "")

        def deny(why: str) -> errors.Forbidden:          # upstream's admission.NewForbidden
            return errors.Forbidden(_admission_message(a, name, why), details=status_details(name, a.api_group, a.resource))
        if a.api_group == "" and a.resource == "nodes":
            if name != node:
                raise deny(f'node "{node}" is not allowed to modify node "{name}"')
        elif a.api_group == "coordination.k8s.io" and a.resource == "leases":
            if a.namespace != LEASE_NAMESPACE:
                raise deny(f'can only access leases in the "{LEASE_NAMESPACE}" system namespace')
            if name != node:
                raise deny("can only access node lease with the same name as the requesting node")
        elif a.api_group == "" and a.resource == "pods":
            bound = ((current or obj or {}).get("spec") or {}).get("nodeName")
            if a.verb == "create" and not a.subresource:
                annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
                if MIRROR not in annotations:
                    raise deny(f'pod does not have "{MIRROR}" annotation, node "{node}" can only create mirror pods')
                if bound != node:
                    raise deny(f'node "{node}" can only create pods with spec.nodeName set to itself')
            elif a.subresource == "status" and bound != node:
                raise deny(f'node "{node}" can only update pod status for pods with spec.nodeName set to itself')
            elif a.verb == "delete" and bound != node:
                raise deny(f'node "{node}" can only delete pods with spec.nodeName set to itself')
            elif a.subresource == "eviction" and bound != node:
                raise deny(f'node "{node}" can only evict pods with spec.nodeName set to itself')


def _admission_message(a: Attributes, name: str, why: str) -> str:
    qualified = f"{a.resource}.{a.api_group}" if a.api_group else a.resource
    return f'{qualified} "{name}" is forbidden: {why}' if name else f"{qualified} is forbidden: {why}"


