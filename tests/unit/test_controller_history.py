"""ControllerRevision history of a DaemonSet and the claim (adopt/release) decisions, pure.

Ported from Kubernetes v1.32.0 (tag, commit 70d3cc986aa8221cd1dfb1121852688902d3bf53):
pkg/controller/daemon/update.go (constructHistory, dedupCurHistories, snapshot, cleanupHistory),
pkg/controller/history/controller_history.go and pkg/controller/controller_ref_manager.go
(ClaimObject); the revision data is what kubectl's polymorphichelpers/rollback.go applies.
"""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace

import pytest

from netemu.api import errors, kinds, strategy
from netemu.api.template_generation import ANNOTATION
from netemu.apiserver.handlers import go_json
from netemu.controllers import claim, daemonset_history as dh, daemonset_plan as dp, history
from netemu.controllers.daemonset import DaemonSetController
from netemu.controllers.kube import labels_of, name_of, owner_ref
from tests.unit.test_controller_daemonset import ds, pod


def _image(d: dict, image: str) -> dict:
    out = ds(image=image)
    out["metadata"] = {**d["metadata"], "annotations": {"kubernetes.io/change-cause": f"to {image}"}}
    return out


def _stored(d: dict, number: int, uid: str = "") -> dict:
    """The revision the controller would have made for ``d``, as read back (with a uid)."""
    rev = dh.snapshot(d, number)
    rev["metadata"]["uid"] = uid or f"r-{number}"
    return rev


def test_first_sync_snapshots_the_template_as_revision_1():
    d = _image(ds(), "agent:1")
    step = dh.construct(d, [], [])
    made = step.create
    assert made is not None and step.renumber is None and not step.old
    h = dp.template_hash(d)
    assert step.hash == h and name_of(made) == f"agent-{h}" and made["revision"] == 1
    assert labels_of(made) == {"app": "a", dp.HASH_LABEL: h}
    assert made["metadata"]["annotations"] == {"kubernetes.io/change-cause": "to agent:1"}
    assert made["metadata"]["ownerReferences"] == [owner_ref(d)]
    # data: the strategic-merge patch kubectl rollout undo sends, replacing the whole template
    assert set(made["data"]) == {"spec"} and set(made["data"]["spec"]) == {"template"}
    assert made["data"]["spec"]["template"]["$patch"] == "replace"
    template = history.template_of(made)
    assert template["metadata"] == d["spec"]["template"]["metadata"] and history.matches(d, made)
    assert template == d["spec"]["template"]


def test_revision_data_is_the_patch_kubectl_makes_byte_for_byte():
    """kubectl's getDaemonSetPatch marshals the typed template (creationTimestamp null, each
    container's resources {}) into a map, so Go writes it compact with sorted keys; the server
    stores the RawExtension as sent (nulls too) and answers in Go's encoding."""
    d = ds(image="a<b>&c")
    data = history.revision_data(d)
    assert go_json(data) == (
        '{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"a"}},'
        '"spec":{"containers":[{"image":"a\\u003cb\\u003e\\u0026c","name":"c","resources":{}}]}}}}')
    stored = strategy.prepare_create(kinds.by_kind("apps/v1", "ControllerRevision"),
                                     {"metadata": {"name": "r", "namespace": "x"}, "data": data, "revision": 1}, now="2026-01-01T00:00:00Z")
    assert stored["data"] == data


def test_each_new_template_is_the_next_revision_and_undo_renumbers_the_old_one():
    v1, v2 = _image(ds(), "agent:1"), _image(ds(), "agent:2")
    r1 = _stored(v1, 1)
    step = dh.construct(v2, [r1], [])
    assert step.create["revision"] == 2 and step.old == [r1] and step.hash == dp.template_hash(v2)
    r2 = _stored(v2, 2)
    assert dh.construct(v2, [r1, r2], []).create is None                   # in step: nothing to do
    back = dh.construct(v1, [r1, r2], [])                                  # kubectl rollout undo
    assert back.create is None and back.renumber == {**r1, "revision": 3} and back.old == [r2]
    assert back.hash == labels_of(r1)[dp.HASH_LABEL]


def test_duplicates_of_the_current_template_keep_the_highest_and_relabel_only_their_pods():
    v1, v2 = ds(image="agent:1"), ds(image="agent:2")
    keep, dup = _stored(v2, 3), _stored(v2, 2)
    dup["metadata"]["name"], dup["metadata"]["labels"][dp.HASH_LABEL] = "agent-dup", "dup"
    old = _stored(v1, 1)
    on_dup, on_old = pod(v2, "n1", "p1", hash_="dup"), pod(v1, "n2", "p2")
    step = dh.construct(v2, [dup, keep, old], [on_dup, on_old])
    assert step.duplicates == [dup] and step.hash == labels_of(keep)[dp.HASH_LABEL]
    assert step.relabel == [on_dup] and step.old == [old] and step.renumber is None


def test_a_revision_without_the_hash_label_gets_its_name_as_upstream():
    d = ds()
    rev = _stored(d, 1)
    del rev["metadata"]["labels"][dp.HASH_LABEL]
    step = dh.construct(d, [rev], [])
    assert [labels_of(r)[dp.HASH_LABEL] for r in step.label] == [name_of(rev)]
    assert step.hash == name_of(rev) and step.create is None


def test_collision_count_changes_the_hash_and_the_name():
    d = ds()
    bumped = {**d, "status": {"collisionCount": 1}}
    assert dp.template_hash(bumped) != dp.template_hash(d)
    assert name_of(dh.construct(bumped, [], []).create) == f"agent-{dp.template_hash(bumped)}"


def test_cleanup_keeps_the_limit_counting_live_revisions_as_upstream():
    images = [ds(image=f"agent:{i}") for i in range(5)]
    old = [_stored(d, i + 1) for i, d in enumerate(images[:4])]              # 4 old, the 5th is current
    limited = {**images[4], "spec": {**images[4]["spec"], "revisionHistoryLimit": 1}}
    assert dh.cleanup(limited, old, []) == old[:3]                            # oldest first
    live = pod(images[0], "n1", "p1")                                          # revision 1 still runs
    assert dh.cleanup(limited, old, [live]) == old[1:]    # toKill 3: the live one counts in the limit
    both = [live, pod(images[1], "n2", "p2")]
    assert dh.cleanup(limited, old, both) == old[2:]      # two live ones: more than the limit stay
    assert dh.cleanup(images[4], old, []) == []                               # default limit 10


def _obj(name: str, labels: dict, ref: dict | None = None, ns: str = "kube-system", deleting=False) -> dict:
    md = {"name": name, "namespace": ns, "labels": labels, "resourceVersion": "7"}
    if ref:
        md["ownerReferences"] = [ref]
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": md}


def test_claim_adopts_matching_orphans_and_releases_what_stopped_matching():
    d = ds()
    mine, other = owner_ref(d), {**owner_ref(d), "uid": "u-other", "name": "x"}
    kept = _obj("kept", {"app": "a"}, mine)
    gone = _obj("gone", {"app": "b"}, mine)
    orphan = _obj("orphan", {"app": "a"})
    theirs = _obj("theirs", {"app": "a"}, other)
    skipped = [_obj("nomatch", {"app": "b"}), _obj("elsewhere", {"app": "a"}, ns="other"),
               _obj("going", {"app": "a"}, deleting=True)]
    step = claim.claim(d, [kept, gone, orphan, theirs, *skipped])
    assert step.owned == [kept, orphan] and step.adopt == [orphan] and step.release == [gone]
    # upstream's strategic merges: the reference merged or deleted by uid (tests/unit/test_controller_claim.py)
    assert claim.adopt_patch(d, orphan) == {"metadata": {"ownerReferences": [mine]}}
    assert claim.release_patch(d, gone) == {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": mine["uid"]}]}}
    # an owner being deleted neither adopts nor releases, but keeps what it owns and matches
    dying = {**d, "metadata": {**d["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    step = claim.claim(dying, [kept, gone, orphan])
    assert step.owned == [kept] and not step.adopt and not step.release
    # a custom match (the StatefulSet's pod-name filter) is honoured
    step = claim.claim(d, [orphan, kept], lambda o: name_of(o) == "orphan")
    assert step.owned == step.adopt == [orphan] and step.release == [kept]


def test_concerned_owners_are_the_live_matching_ones_of_the_namespace():
    d = ds()
    orphan = _obj("orphan", {"app": "a"})
    dying = {**d, "metadata": {**d["metadata"], "deletionTimestamp": "x"}}
    elsewhere = {**d, "metadata": {**d["metadata"], "namespace": "other"}}
    assert claim.concerned([d, dying, elsewhere], orphan) == [d]


def test_template_generation_annotation_follows_the_template_only():
    """pkg/registry/apps/daemonset/strategy.go + the apps/v1 conversion: pods are labelled with it."""
    kind = kinds.by_kind("apps/v1", "DaemonSet")
    made = strategy.prepare_create(kind, {"apiVersion": "apps/v1", "kind": "DaemonSet", **ds()}, now="2026-01-01T00:00:00Z")
    assert made["metadata"]["annotations"][ANNOTATION] == "1"
    stored = {**made, "metadata": {**made["metadata"], "resourceVersion": "1"}}
    other = copy.deepcopy(stored)
    other["spec"]["minReadySeconds"] = 5
    other["metadata"]["annotations"][ANNOTATION] = "7"                  # a client cannot set it
    same = strategy.prepare_update(kind, stored, other)
    assert same["metadata"]["annotations"][ANNOTATION] == "1" and same["metadata"]["generation"] == 2
    changed = copy.deepcopy(same)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:2"
    bumped = strategy.prepare_update(kind, same, changed)
    assert bumped["metadata"]["annotations"][ANNOTATION] == "2" and bumped["metadata"]["generation"] == 3
    status = {**copy.deepcopy(bumped), "status": {"numberReady": 1}}
    status["metadata"]["annotations"] = {}
    assert strategy.prepare_update(kind, bumped, status, subresource="status")["metadata"]["annotations"] == {
        ANNOTATION: "2"}
    assert dp.new_pod(bumped, "n1", "h")["metadata"]["labels"][dp.GENERATION_LABEL] == "2"
    # a pod of the current template generation counts as updated whatever its hash (IsPodUpdated)
    assert dp.is_updated(bumped, pod(bumped, "n1", "p", hash_="other"), "h")
    assert not dp.is_updated(bumped, pod(same, "n1", "p", hash_="other"), "h")
    bad = {"apiVersion": "apps/v1", "kind": "DaemonSet", **ds()}
    bad["metadata"]["annotations"] = {ANNOTATION: "x"}
    with pytest.raises(errors.BadRequest):
        strategy.prepare_create(kind, bad, now="2026-01-01T00:00:00Z")


class _Client:
    """Just the calls DaemonSetController._snapshot makes, recorded."""

    def __init__(self, existing: dict, latest: dict):
        self.existing, self.latest, self.updates = existing, latest, []

    async def create(self, kind, obj, ns):
        raise errors.AlreadyExists("exists")

    async def get(self, kind, name, ns):
        return self.existing if kind.kind == "ControllerRevision" else self.latest

    async def update(self, kind, obj, subresource=None):
        self.updates.append((obj, subresource))
        return obj


def test_a_name_taken_by_another_template_bumps_collision_count():
    """upstream snapshot: AlreadyExists with other data -> status.collisionCount + 1 and an error
    (the sync is retried with the new hash); the same data -> ours; a stale count -> retry."""
    d = ds()
    mine, theirs = dh.snapshot(d, 1), dh.snapshot(ds(image="other"), 1)

    def snap(client):
        return asyncio.run(DaemonSetController._snapshot(SimpleNamespace(client=client), d, mine))
    ours = _Client(mine, d)
    snap(ours)
    assert ours.updates == []
    clash = _Client(theirs, {**d, "status": {"numberReady": 1}})
    with pytest.raises(errors.AlreadyExists):
        snap(clash)
    ((obj, sub),) = clash.updates
    assert sub == "status" and obj["status"] == {"numberReady": 1, "collisionCount": 1}
    stale = _Client(theirs, {**d, "status": {"collisionCount": 1}})
    with pytest.raises(errors.Conflict):
        snap(stale)
    assert stale.updates == []
