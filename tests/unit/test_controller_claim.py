"""Which pods a ReplicaSet adopts, releases and counts: upstream's ClaimObject/ClaimPods and the
ReplicaSet's use of them; the DaemonSet's and StatefulSet's canAdopt recheck. Pure (a fake client
and caches, no API server).

Ported from kubernetes/kubernetes as stored by the read_file tool:
- pkg/controller/controller_ref_manager_test.go @ 04791b4906602ffda5ccf9bc4c84d3329f1d7080:
  TestClaimPods (all nine cases; the finalizers of the seventh are the Job's, netemu's claim
  has none, so the case runs without them);
- pkg/controller/replicaset/replica_set_test.go @ 003e86297d18a8538c9da3619871393f9703bf70:
  TestDoNotPatchPodWithOtherControlRef, TestDoNotAdoptOrCreateIfBeingDeleted,
  TestDoNotAdoptOrCreateIfBeingDeletedRace, TestRSSyncExpectations, TestPatchPodFails (both
  adoptions tried, the sync returns the error and creates nothing), TestPatchPodWithCorrectOwnerRef;
- the error rules of pkg/controller/controller_ref_manager.go (ClaimObject, ClaimPods'
  utilerrors.NewAggregate, AdoptPod, ReleasePod, ownerRefControllerPatch,
  GenerateDeleteOwnerRefStrategicMergeBytes; read @ b4d1ea126cfbc984f7f30852b9384160cf10ce7d, the
  rules unchanged in v1.32), and the v1.32 syncs that return the claim's error: syncReplicaSet,
  the DaemonSet's constructHistory (ClaimControllerRevisions) before manage (ClaimPods), the
  StatefulSet's sync (adoptOrphanRevisions, first error returned, then getPodsForStatefulSet).
- the order of syncReplicaSet in replica_set.go @ the same commit (the v1.32 shape: the
  expectations are read first, then ``controller.FilterActivePods`` over every pod of the
  namespace, then claimPods with canAdopt = an uncached GET that the set is not being deleted).
"""

import asyncio
import copy
from types import SimpleNamespace

import pytest

from netemu.api import errors, kinds, patch as api_patch, strategy
from netemu.controllers import claim
from netemu.controllers.kube import name_of, ns_of
from netemu.controllers.daemonset import DaemonSetController
from netemu.controllers.replicaset import ReplicaSetController
from netemu.controllers.statefulset import StatefulSetController

PROD, TEST = {"type": "production"}, {"type": "testing"}
NOW = "2026-01-01T00:00:00Z"


def owner(uid="123", ns="default", deleting=False, replicas=2):
    o = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
         "metadata": {"name": "rs", "namespace": ns, "uid": uid, "resourceVersion": "1", "generation": 1},
         "spec": {"replicas": replicas, "selector": {"matchLabels": dict(PROD)},
                  "template": {"metadata": {"labels": dict(PROD)}, "spec": {"containers": [{"name": "c"}]}}}}
    if deleting:
        o["metadata"]["deletionTimestamp"] = NOW
    return o


def pod(name, labels, controller=None, ns="default", deleting=False, phase="Running"):
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": ns, "labels": dict(labels), "resourceVersion": "5"},
         "spec": {}, "status": {"phase": phase}}
    if controller is not None:
        p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                             "uid": controller, "controller": True}]
    if deleting:
        p["metadata"]["deletionTimestamp"] = NOW
    return p


class _Api:
    """Records writes; ``fresh`` is what an uncached GET of the ReplicaSet answers."""

    def __init__(self, fresh=None):
        self.fresh, self.gets, self.patches, self.created, self.deleted = fresh, 0, [], [], []

    async def get(self, rt, name, ns=None):
        self.gets += 1
        return copy.deepcopy(self.fresh)

    async def patch(self, rt, name, body, ns=None, patch_type="merge"):
        self.patches.append((name, body))
        return body

    async def create(self, rt, obj, ns):
        self.created.append(obj)
        md = obj["metadata"]
        return {**obj, "metadata": {**md, "name": md.get("name") or md["generateName"] + "x"}}

    async def delete(self, rt, name, ns):
        self.deleted.append(name)

    async def update(self, rt, obj, subresource=None):
        return obj


def _claim(rs, pods, api=None):
    api = api or _Api(fresh=rs)
    got = asyncio.run(claim.write(api, "pods", rs, claim.claim(rs, pods)))
    return [name_of(p) for p in got], len(api.patches)


# ---- TestClaimPods -----------------------------------------------------------------------------

def test_claims_pods_with_the_correct_label():
    assert _claim(owner(uid=""), [pod("pod1", PROD), pod("pod2", TEST)]) == (["pod1"], 1)


def test_an_owner_marked_for_deletion_claims_no_orphans():
    assert _claim(owner(deleting=True), [pod("pod1", PROD), pod("pod2", PROD)]) == ([], 0)


def test_an_owner_marked_for_deletion_keeps_its_own_but_claims_no_new_pods():
    assert _claim(owner(deleting=True), [pod("pod1", PROD, "123"), pod("pod2", PROD)]) == (["pod1"], 0)


def test_pods_owned_by_another_controller_are_not_claimed():
    assert _claim(owner(), [pod("pod1", PROD, "123"), pod("pod2", PROD, "AAAAA")]) == (["pod1"], 0)


def test_owned_pods_the_selector_no_longer_matches_are_released():
    rs = owner()
    step = claim.claim(rs, [pod("pod1", PROD, "123"), pod("pod2", TEST, "123")])
    assert [name_of(p) for p in step.release] == ["pod2"]
    assert _claim(rs, [pod("pod1", PROD, "123"), pod("pod2", TEST, "123")]) == (["pod1"], 1)


def test_orphans_being_deleted_are_not_claimed_but_own_pods_being_deleted_are():
    pods = [pod("pod1", PROD, "123", deleting=True), pod("pod2", PROD, deleting=True)]
    assert _claim(owner(), pods) == (["pod1"], 0)


def test_claims_and_releases_by_the_selector():
    pods = [pod("pod1", PROD, "123"), pod("pod2", TEST, "123"), pod("pod3", PROD)]
    assert _claim(owner(), pods) == (["pod1", "pod3"], 2)


def test_pods_of_another_namespace_are_not_claimed():
    assert _claim(owner(), [pod("pod1", PROD), pod("pod2", PROD, ns="fakens")]) == (["pod1"], 1)


def test_a_cluster_scoped_owner_claims_pods_of_any_namespace():
    assert _claim(owner(ns=""), [pod("pod1", PROD), pod("pod2", PROD, ns="fakens")]) == (["pod1", "pod2"], 2)


# ---- the ReplicaSet's sync ---------------------------------------------------------------------

class _Cache:
    def __init__(self, objs):
        self.objs = {(ns_of(o), name_of(o)): o for o in objs}
        self.handlers = []

    def get(self, name, ns=None):
        return self.objs.get((ns or "", name))

    def list(self, ns=None):
        return [o for (n, _), o in self.objs.items() if ns is None or n == ns]

    def add_handler(self, on_add=None, on_update=None, on_delete=None):
        self.handlers.append((on_add, on_update, on_delete))


def _sync(cached_rs, pods, fresh=None, cls=ReplicaSetController, revisions=(), nodes=()):
    api = _Api(fresh=fresh if fresh is not None else cached_rs)
    caches = {cached_rs["kind"]: _Cache([cached_rs]), "Pod": _Cache(pods), "ControllerRevision": _Cache(revisions),
              "Node": _Cache(nodes)}
    ctl = cls(api, caches, SimpleNamespace(), SimpleNamespace(event=lambda *a, **k: None))
    ctl.setup()

    async def run():
        await ctl.sync("default/rs")
    return ctl, api, run


def test_a_matching_pod_of_another_controller_is_not_patched_and_two_pods_are_made():
    ctl, api, run = _sync(owner(), [pod("pod", PROD, "other-uid")])
    asyncio.run(run())
    assert api.patches == [] and len(api.created) == 2 and api.deleted == []


def test_a_set_being_deleted_neither_adopts_nor_creates():
    ctl, api, run = _sync(owner(deleting=True), [pod("pod1", PROD)])
    asyncio.run(run())
    assert api.patches == [] and api.created == [] and api.gets == 0


def test_a_set_the_server_says_is_being_deleted_adopts_nothing_and_the_sync_fails():
    """The cache is behind: only the uncached re-read sees the deletion (kubernetes#42639)."""
    ctl, api, run = _sync(owner(), [pod("pod1", PROD)], fresh=owner(deleting=True))
    with pytest.raises(claim.CannotAdopt):
        asyncio.run(run())
    assert api.gets == 1 and api.patches == [] and api.created == []


def test_a_recreated_set_of_the_same_name_adopts_nothing():
    ctl, api, run = _sync(owner(), [pod("pod1", PROD)], fresh=owner(uid="456"))
    with pytest.raises(claim.CannotAdopt, match="is gone"):
        asyncio.run(run())
    assert api.patches == [] and api.created == []


def test_a_set_being_deleted_releases_nothing():
    ctl, api, run = _sync(owner(deleting=True), [pod("pod1", PROD, "123"), pod("pod2", TEST, "123")])
    asyncio.run(run())
    assert api.patches == [] and api.created == [] and api.deleted == []


def test_finished_and_terminating_pods_are_neither_adopted_released_nor_counted():
    """FilterActivePods runs before ClaimPods: an owned finished pod that stopped matching keeps
    its owner (the old netemu released it), a finished orphan is not adopted, and neither is a
    replica, so two are made."""
    pods = [pod("done", TEST, "123", phase="Succeeded"), pod("failed-orphan", PROD, phase="Failed"),
            pod("going", TEST, "123", deleting=True)]
    ctl, api, run = _sync(owner(), pods)
    asyncio.run(run())
    assert api.patches == [] and api.gets == 0 and len(api.created) == 2


def test_an_adoption_is_checked_once_and_counted_as_a_replica():
    pods = [pod("o1", PROD), pod("o2", PROD), pod("mine", TEST, "123")]
    ctl, api, run = _sync(owner(), pods)
    asyncio.run(run())
    assert api.gets == 1 and sorted(n for n, _ in api.patches) == ["mine", "o1", "o2"]
    assert api.created == [] and api.deleted == []           # o1 and o2 are the two replicas


def test_expectations_are_read_before_the_pods():
    """TestRSSyncExpectations: a pod that shows up between the two reads must not make the set
    think it is short of one (the old netemu read the expectations after its claim writes)."""
    ctl, api, run = _sync(owner(replicas=2), [pod("p1", PROD, "123")])
    ctl.expectations.expect_create("default/rs", "p2")
    late = pod("p2", PROD, "123")

    async def patch_then_arrive(rt, name, body, ns=None, patch_type="merge"):
        ctl.cache("Pod").objs[("default", "p2")] = late       # the informer delivers it meanwhile
        ctl.expectations.observed_create("default/rs", "p2")
        return body
    api.patch = patch_then_arrive
    ctl.cache("Pod").objs[("default", "o")] = pod("o", TEST, "123")   # a release: one await
    asyncio.run(run())
    assert api.created == []


def test_an_orphan_relabelled_to_match_wakes_the_set():
    ctl, api, run = _sync(owner(), [])
    on_update = [h for h in ctl.cache("Pod").handlers if h[1] is not None]
    before, after = pod("x", TEST), pod("x", PROD)
    for _, update, _ in on_update:
        update(before, after)
    assert "default/rs" in ctl.queue._queued


@pytest.mark.parametrize("cls,kind", [(DaemonSetController, "DaemonSet"), (StatefulSetController, "StatefulSet")])
def test_daemonsets_and_statefulsets_recheck_before_adopting_too(cls, kind):
    """An orphan pod (named as the StatefulSet's ordinal 0) and an orphan ControllerRevision: the
    server says the set is being deleted, so neither is adopted and the sync fails."""
    cached, fresh = owner(), owner(deleting=True)
    for o in (cached, fresh):
        o["kind"] = kind
    revision = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 1,
                "metadata": {"name": "rs-1", "namespace": "default", "labels": dict(PROD), "resourceVersion": "3"}}
    ctl, api, run = _sync(cached, [pod("rs-0", PROD)], fresh=fresh, cls=cls, revisions=[revision])
    with pytest.raises(claim.CannotAdopt, match="has just been deleted"):
        asyncio.run(run())
    assert api.gets == 1 and api.patches == [] and api.created == []


# ---- failed adoptions and releases (ClaimObject's error rules) ---------------------------------

class _Failing(_Api):
    """Patches of the names in ``fail`` raise that error, after being recorded (a tried patch)."""

    def __init__(self, fresh=None, **fail):
        super().__init__(fresh)
        self.fail = fail

    async def patch(self, rt, name, body, ns=None, patch_type="merge"):
        self.patches.append((name, body))
        if name in self.fail:
            raise self.fail[name]
        return body


def _sync_failing(cached, pods, fail, **kw):
    ctl, api, run = _sync(cached, pods, **kw)
    failing = _Failing(api.fresh, **fail)
    ctl.client = failing
    return failing, run


def test_both_failed_adoptions_are_tried_and_the_sync_fails_without_creating():
    """TestPatchPodFails: two orphans, both patches fail; upstream tries both, returns the
    aggregate, and creates nothing (the old netemu stopped at the first, or, for a Conflict,
    carried on and created two pods)."""
    boom = RuntimeError("fake Error")
    api, run = _sync_failing(owner(replicas=2), [pod("pod1", PROD), pod("pod2", PROD)], {"pod1": boom, "pod2": boom})
    with pytest.raises(claim.ClaimErrors, match="fake Error") as got:
        asyncio.run(run())
    assert got.value.errors == [boom, boom]
    assert [n for n, _ in api.patches] == ["pod1", "pod2"] and api.created == [] and api.deleted == []


@pytest.mark.parametrize("exc", [errors.Conflict("the object has been modified"),
                                 errors.Invalid("Only one reference can have Controller set to true")])
def test_an_adoption_lost_to_a_race_fails_the_sync(exc):
    """Upstream ClaimObject returns every adoption error but NotFound: the set is retried and
    does not make a pod for the one it failed to adopt."""
    api, run = _sync_failing(owner(replicas=2), [pod("pod1", PROD), pod("mine", PROD, "123")], {"pod1": exc})
    with pytest.raises(type(exc)):
        asyncio.run(run())
    assert api.created == [] and api.deleted == []


def test_an_adoption_of_a_pod_gone_meanwhile_is_ignored_and_the_pod_not_counted():
    api, run = _sync_failing(owner(replicas=2), [pod("pod1", PROD), pod("mine", PROD, "123")],
                             {"pod1": errors.NotFound("pods \"pod1\" not found")})
    asyncio.run(run())
    assert len(api.created) == 1


@pytest.mark.parametrize("exc", [errors.NotFound("gone"), errors.Invalid("metadata.uid: field is immutable")])
def test_a_release_of_a_pod_gone_or_recreated_is_ignored(exc):
    """ReleasePod: NotFound and Invalid (the uid guard of a recreated pod) are not errors."""
    api, run = _sync_failing(owner(replicas=1), [pod("stale", TEST, "123"), pod("mine", PROD, "123")],
                             {"stale": exc})
    asyncio.run(run())
    assert [n for n, _ in api.patches] == ["stale"] and api.created == []


def test_any_other_failed_release_fails_the_sync():
    api, run = _sync_failing(owner(replicas=2), [pod("stale", TEST, "123")], {"stale": errors.Conflict("busy")})
    with pytest.raises(errors.Conflict):
        asyncio.run(run())
    assert api.created == []


def test_every_failure_is_reported_and_the_releases_still_made():
    """ClaimPods collects one error per pod: a denied canAdopt fails each adoption (AdoptPod's
    "can't adopt Pod ..."), the release after them is still sent."""
    rs = owner()
    api = _Api(fresh=owner(deleting=True))
    step = claim.claim(rs, [pod("o1", PROD), pod("o2", PROD), pod("stale", TEST, "123")])
    with pytest.raises(claim.ClaimErrors) as got:
        asyncio.run(claim.write(api, kinds.by_resource("", "v1", "pods"), rs, step,
                                claim.recheck_deletion(api, "rs", rs)))
    assert [str(e).split(" (")[0] for e in got.value.errors] == ["can't adopt Pod default/o1", "can't adopt Pod default/o2"]
    assert all("has just been deleted" in str(e) for e in got.value.errors)
    assert api.gets == 1 and [n for n, _ in api.patches] == ["stale"]


def _stored(p):
    md = {k: v for k, v in p["metadata"].items() if k != "resourceVersion"}
    return strategy.prepare_create(kinds.by_resource("", "v1", "pods"),
                                   {**p, "metadata": md, "spec": {"containers": [{"name": "c", "image": "i"}]}}, now=NOW)


def _server_patch(stored, body):
    """What the API server does with the patch (strategic merge, then update validation)."""
    new = api_patch.strategic_merge_patch(stored, body, "Pod")
    return strategy.prepare_update(kinds.by_resource("", "v1", "pods"), stored, new)


def test_the_patches_are_upstreams_strategic_merges_guarded_by_the_uid():
    """TestPatchPodWithCorrectOwnerRef: a plain reference to the set becomes its controller
    reference (merged by uid, not appended); another controller's reference or a pod recreated
    under the same name makes the patch Invalid; a release drops only the set's reference."""
    rs, plain = owner(), pod("p", PROD)
    plain["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "123"}]
    stored = _stored(plain)
    adopted = _server_patch(stored, claim.adopt_patch(rs, stored))
    assert adopted["metadata"]["ownerReferences"] == [{**claim.owner_ref(rs)}]
    with pytest.raises(errors.Invalid, match="Only one reference"):
        _server_patch(adopted, claim.adopt_patch(owner(uid="456"), adopted))
    with pytest.raises(errors.Invalid, match="metadata.uid"):
        _server_patch(_stored(pod("p", PROD)), claim.adopt_patch(rs, stored))
    other = {"apiVersion": "v1", "kind": "Service", "name": "s", "uid": "s1"}
    both = {**adopted, "metadata": {**adopted["metadata"], "ownerReferences": [other, claim.owner_ref(rs)]}}
    assert _server_patch(both, claim.release_patch(rs, both))["metadata"]["ownerReferences"] == [other]


# ---- the DaemonSet's and StatefulSet's call sites ------------------------------------------------

def _as(kind, **kw):
    o = owner(**kw)
    o["kind"] = kind
    return o


def _revision(name="rs-1"):
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 1,
            "metadata": {"name": name, "namespace": "default", "labels": dict(PROD), "resourceVersion": "3"}}


NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {}}, "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


@pytest.mark.parametrize("cls,kind", [(DaemonSetController, "DaemonSet"), (StatefulSetController, "StatefulSet")])
def test_a_failed_pod_adoption_stops_daemonset_and_statefulset_syncs(cls, kind):
    """Without the failure each would make a pod (the DaemonSet for node n1, the StatefulSet
    its ordinal 1); upstream's manage / getPodsForStatefulSet return the ClaimPods error first."""
    api, run = _sync_failing(_as(kind, replicas=2), [pod("rs-0", PROD)], {"rs-0": errors.Conflict("raced")},
                             cls=cls, nodes=[NODE])
    with pytest.raises(errors.Conflict, match="raced"):
        asyncio.run(run())
    assert api.created == [] and api.deleted == []


@pytest.mark.parametrize("cls,kind", [(DaemonSetController, "DaemonSet"), (StatefulSetController, "StatefulSet")])
def test_a_failed_revision_adoption_stops_the_sync_before_the_pods(cls, kind):
    """Upstream claims revisions first (DaemonSet constructHistory, StatefulSet
    adoptOrphanRevisions): its failure ends the sync before any pod is adopted."""
    api, run = _sync_failing(_as(kind), [pod("rs-0", PROD)], {"rs-1": errors.Conflict("raced")}, cls=cls,
                             revisions=[_revision()])
    with pytest.raises(errors.Conflict, match="raced"):
        asyncio.run(run())
    assert [n for n, _ in api.patches] == ["rs-1"] and api.created == []


def test_a_statefulset_stops_at_its_first_failed_revision_adoption():
    """AdoptOrphanRevisions returns the first error, even NotFound, without trying the rest."""
    api, run = _sync_failing(_as("StatefulSet"), [], {"rs-1": errors.NotFound("gone")}, cls=StatefulSetController,
                             revisions=[_revision("rs-1"), _revision("rs-2")])
    with pytest.raises(errors.NotFound):
        asyncio.run(run())
    assert [n for n, _ in api.patches] == ["rs-1"] and api.created == []
