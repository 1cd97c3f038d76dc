"""Garbage collector: dependents follow their owners (ownerReferences), upstream's three ways.

- background (the default): once every owner of an object is gone, the object is deleted;
- foreground: an owner being deleted with the ``foregroundDeletion`` finalizer first has its
  dependents deleted (foreground, recursively); when none that block remain, the finalizer
  goes and the API server removes the owner;
- orphan: an owner with the ``orphan`` finalizer has its reference removed from each dependent,
  then the finalizer goes.

"Gone" is decided against the live API (a GET) and the uid, never only a cache, so a slow watch
never deletes a dependent whose owner exists (upstream verifies absence the same way).
"""

from __future__ import annotations

from netemu.api import errors
from netemu.api.kinds import by_kind
from netemu.controllers.kube import Obj, is_deleting, meta, name_of, ns_of, uid_of
from netemu.controllers.runtime import Controller, delete_seen, rt

FOREGROUND, ORPHAN = "foregroundDeletion", "orphan"
# kinds whose objects own or are owned in this cluster (Events are left to their TTL)
WATCHED = ("Deployment", "ReplicaSet", "StatefulSet", "ControllerRevision", "DaemonSet", "Job", "Pod", "Service",
           "EndpointSlice", "Secret", "ConfigMap", "ServiceAccount", "Lease", "Node", "Endpoints")


def owners(obj: Obj) -> list[Obj]:
    return list(meta(obj).get("ownerReferences") or [])


def dependents_of(uid: str, objects: list[tuple[str, Obj]]) -> list[tuple[str, Obj]]:
    return [(k, o) for k, o in objects if any(r.get("uid") == uid for r in owners(o))]


def finalizer_action(owner: Obj, dependents: list[Obj]) -> tuple[str, list[Obj], bool] | None:
    """What an owner being deleted needs: (action, dependents to act on, done). "foreground":
    delete the dependents; done (drop the finalizer) once none that block deletion remain.
    "orphan": unlink the dependents, then drop the finalizer. None: nothing to do."""
    if not is_deleting(owner):
        return None
    finalizers = meta(owner).get("finalizers") or []
    if ORPHAN in finalizers:
        return "orphan", dependents, True
    if FOREGROUND in finalizers:
        blocking = [d for d in dependents
                    if any(r.get("uid") == uid_of(owner) and r.get("blockOwnerDeletion") for r in owners(d))]
        return "foreground", [d for d in dependents if not is_deleting(d)], not blocking
    return None


def without_owner(obj: Obj, uid: str) -> list[Obj]:
    return [r for r in owners(obj) if r.get("uid") != uid]


class GarbageCollector(Controller):
    name = "garbagecollector"
    service_account = "generic-garbage-collector"
    kinds = WATCHED

    def setup(self) -> None:
        # owner uid -> {dependent key: kind}: upstream's dependency graph, reduced to one edge list
        self.graph: dict[str, dict[str, str]] = {}
        self._edges: dict[str, set[str]] = {}   # dependent key -> owner uids it is filed under
        for kind in WATCHED:
            self.cache(kind).add_handler(lambda o, k=kind: self._changed(k, o),
                                         lambda old, new, k=kind: self._changed(k, new),
                                         lambda o, k=kind: self._deleted(k, o))

    def _key(self, kind: str, obj: Obj) -> str:
        return f"{kind}|{ns_of(obj)}/{name_of(obj)}"

    def _file(self, kind: str, obj: Obj) -> None:
        key = self._key(kind, obj)
        uids = {r.get("uid", "") for r in owners(obj)}
        for uid in self._edges.get(key, set()) - uids:
            self.graph.get(uid, {}).pop(key, None)
        for uid in uids:
            self.graph.setdefault(uid, {})[key] = kind
        self._edges[key] = uids

    def _changed(self, kind: str, obj: Obj) -> None:
        self._file(kind, obj)
        if owners(obj) or (is_deleting(obj) and {FOREGROUND, ORPHAN} & set(meta(obj).get("finalizers") or [])):
            self.queue.add(self._key(kind, obj))

    def _deleted(self, kind: str, obj: Obj) -> None:
        key = self._key(kind, obj)
        for uid in self._edges.pop(key, set()):
            self.graph.get(uid, {}).pop(key, None)
        for dep_key in self.graph.pop(uid_of(obj), {}):
            self.queue.add(dep_key)

    def _all_objects(self) -> list[tuple[str, Obj]]:
        return [(k, o) for k in WATCHED for o in self.cache(k).list()]

    def _all_dependents(self, uid: str) -> list[tuple[str, Obj]]:
        out = []
        for key, kind in list(self.graph.get(uid, {}).items()):
            ns, _, name = key.partition("|")[2].rpartition("/")
            obj = self.cache(kind).get(name, ns or None)
            if obj is not None:
                out.append((kind, obj))
        return dependents_of(uid, out)  # re-checked against the objects themselves

    async def resync_all(self) -> None:
        for kind, obj in self._all_objects():
            self._changed(kind, obj)

    async def sync(self, key: str) -> None:
        kind, _, ref = key.partition("|")
        ns, _, name = ref.rpartition("/")
        obj = self.cache(kind).get(name, ns or None)
        if obj is None:
            return
        if is_deleting(obj):
            await self._finalize(kind, obj)
        if owners(obj) and not is_deleting(obj) and await self._all_owners_gone(obj):
            await self._delete(kind, obj, "Background")

    async def _owner_exists(self, obj: Obj, ref: Obj) -> bool:
        rt = by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if rt is None:
            return True  # a kind we do not serve: never delete on its account
        if rt.kind in WATCHED:
            cached = self.cache(rt.kind).get(ref["name"], ns_of(obj) if rt.namespaced else None)
            if cached is not None and uid_of(cached) == ref.get("uid"):
                return True  # present in the cache: no need to ask
        try:
            live = await self.client.get(rt, ref["name"], ns_of(obj) if rt.namespaced else None)
        except errors.NotFound:
            return False
        return uid_of(live) == ref.get("uid")

    async def _all_owners_gone(self, obj: Obj) -> bool:
        for ref in owners(obj):
            if await self._owner_exists(obj, ref):
                return False
        return True

    async def _finalize(self, kind: str, owner: Obj) -> None:
        deps = self._all_dependents(uid_of(owner))
        action = finalizer_action(owner, [d for _, d in deps])
        if action is None:
            return
        what, targets, done = action
        kind_of = {id(d): k for k, d in deps}
        for d in targets:
            if what == "orphan":
                await self._patch_owners(kind_of[id(d)], d, without_owner(d, uid_of(owner)))
            else:
                await self._delete(kind_of[id(d)], d, "Foreground")
        if done:
            await self._drop_finalizer(kind, owner, ORPHAN if what == "orphan" else FOREGROUND)
        else:
            self.queue.add_after(self._key(kind, owner), 0.5)

    async def _delete(self, kind: str, obj: Obj, policy: str) -> None:
        await delete_seen(self.client, rt(kind), obj, propagation_policy=policy)

    async def _patch_owners(self, kind: str, obj: Obj, refs: list[Obj]) -> None:
        patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": meta(obj).get("resourceVersion")}}
        await self.client.patch(rt(kind), name_of(obj), patch, ns_of(obj) or None)

    async def _drop_finalizer(self, kind: str, obj: Obj, finalizer: str) -> None:
        rest = [f for f in meta(obj).get("finalizers") or [] if f != finalizer]
        patch = {"metadata": {"finalizers": rest or None, "resourceVersion": meta(obj).get("resourceVersion")}}
        try:
            await self.client.patch(rt(kind), name_of(obj), patch, ns_of(obj) or None)
        except errors.NotFound:
            pass
