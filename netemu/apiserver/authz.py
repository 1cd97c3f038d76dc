"""What a request asks to do, whether it may, and the 403 upstream words when it may not.

``attributes`` turns method + path + query into upstream's authorizer.Attributes (verbs get,
list, watch, create, update, patch, delete, deletecollection; non-resource paths with the
lower-case method). ``Authorizer`` is upstream's chain for a kubeadm cluster
(--authorization-mode=Node,RBAC): members of ``system:masters`` are always allowed, node
identities go to the Node authorizer (netemu/apiserver/nodeauth.py), everyone else to RBAC over
an in-memory index the registry's hooks keep current (``RbacHooks``). ``forbidden`` builds the
Status upstream's responsewriters.Forbidden sends.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Mapping

from netemu.api import errors, kinds
from netemu.api.meta import Obj
from netemu.apiserver import routing
from netemu.apiserver.hooks import KindHooks
from netemu.apiserver.rbac import KINDS as RBAC_KINDS, Attributes, RbacIndex, User
from netemu.store.base import Store

log = logging.getLogger(__name__)
MASTERS = "system:masters"
ALWAYS_ALLOW, RBAC_MODE = "AlwaysAllow", "RBAC"
_WRITE = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def attributes(user: User, method: str, path: str, query: Mapping[str, str],
               target: routing.Target | routing.GroupVersion | None) -> Attributes:
    """upstream's RequestInfoFactory: a resource request for an API object path, else a
    non-resource request for the path (discovery documents, /healthz, /openapi/...)."""
    if not isinstance(target, routing.Target):
        return Attributes(user, method.lower(), resource_request=False, path=path)
    rt = target.rt
    if method == "GET" or method == "HEAD":
        if target.watch or (target.subresource is None and _true(query.get("watch"))):
            verb = "watch"
        else:
            verb = "get" if target.name else "list"
    elif method == "DELETE":
        verb = "delete" if target.name else "deletecollection"
    else:
        verb = _WRITE.get(method, method.lower())
    name = target.name or ""
    if not name and verb in ("list", "watch"):
        name = _field_name(query.get("fieldSelector") or "")
    return Attributes(user, verb, namespace=target.namespace or "", api_group=rt.group, api_version=rt.version,
                      resource=rt.resource, subresource=target.subresource or "", name=name, path=path)


def _field_name(selector: str) -> str:
    """``metadata.name=X`` in a list/watch narrows it to one name, as upstream's request info."""
    for part in selector.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip() == "metadata.name":
            return value.strip().lstrip("=")
    return ""


def forbidden_message(a: Attributes) -> str:
    if not a.resource_request:
        return f'User "{a.user.name}" cannot {a.verb} path "{a.path}"'
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return f'User "{a.user.name}" cannot {a.verb} resource "{resource}" in API group "{a.api_group}" {where}'


def forbidden(a: Attributes, reason: str = "") -> errors.Forbidden:
    """apierrors.NewForbidden(groupResource, name, message[: reason])."""
    msg = forbidden_message(a) + (f": {reason}" if reason else "")
    if not a.resource_request:
        return errors.Forbidden(f"forbidden: {msg}", details={})
    qualified = f"{a.resource}.{a.api_group}" if a.api_group else a.resource
    head = f'{qualified} "{a.name}"' if a.name else qualified
    return errors.Forbidden(f"{head} is forbidden: {msg}", details=status_details(a.name, a.api_group, a.resource))


def status_details(name: str, group: str, kind: str) -> dict[str, str]:
    """metav1.StatusDetails as Go renders it: empty fields are left out (omitempty)."""
    return {k: v for k, v in (("name", name), ("group", group), ("kind", kind)) if v}


NodeDecision = Callable[[Attributes], Awaitable[tuple[bool | None, str]]]


class Authorizer:
    """Node,RBAC (or AlwaysAllow); ``node`` answers (allowed | None for no opinion, reason)."""

    def __init__(self, index: RbacIndex, mode: str = RBAC_MODE, node: NodeDecision | None = None):
        self.index, self.mode, self.node = index, mode, node

    async def authorize(self, a: Attributes) -> tuple[bool, str]:
        if self.mode == ALWAYS_ALLOW or MASTERS in a.user.groups:
            return True, ""
        reasons = []
        if self.node is not None:
            decided, reason = await self.node(a)
            if decided is not None:
                return decided, reason
            reasons += [reason] if reason else []
        allowed, reason = self.index.authorize(a)
        return allowed, ", ".join(reasons + ([reason] if reason else []))

    async def check(self, a: Attributes) -> None:
        allowed, reason = await self.authorize(a)
        if not allowed:
            raise forbidden(a, reason)


class RbacHooks(KindHooks):
    """Keeps an RbacIndex equal to the store through the registry's hooks for one RBAC kind:
    loaded at start, then every write through this API server is in the index before its
    answer leaves, so a binding just made counts for the very next request."""

    def __init__(self, store: Store, index: RbacIndex, kind: str):
        self.store, self.index, self.kind = store, index, kind

    async def start(self) -> None:
        rt = kinds.by_kind("rbac.authorization.k8s.io/v1", self.kind)
        for obj in (await self.store.list(rt.key_prefix)).items:
            self.index.put(self.kind, obj)

    async def on_create(self, rt: kinds.ResourceType, obj: Obj) -> Callable[[], None] | None:
        self.index.put(self.kind, obj)
        return lambda: self.index.remove(self.kind, obj)

    async def on_update(self, rt: kinds.ResourceType, old: Obj, new: Obj) -> Callable[[bool], None] | None:
        def commit(ok: bool) -> None:
            if ok:
                self.index.put(self.kind, new)
        return commit

    def on_delete(self, obj: Obj) -> None:
        self.index.remove(self.kind, obj)


def rbac_hooks(store: Store, index: RbacIndex) -> dict[str, KindHooks]:
    return {kind: RbacHooks(store, index, kind) for kind in RBAC_KINDS}
