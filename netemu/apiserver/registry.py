"""The storage side of every verb: strategy, allocation, namespaces, deletion, concurrency.

This is upstream's generic registry (staging/src/k8s.io/apiserver/pkg/registry/generic/registry/
store.go) cut to what netemu needs, with no HTTP in it: the handlers decode a request, call one
method here, and render the answer. Objects pass through the object model's strategy
(defaults, metadata, validation) before they are written, so nothing invalid reaches the store.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
from typing import Callable, Mapping

from netemu.api import custom, errors, kinds, meta, strategy
from netemu.api.kinds import ResourceType
from netemu.api.meta import Obj
from netemu.apiserver import deletion
from netemu.apiserver.crds import CrdHooks
from netemu.apiserver.hooks import KindHooks
from netemu.apiserver.ingressclass import DefaultIngressClass
from netemu.apiserver.services import ServiceIPs
from netemu.store.base import Store

# Records an object's managedFields: (stored object or None on create, object as sent, object
# about to be stored), called after defaulting and validation (apiserver.fieldmanager).
FieldsRecorder = Callable[[Obj | None, Obj, Obj], None]

NAMESPACES = kinds.by_resource("", "v1", "namespaces")
PODS = kinds.by_resource("", "v1", "pods")
# Kinds whose PUT creates a missing object (upstream AllowCreateOnUpdate).
CREATE_ON_UPDATE = {"Endpoints", "Lease", "Event"}
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_RETRIES = 20


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def qualified(rt: ResourceType) -> str:
    """``services`` or ``deployments.apps``: how upstream names a resource in messages."""
    return f"{rt.resource}.{rt.group}" if rt.group else rt.resource


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _rv(obj: Obj) -> int | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    if rv in (None, ""):
        return None
    try:
        return int(rv)
    except (TypeError, ValueError):
        raise errors.BadRequest(f"invalid resourceVersion {rv!r}: must be an integer") from None


def conflict(rt: ResourceType, name: str) -> errors.Conflict:
    return errors.Conflict(
        f'Operation cannot be fulfilled on {qualified(rt)} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "group": rt.group, "kind": rt.resource})


def not_found(rt: ResourceType, name: str) -> errors.NotFound:
    return errors.NotFound(f'{qualified(rt)} "{name}" not found',
                           details={"name": name, "group": rt.group, "kind": rt.resource})


def default_hooks(store: Store) -> dict[str, KindHooks]:
    """The kinds with hooks, by kind name: Services (ClusterIPs and NodePorts of the default
    ranges; the control-plane process passes its own ranges), Ingresses (the default class),
    CustomResourceDefinitions (serving their kinds, cleaning up after them)."""
    return {"Service": ServiceIPs(store), "Ingress": DefaultIngressClass(store),
            "CustomResourceDefinition": CrdHooks(store)}


class Registry:
    """Verbs over one store; ``clock`` is injectable so tests can fix "now"; ``hooks`` (kind
    name -> KindHooks, default ``default_hooks``) are what a kind's writes do besides the store."""

    def __init__(self, store: Store, *, clock: Callable[[], dt.datetime] = utcnow,
                 hooks: Mapping[str, KindHooks] | None = None):
        self.store = store
        self.clock = clock
        self.hooks = dict(default_hooks(store) if hooks is None else hooks)
        for kind_hooks in self.hooks.values():
            kind_hooks.attach(self)

    def _hooks(self, rt: ResourceType) -> KindHooks | None:
        """The kind's hooks (custom resources have none: their kind names are the users')."""
        return self.hooks.get(rt.kind) if rt.custom is None else None

    async def start(self) -> None:
        """Rebuild in-memory state (IP and port allocations) from the stored objects."""
        for hooks in self.hooks.values():
            await hooks.start()

    # -- reads -------------------------------------------------------------------------------

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        try:
            return self._typed(rt, await self.store.get(rt.key(namespace, name)))
        except errors.NotFound:
            raise not_found(rt, name) from None

    @staticmethod
    def _typed(rt: ResourceType, obj: Obj) -> Obj:
        if rt.custom is not None:
            return custom.on_read(rt, obj)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        return obj

    # -- create ------------------------------------------------------------------------------

    async def create(self, rt: ResourceType, namespace: str | None, obj: Obj, *,
                     dry_run: bool = False, fields: FieldsRecorder | None = None) -> Obj:
        """POST; ``dry_run`` runs every check and allocation, then writes nothing; ``fields``
        records the managedFields (none without it)."""
        meta = _meta(obj)
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise errors.BadRequest("the namespace of the provided object does not match the "
                                        "namespace sent on the request")
            namespace = namespace or body_ns or "default"
            meta["namespace"] = namespace
            await self._check_namespace(rt, namespace, meta.get("name") or "")
        else:
            meta.pop("namespace", None)
        generate = not meta.get("name") and meta.get("generateName")
        for _ in range(5 if generate else 1):
            candidate = copy.deepcopy(obj)
            if generate:
                suffix = "".join(random.choice(_GENERATE_ALPHABET) for _ in range(5))
                _meta(candidate)["name"] = meta["generateName"] + suffix
            try:
                return await self._create_one(rt, namespace, candidate, dry_run, fields)
            except errors.AlreadyExists:
                if not generate:
                    raise
        raise errors.AlreadyExists(f"could not generate a unique name from {meta['generateName']!r}")

    async def _create_one(self, rt: ResourceType, namespace: str | None, obj: Obj, dry_run: bool,
                          fields: FieldsRecorder | None) -> Obj:
        prepared = strategy.prepare_create(rt, obj, now=meta.now_rfc3339(self.clock()))
        if fields is not None:
            fields(None, obj, prepared)
        name = _meta(prepared).get("name", "")
        key = rt.key(namespace, name)
        release = None
        hooks = self._hooks(rt)
        try:
            if hooks is not None:       # a duplicate is 409 AlreadyExists before its IP is 422 taken
                await self._check_absent(key)
                release = await hooks.on_create(rt, prepared)
            if dry_run:
                await self._check_absent(key)
                if release:
                    release()
                return self._typed(rt, prepared)
            stored = await self.store.create(key, prepared)
        except errors.AlreadyExists:
            if release:
                release()
            raise errors.AlreadyExists(f'{qualified(rt)} "{name}" already exists',
                                       details={"name": name, "group": rt.group, "kind": rt.resource}) from None
        except Exception:
            if release:
                release()
            raise
        return self._typed(rt, stored)

    async def _check_absent(self, key: str) -> None:
        try:
            await self.store.get(key)
        except errors.NotFound:
            return
        raise errors.AlreadyExists("already exists")

    async def _check_namespace(self, rt: ResourceType, namespace: str, name: str) -> None:
        """upstream's NamespaceLifecycle admission: no content in a missing namespace (404), nor
        in one being deleted (403, with the NamespaceTerminating cause)."""
        try:
            ns = await self.store.get(NAMESPACES.key(None, namespace))
        except errors.NotFound:
            raise errors.NotFound(f'namespaces "{namespace}" not found',
                                  details={"name": namespace, "kind": "namespaces"}) from None
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            what = f'{qualified(rt)} "{name}"' if name else qualified(rt)
            raise errors.Forbidden(
                f"{what} is forbidden: unable to create new content in namespace {namespace} "
                "because it is being terminated",
                details={**({"name": name} if name else {}), **({"group": rt.group} if rt.group else {}),
                         "kind": rt.resource,
                         "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                     "message": f"namespace {namespace} is being terminated"}]})

    # -- update ------------------------------------------------------------------------------

    async def update(self, rt: ResourceType, namespace: str | None, name: str, obj: Obj, *,
                     subresource: str | None = None, dry_run: bool = False,
                     fields: FieldsRecorder | None = None) -> Obj:
        """PUT: the body's resourceVersion (if any) is the precondition, else last write wins."""
        meta = _meta(obj)
        if meta.get("name") and meta["name"] != name:
            raise errors.BadRequest(f"the name of the object ({meta['name']}) does not match the "
                                    f"name on the URL ({name})")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.BadRequest("the namespace of the provided object does not match the "
                                    "namespace sent on the request")
        expected = _rv(obj)
        try:
            await self.store.get(rt.key(namespace, name))
        except errors.NotFound:
            if rt.kind in CREATE_ON_UPDATE and subresource is None and expected is None:
                meta["name"] = name
                return await self.create(rt, namespace, obj, dry_run=dry_run, fields=fields)
            raise not_found(rt, name) from None
        return await self.guaranteed_update(rt, namespace, name, lambda old: obj, subresource=subresource,
                                            precondition=expected, dry_run=dry_run, fields=fields)

    async def guaranteed_update(self, rt: ResourceType, namespace: str | None, name: str,
                                transform: Callable[[Obj], Obj], *, subresource: str | None = None,
                                precondition: int | None = None, dry_run: bool = False,
                                fields: FieldsRecorder | None = None) -> Obj:
        """Read, transform, validate, write conditionally; retry on races unless the caller
        gave a resourceVersion precondition (then a race is the caller's Conflict). Without
        ``fields`` the stored managedFields are kept as they are."""
        key = rt.key(namespace, name)
        hooks = self._hooks(rt)
        for _ in range(MAX_RETRIES):
            old = await self.get(rt, namespace, name)
            old_rv = _rv(old)
            if precondition is not None and precondition != old_rv:
                raise conflict(rt, name)
            new = transform(copy.deepcopy(old))
            new_meta = _meta(new)
            new_meta["name"], new_meta["resourceVersion"] = name, str(old_rv)
            if rt.namespaced:
                new_meta["namespace"] = namespace
            prepared = strategy.prepare_update(rt, old, new, subresource=subresource)
            if fields is not None:
                fields(old, new, prepared)
            elif _meta(old).get("managedFields"):
                _meta(prepared)["managedFields"] = _meta(old)["managedFields"]
            if subresource != "status" and deletion.finalized(prepared) and (
                    rt.kind != "Namespace" or not (prepared.get("spec") or {}).get("finalizers")):
                return old if dry_run else await self._remove(rt, namespace, name, old_rv)
            commit = await hooks.on_update(rt, old, prepared) if hooks is not None else None
            if dry_run:
                if commit:
                    commit(False)
                return self._typed(rt, prepared)
            try:
                stored = await self.store.update(key, prepared, expected_revision=old_rv)
            except errors.Conflict:
                if commit:
                    commit(False)
                if precondition is not None:
                    raise conflict(rt, name) from None
                continue
            except Exception:
                if commit:
                    commit(False)
                raise
            if commit:
                commit(True)
            return self._typed(rt, stored)
        raise conflict(rt, name)

    # -- delete ------------------------------------------------------------------------------

    async def delete(self, rt: ResourceType, namespace: str | None, name: str,
                     options: Obj | None = None, *, dry_run: bool = False) -> tuple[Obj, bool]:
        """DELETE with DeleteOptions; returns (object, removed-now)."""
        options = options or {}
        deletion.check_options(options)
        if dry_run:
            obj = await self.get(rt, namespace, name)
            deletion.check_preconditions(obj, options)
            plan = deletion.plan(rt.kind, obj, options, self.clock())
            return (obj if plan.remove else self._typed(rt, plan.updated)), plan.remove
        if rt.kind == "Namespace":
            return await self._delete_namespace(name, options)
        for _ in range(MAX_RETRIES):
            obj = await self.get(rt, namespace, name)
            deletion.check_preconditions(obj, options)
            plan = deletion.plan(rt.kind, obj, options, self.clock())
            try:
                if plan.remove:
                    return await self._remove(rt, namespace, name, _rv(obj)), True
                if plan.updated == obj:        # deleting again changes nothing: no write
                    return obj, False
                stored = await self.store.update(rt.key(namespace, name), plan.updated,
                                                 expected_revision=_rv(obj))
                if self._hooks(rt) is not None:
                    self._hooks(rt).on_terminating(stored)
                return self._typed(rt, stored), False
            except errors.Conflict:
                continue
        raise conflict(rt, name)

    async def _remove(self, rt: ResourceType, namespace: str | None, name: str, rv: int | None) -> Obj:
        try:
            last = await self.store.delete(rt.key(namespace, name), expected_revision=rv)
        except errors.NotFound:
            raise not_found(rt, name) from None
        hooks = self._hooks(rt)
        if hooks is not None:
            hooks.on_delete(last)
        return self._typed(rt, last)

    async def _delete_namespace(self, name: str, options: Obj) -> tuple[Obj, bool]:
        """upstream's namespace REST Delete: the first delete marks the namespace Terminating
        (deletionTimestamp, status.phase); it is removed only once ``spec.finalizers`` is empty
        (the namespace controller empties it, then finalizes and deletes again) and no
        metadata finalizer holds it."""
        for _ in range(MAX_RETRIES):
            obj = await self.get(NAMESPACES, None, name)
            deletion.check_preconditions(obj, options)
            md = _meta(obj)
            if not md.get("deletionTimestamp"):
                marked = copy.deepcopy(obj)
                plan = deletion.plan("Namespace", marked, options, self.clock())
                mmd = _meta(marked)
                mmd["deletionTimestamp"] = meta.now_rfc3339(self.clock())
                mmd["deletionGracePeriodSeconds"] = 0
                if plan.updated is not None and plan.updated["metadata"].get("finalizers"):
                    mmd["finalizers"] = plan.updated["metadata"]["finalizers"]
                marked.setdefault("status", {})["phase"] = "Terminating"
                try:
                    obj = self._typed(NAMESPACES, await self.store.update(
                        NAMESPACES.key(None, name), marked, expected_revision=_rv(obj)))
                except errors.Conflict:
                    continue
                md = _meta(obj)
            if (obj.get("spec") or {}).get("finalizers") or md.get("finalizers"):
                return obj, False
            try:
                return await self._remove(NAMESPACES, None, name, _rv(obj)), True
            except errors.Conflict:
                continue
        raise conflict(NAMESPACES, name)

    # -- subresources ------------------------------------------------------------------------

    async def bind(self, namespace: str, pod_name: str, binding: Obj) -> Obj:
        """pods/binding: set spec.nodeName once (409 when already bound or being deleted).

        Like upstream's BindingREST it writes the pod directly: the pod update strategy would
        reject a spec change, binding is the one allowed way to set nodeName."""
        key = PODS.key(namespace, pod_name)
        for _ in range(MAX_RETRIES):
            pod = await self.get(PODS, namespace, pod_name)
            bound = strategy.prepare_binding(pod, binding)
            try:
                return self._typed(PODS, await self.store.update(key, bound, expected_revision=_rv(pod)))
            except errors.Conflict:
                continue
        raise conflict(PODS, pod_name)
