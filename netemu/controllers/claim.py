"""Adoption and release of a controller's pods and ControllerRevisions (upstream
pkg/controller/controller_ref_manager.go ``ClaimObject``, Kubernetes v1.32).

The decision is pure (``claim``); ``write`` makes the adoptions and releases. An object with no
controller that the owner's selector matches is adopted (unless the owner or the object is being
deleted, or it lives in another namespace); an object the owner controls that the selector no
longer matches is released (unless the owner is being deleted). Objects controlled by someone
else are never touched. Writes carry the object's resourceVersion, so a change in between makes
them fail with Conflict and the next sync decides again. Before its first adoption a sync may
re-read its owner past the cache (``recheck_deletion``, upstream's canAdopt): an owner whose
deletion the cache has not shown yet must not adopt (kubernetes#42639).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

from netemu.api import errors
from netemu.controllers.kube import (Obj, controller_ref, is_deleting, labels_of, meta, name_of, ns_of, owner_ref,
                                     selector_matches, uid_of)


@dataclass
class Claim:
    owned: list[Obj] = field(default_factory=list)     # controlled and matching, plus the adopted
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)


def claim(owner: Obj, objs: list[Obj], match: Callable[[Obj], bool] | None = None) -> Claim:
    """ClaimObject over ``objs``; ``match`` defaults to the owner's spec.selector on the labels
    (a StatefulSet adds its pod-name check, as upstream's ClaimPods filters)."""
    selector = (owner.get("spec") or {}).get("selector")
    if match is None:
        def match(obj: Obj) -> bool:
            return selector_matches(selector, labels_of(obj))
    out, uid, deleting = Claim(), uid_of(owner), is_deleting(owner)
    for obj in objs:
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != uid:
                continue                                   # someone else's
            if match(obj):
                out.owned.append(obj)
            elif not deleting:
                out.release.append(obj)
            continue
        if deleting or is_deleting(obj) or (ns_of(owner) and ns_of(obj) != ns_of(owner)) or not match(obj):
            continue                                       # (a cluster-scoped owner adopts in any namespace)
        out.adopt.append(obj)
        out.owned.append(obj)
    return out


def adopt_patch(owner: Obj, obj: Obj) -> Obj:
    """The owner's controller reference added to ``obj``'s, guarded by its resourceVersion."""
    refs = list(meta(obj).get("ownerReferences") or []) + [owner_ref(owner)]
    return {"metadata": {"ownerReferences": refs, "resourceVersion": meta(obj).get("resourceVersion")}}


def release_patch(owner: Obj, obj: Obj) -> Obj:
    refs = [r for r in meta(obj).get("ownerReferences") or [] if r.get("uid") != uid_of(owner)]
    return {"metadata": {"ownerReferences": refs or None, "resourceVersion": meta(obj).get("resourceVersion")}}


class CannotAdopt(errors.Conflict):
    """The owner's fresh copy forbids adoption (upstream RecheckDeletionTimestamp's error): the
    sync fails and is retried, as upstream's syncs return the ClaimPods error."""


def recheck_deletion(client, kind, owner: Obj) -> Callable[[], Awaitable[None]]:
    """Upstream's canAdopt for a ReplicaSet, DaemonSet or StatefulSet: an uncached GET of the
    owner; it must still be the same object (uid) and not be being deleted."""
    async def can_adopt() -> None:
        fresh = await client.get(kind, name_of(owner), ns_of(owner) or None)
        if uid_of(fresh) != uid_of(owner):
            raise CannotAdopt(f"original {ns_of(owner)}/{name_of(owner)} is gone: got uid {uid_of(fresh)}, "
                              f"wanted {uid_of(owner)}")
        if is_deleting(fresh):
            raise CannotAdopt(f"{ns_of(fresh)}/{name_of(fresh)} has just been deleted at "
                              f"{meta(fresh)['deletionTimestamp']}")
    return can_adopt


async def write(client, kind, owner: Obj, step: Claim,
                can_adopt: Callable[[], Awaitable[None]] | None = None) -> list[Obj]:
    """Adopt and release as ``step`` says; returns ``step.owned`` less the adoptions that lost a
    race (NotFound/Conflict: the next sync sees the new state). ``can_adopt`` runs once, before
    the first adoption: if it raises, no object is adopted, the releases are still made, and its
    error is raised (upstream's ClaimObject per object, then the sync returns the aggregate)."""
    denied: errors.StatusError | None = None
    if step.adopt and can_adopt is not None:
        try:
            await can_adopt()
        except errors.StatusError as exc:
            denied = exc
    adopt = [] if denied else step.adopt
    lost: set[str] = set()
    for obj, patch in [(o, adopt_patch(owner, o)) for o in adopt] + [(o, release_patch(owner, o))
                                                                     for o in step.release]:
        try:
            await client.patch(kind, name_of(obj), patch, ns_of(obj))
        except (errors.Conflict, errors.NotFound):
            lost.add(name_of(obj))
    if denied is not None:
        raise denied
    return [o for o in step.owned if not (name_of(o) in lost and o in step.adopt)]


def concerned(owners: list[Obj], obj: Obj) -> list[Obj]:
    """The owners that may adopt orphan ``obj`` (upstream getPodDaemonSets/getPodStatefulSets)."""
    return [o for o in owners if ns_of(o) == ns_of(obj) and not is_deleting(o)
            and selector_matches((o.get("spec") or {}).get("selector"), labels_of(obj))]


class OrphanWatch:
    """A controller mixin: an orphan added or changed wakes the owners whose selector matches it
    (so they adopt it); with ``owned_too``, an owned object wakes its controller."""
    owner_kind = ""

    def watch_orphans(self, kind: str, owned_too: bool = False) -> None:
        def changed(obj: Obj) -> None:
            ref = controller_ref(obj)
            if ref is None:
                for owner in concerned(self.cache(self.owner_kind).list(ns_of(obj)), obj):
                    self.enqueue_obj(owner)
            elif owned_too and ref.get("kind") == self.owner_kind:
                self.queue.add(f"{ns_of(obj)}/{ref['name']}")
        self.cache(kind).add_handler(changed, lambda old, new: (changed(old), changed(new)), changed)
