"""Namespace controller: empties a Terminating namespace, then finalizes it (upstream's deleter).

Deleting a namespace only marks it (deletionTimestamp, phase Terminating): its
``spec.finalizers`` hold ``kubernetes`` until this controller has deleted every namespaced object
in it (deletecollection with Background propagation per resource, as upstream's
namespaced_resources_deleter.go), reported progress in the namespace's status conditions
(NamespaceDeletionContentFailure, NamespaceContentRemaining, NamespaceFinalizersRemaining, ...
with upstream's reasons and messages), and seen nothing left. Then it removes the finalizer
through ``namespaces/NAME/finalize`` and the API server removes the namespace.

A namespace is looked at ``DELETION_GRACE`` seconds after its delete, as upstream does
(namespaceDeletionGracePeriod): ``kubectl delete -f`` of a manifest holding a Namespace and
objects in it deletes those objects itself, and they must still be there when it does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from netemu.api import errors
from netemu.api.kinds import ResourceType, all_resources
from netemu.controllers.kube import Obj, is_deleting
from netemu.controllers.runtime import Controller, rt

DELETION_GRACE = 5.0           # upstream namespaceDeletionGracePeriod
RETRY = 1.0                    # look again while content is still going (pods stopping, finalizers)
FINALIZER = "kubernetes"
CONDITION_TYPES = ("NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
                   "NamespaceDeletionContentFailure", "NamespaceContentRemaining",
                   "NamespaceFinalizersRemaining")
_OK = {  # type -> (reason, message) when nothing is wrong (upstream okReasons / okMessages)
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions",
                                                    "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": ("ContentDeleted",
                                        "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentRemoved", "All content successfully removed"),
}


def deletable_kinds() -> list[ResourceType]:
    """Built-in kinds and the custom resources of the CRDs the API server in this process
    serves (the controller manager runs in the API server's process), one version of each."""
    out, seen = [], set()
    for r in all_resources():
        if (r.group, r.resource) in seen or not (r.namespaced and "list" in r.verbs):
            continue
        if "delete" in r.verbs or "deletecollection" in r.verbs:
            seen.add((r.group, r.resource))
            out.append(r)
    return out


@dataclass
class Remaining:
    """What one pass of deletion left behind: per resource, per finalizer, and the errors."""

    by_resource: dict[str, int] = field(default_factory=dict)     # "pods." -> count
    by_finalizer: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, resource: ResourceType, items: list[Obj]) -> None:
        if not items:
            return
        self.by_resource[f"{resource.resource}.{resource.group}"] = len(items)
        for item in items:
            for fin in (item.get("metadata") or {}).get("finalizers") or []:
                self.by_finalizer[fin] = self.by_finalizer.get(fin, 0) + 1

    @property
    def empty(self) -> bool:
        return not self.by_resource and not self.errors


def conditions(remaining: Remaining) -> dict[str, tuple[str, str, str]]:
    """type -> (status, reason, message) for this pass (pure; upstream's condition updater)."""
    out = {t: ("False", *_OK[t]) for t in CONDITION_TYPES}
    if remaining.errors:
        msgs = sorted(remaining.errors)
        out["NamespaceDeletionContentFailure"] = (
            "True", "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(msgs)} remaining: {', '.join(msgs)}")
    if remaining.by_resource:
        parts = sorted(f"{r} has {n} resource instances" for r, n in remaining.by_resource.items())
        out["NamespaceContentRemaining"] = ("True", "SomeResourcesRemain",
                                            f"Some resources are remaining: {', '.join(parts)}")
    if remaining.by_finalizer:
        parts = sorted(f"{f} in {n} resource instances" for f, n in remaining.by_finalizer.items())
        out["NamespaceFinalizersRemaining"] = ("True", "SomeFinalizerRemain",
                                               f"Some finalizers are remaining: {', '.join(parts)}")
    return out


def merge_conditions(current: list[Obj], wanted: dict[str, tuple[str, str, str]], now: str) -> list[Obj] | None:
    """The status conditions with ``wanted`` applied, or None when nothing changed (pure)."""
    by_type = {c.get("type"): dict(c) for c in current if isinstance(c, dict)}
    changed = False
    for ctype in CONDITION_TYPES:
        status, reason, message = wanted[ctype]
        old = by_type.get(ctype)
        if old is None:
            by_type[ctype] = {"type": ctype, "status": status, "lastTransitionTime": now,
                              "reason": reason, "message": message}
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != (status, reason, message):
            if old.get("status") != status:
                old["lastTransitionTime"] = now
            old.update(status=status, reason=reason, message=message)
            changed = True
    if not changed:
        return None
    others = [c for c in current if isinstance(c, dict) and c.get("type") not in CONDITION_TYPES]
    return others + [by_type[t] for t in CONDITION_TYPES]


class NamespaceController(Controller):
    name = "namespace"
    service_account = "namespace-controller"
    kinds = ("Namespace",)

    def setup(self) -> None:
        self.cache("Namespace").add_handler(self._changed, lambda o, n: self._changed(n))

    def _changed(self, ns: Obj) -> None:
        if is_deleting(ns):
            self.queue.add_after(ns["metadata"]["name"], DELETION_GRACE)

    async def resync_all(self) -> None:
        for ns in self.cache("Namespace").list():
            self._changed(ns)

    async def sync(self, key: str) -> None:
        try:
            ns = await self.client.get(rt("Namespace"), key)
        except errors.NotFound:
            return
        if not is_deleting(ns):
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            await self._delete_again(key)
            return
        remaining = await self._delete_content(key)
        ns = await self._report(ns, remaining)
        if not remaining.empty:
            self.queue.add_after(key, RETRY)
            return
        spec = ns.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
        try:
            await self.client.update(rt("Namespace"), ns, subresource="finalize")
        except errors.NotFound:
            return
        await self._delete_again(key)

    async def _delete_again(self, name: str) -> None:
        """The API server removes a namespace whose finalizers are all gone when it is deleted
        (or finalized); a metadata finalizer (orphan, foreground) may still hold it."""
        try:
            await self.client.delete(rt("Namespace"), name)
        except errors.NotFound:
            pass

    async def _delete_content(self, namespace: str) -> Remaining:
        remaining = Remaining()
        for resource in deletable_kinds():
            try:
                if "deletecollection" in resource.verbs:
                    await self.client.delete_collection(resource, namespace, propagation_policy="Background")
                else:
                    for item in (await self.client.list(resource, namespace)).items:
                        if not is_deleting(item):
                            try:
                                await self.client.delete(resource, item["metadata"]["name"], namespace,
                                                         propagation_policy="Background")
                            except errors.NotFound:
                                pass
                remaining.add(resource, (await self.client.list(resource, namespace)).items)
            except errors.StatusError as exc:
                remaining.errors.append(f"{resource.resource}.{resource.group}: {exc.message}")
        return remaining

    async def _report(self, ns: Obj, remaining: Remaining) -> Obj:
        """Write the deletion conditions when they changed; returns the latest namespace."""
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = ns.setdefault("status", {})
        merged = merge_conditions(status.get("conditions") or [], conditions(remaining), now)
        if merged is None:
            return ns
        status["conditions"] = merged
        status["phase"] = "Terminating"
        return await self.client.update_status(rt("Namespace"), ns)
