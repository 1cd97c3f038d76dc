"""Adoption and release of a controller's pods and ControllerRevisions (upstream
pkg/controller/controller_ref_manager.go ``ClaimObject``/``ClaimPods``/``AdoptPod``/``ReleasePod``,
Kubernetes v1.32).

The decision is pure (``claim``); ``write`` makes the adoptions and releases. An object with no
controller that the owner's selector matches is adopted (unless the owner or the object is being
deleted, or it lives in another namespace); an object the owner controls that the selector no
longer matches is released (unless the owner is being deleted). Objects controlled by someone
else are never touched. The patches are upstream's strategic merges: the ownerReference merged by
its uid, and the object's own ``metadata.uid``, which the server refuses to change (Invalid) if the
name now holds a recreated object; a second controller reference is Invalid too. Every patch is
tried; the errors are raised together at the end (upstream's ``utilerrors.NewAggregate``), so the
sync fails before it creates or deletes anything and is retried with back-off. Before its first
adoption a sync may re-read its owner past the cache (``recheck_deletion``, upstream's canAdopt):
an owner whose deletion the cache has not shown yet must not adopt (kubernetes#42639).
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
    """Upstream ownerRefControllerPatch: a strategic merge adding the owner's controller reference
    (merged by uid, so a plain reference to the owner becomes the controller one), guarded by the
    object's uid."""
    return {"metadata": {"ownerReferences": [owner_ref(owner)], **_uid_guard(obj)}}


def release_patch(owner: Obj, obj: Obj) -> Obj:
    """Upstream GenerateDeleteOwnerRefStrategicMergeBytes: delete the owner's reference by uid."""
    return {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": uid_of(owner)}], **_uid_guard(obj)}}


def _uid_guard(obj: Obj) -> Obj:
    return {"uid": uid_of(obj)} if uid_of(obj) else {}


class ClaimErrors(Exception):
    """Several adoptions or releases failed (upstream utilerrors.Aggregate): ``errors`` holds each."""

    def __init__(self, errs: list[Exception]):
        super().__init__("[" + ", ".join(str(e) for e in errs) + "]")
        self.errors = errs


def raise_all(errs: list[Exception]) -> None:
    """Raise nothing, the one error as it is, or all of them as ``ClaimErrors`` (NewAggregate
    prints a single error as itself)."""
    if len(errs) == 1:
        raise errs[0]
    if errs:
        raise ClaimErrors(errs)


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
    """Adopt and release as ``step`` says, every object even after a failure; returns
    ``step.owned`` less the adoptions of objects gone meanwhile, or raises what failed (upstream
    ClaimPods/ClaimControllerRevisions). Per upstream ClaimObject, AdoptPod and ReleasePod: an
    adoption's NotFound is ignored (the object is not owned), any other error is kept; a
    release's NotFound and Invalid (the uid guard: the object was recreated) are ignored.
    ``can_adopt`` runs once, before the first adoption: if it fails, every adoption fails with
    it and only the releases are made."""
    errs: list[Exception] = []
    denied = await _check(can_adopt) if step.adopt else None
    gone: list[Obj] = []
    for obj in step.adopt:
        if denied is not None:
            what = f"{obj.get('kind') or getattr(kind, 'kind', '')} {ns_of(obj)}/{name_of(obj)} ({uid_of(obj)})"
            errs.append(CannotAdopt(f"can't adopt {what}: {denied}"))
            gone.append(obj)
        elif not await _patch(client, kind, obj, adopt_patch(owner, obj), errs, (errors.NotFound,)):
            gone.append(obj)
    for obj in step.release:
        await _patch(client, kind, obj, release_patch(owner, obj), errs, (errors.NotFound, errors.Invalid))
    raise_all(errs)
    return [o for o in step.owned if not any(o is g for g in gone)]


async def _check(can_adopt: Callable[[], Awaitable[None]] | None) -> Exception | None:
    if can_adopt is None:
        return None
    try:
        await can_adopt()
    except Exception as exc:                              # upstream: "can't recheck ...": no adoption
        return exc
    return None


async def _patch(client, kind, obj: Obj, patch: Obj, errs: list[Exception], ignored: tuple) -> bool:
    """One adoption or release: True if made; an ``ignored`` error is False, any other is kept."""
    try:
        await client.patch(kind, name_of(obj), patch, ns_of(obj), patch_type="strategic")
        return True
    except ignored:
        return False
    except Exception as exc:
        errs.append(exc)
        return False


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
