"""The StatefulSet controller's pure decisions (netemu.controllers.statefulset_plan), after
upstream pkg/controller/statefulset/stateful_set_control.go at v1.32 (kubernetes v1.32.0)."""

from netemu.api import errors
from netemu.controllers import statefulset_plan as sp

UID = "u-1"


def sts(replicas=3, policy="OrderedReady", strategy=None, image="nginx:1", **spec):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": UID, "generation": 2},
            "spec": {"replicas": replicas, "serviceName": "nginx", "podManagementPolicy": policy,
                     "selector": {"matchLabels": {"app": "nginx"}},
                     "updateStrategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                     "template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}, **spec}}


def pod(s, ordinal, healthy=True, revision=None, deleting=False, phase=None):
    p = sp.pod_for(s, ordinal, revision or sp.revision_name(s), s["spec"]["template"])
    p["status"] = {"phase": phase or ("Running" if healthy else "Pending"),
                   "conditions": [{"type": "Ready", "status": "True" if healthy else "False"}]}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-12-06T09:00:00Z"
    return p


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_pod_identity():
    s = sts()
    p = sp.pod_for(s, 2, "web-abc", s["spec"]["template"])
    assert p["metadata"]["name"] == "web-2" and p["spec"]["hostname"] == "web-2" and p["spec"]["subdomain"] == "nginx"
    assert p["metadata"]["labels"] == {"app": "nginx", sp.POD_NAME_LABEL: "web-2", sp.POD_INDEX_LABEL: "2",
                                       sp.REVISION_LABEL: "web-abc"}
    assert p["metadata"]["ownerReferences"][0]["uid"] == UID
    assert "hostname" not in s["spec"]["template"]["spec"]        # the template is not touched


def test_revision_follows_the_template_only():
    a, b = sts(), sts(replicas=7)
    assert sp.revision_name(a) == sp.revision_name(b) and sp.revision_name(a).startswith("web-")
    assert sp.revision_name(sts(image="nginx:2")) != sp.revision_name(a)


def test_ordered_ready_creates_one_at_a_time_after_the_previous_is_ready():
    s = sts()
    assert sp.plan(s, [], sp.revision_name(s)).create == [0]
    waiting = sp.plan(s, [pod(s, 0, healthy=False)], sp.revision_name(s))
    assert waiting.create == [] and "web-0" in waiting.waiting
    assert sp.plan(s, [pod(s, 0)], sp.revision_name(s)).create == [1]


def test_parallel_creates_all_at_once():
    s = sts(policy="Parallel")
    assert sp.plan(s, [pod(s, 1, healthy=False)], sp.revision_name(s)).create == [0, 2]


def test_deleted_pod_recreated_with_its_name():
    s = sts()
    assert sp.plan(s, [pod(s, 0), pod(s, 2)], sp.revision_name(s)).create == [1]


def test_failed_pod_is_deleted_to_be_recreated():
    s = sts()
    assert names(sp.plan(s, [pod(s, 0, phase="Failed")], sp.revision_name(s)).delete) == ["web-0"]


def test_ordered_scale_down_highest_first_one_at_a_time():
    s = sts(replicas=1)
    pods = [pod(s, 0), pod(s, 1), pod(s, 2)]
    assert names(sp.plan(s, pods, sp.revision_name(s)).delete) == ["web-2"]
    p = sp.plan(s, [pod(s, 0), pod(s, 1), pod(s, 2, deleting=True)], sp.revision_name(s))
    assert p.delete == [] and "web-2" in p.waiting
    par = sts(replicas=1, policy="Parallel")
    assert names(sp.plan(par, [pod(par, 0), pod(par, 1), pod(par, 2)], sp.revision_name(par)).delete) == ["web-2", "web-1"]


def test_rolling_update_from_the_highest_ordinal_down():
    old = sts()
    new = sts(image="nginx:2")
    upd = sp.revision_name(new)
    pods = [pod(old, i) for i in range(3)]
    assert names(sp.plan(new, pods, upd).delete) == ["web-2"]
    pods[2] = pod(new, 2, healthy=False)
    p = sp.plan(new, pods, upd)
    assert p.delete == [] and "web-2" in p.waiting           # the updated pod must be ready first
    pods[2] = pod(new, 2)
    assert names(sp.plan(new, pods, upd).delete) == ["web-1"]


def test_partition_keeps_lower_ordinals_and_recreates_them_at_the_current_revision():
    new = sts(image="nginx:2", strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    cur, upd = sp.revision_name(sts()), sp.revision_name(new)
    pods = [pod(sts(), 0), pod(sts(), 1), pod(new, 2)]
    assert sp.plan(new, pods, upd).delete == []
    assert sp.create_revision(new, 1, cur, upd) == cur and sp.create_revision(new, 2, cur, upd) == upd


def test_on_delete_never_deletes_for_an_update():
    new = sts(image="nginx:2", strategy={"type": "OnDelete"})
    pods = [pod(sts(), i) for i in range(3)]
    assert sp.plan(new, pods, sp.revision_name(new)).delete == []


def test_status_and_rollout_completion():
    old, new = sts(), sts(image="nginx:2")
    cur, upd = sp.revision_name(old), sp.revision_name(new)
    new["status"] = {"currentRevision": cur}
    mid = sp.status_for(new, [pod(old, 0), pod(old, 1), pod(new, 2, healthy=False)], upd, lambda p: True)
    assert mid == {"observedGeneration": 2, "replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
                   "currentReplicas": 2, "updatedReplicas": 1, "currentRevision": cur, "updateRevision": upd,
                   "collisionCount": 0}
    done = sp.status_for(new, [pod(new, i) for i in range(3)], upd, lambda p: True)
    assert done["currentRevision"] == upd and done["currentReplicas"] == 3 and done["updatedReplicas"] == 3
    terminating = sp.status_for(new, [pod(new, 0), pod(new, 1, deleting=True)], upd, lambda p: True)
    assert terminating["replicas"] == 1


def test_template_of_pod_round_trips_to_the_same_pod():
    s = sts()
    p = pod(s, 1)
    p["spec"]["nodeName"] = "n1"
    again = sp.pod_for(s, 1, sp.revision_of(p), sp.template_of_pod(p))
    assert again["spec"] == {k: v for k, v in p["spec"].items() if k != "nodeName"}
    assert again["metadata"]["labels"] == p["metadata"]["labels"]


def _revisions(*sets):
    from netemu.controllers import statefulset_history as sh
    return [sh.new_revision(s, i + 1) for i, s in enumerate(sets)]


def test_history_creates_renumbers_and_truncates():
    from netemu.controllers import statefulset_history as sh
    v1, v2 = sts(), sts(image="nginx:2")
    first = sh.plan_history(v1, [], [], sp.revision_name(v1))
    assert first.create["metadata"]["name"] == sp.revision_name(v1) and first.create["revision"] == 1
    assert first.create["data"]["spec"]["template"]["$patch"] == "replace"
    assert sh.template_of(first.create) == v1["spec"]["template"]
    assert first.create["metadata"]["labels"][sp.REVISION_LABEL] == sp.revision_name(v1)
    # back to v1 after v2: v1's object becomes revision 3, nothing new is made
    back = sh.plan_history(v1, _revisions(v1, v2), [], sp.revision_name(v2))
    assert back.create is None and back.renumber["revision"] == 3
    # limit 1: of the old revisions no pod uses, only the newest stays
    v3 = sts(image="nginx:3", revisionHistoryLimit=1)
    revs = _revisions(v1, v2, sts(image="nginx:4"))
    cut = sh.plan_history(v3, revs, [pod(v2, 0)], sp.revision_name(v3))
    assert names(cut.delete) == [sp.revision_name(v1)]     # v2 is in use by a pod, v4 is newest


def test_revision_ownership():
    """What StatefulSetController._claim keeps of the namespace's revisions (claim.claim)."""
    from netemu.controllers import claim, statefulset_history as sh
    s = sts()
    mine = sh.new_revision(s, 1)
    other = sh.new_revision({**s, "metadata": {**s["metadata"], "uid": "u-2"}}, 1)
    assert claim.claim(s, [mine, other]).owned == [mine]


class _Api:
    """Answers a delete as the API server does with a uid precondition."""

    def __init__(self, live):
        self.live, self.deletes = live, []

    async def create(self, rt, obj, ns):
        return obj

    async def delete(self, rt, name, ns=None, preconditions=None, **options):
        self.deletes.append((name, preconditions))
        if name not in self.live:
            raise errors.NotFound(f"{name} not found")
        if preconditions and preconditions.get("uid") != self.live[name]:
            raise errors.Conflict(f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                                  f"UID in object meta: {self.live[name]}")
        del self.live[name]


def test_old_revisions_are_deleted_only_if_still_the_ones_seen():
    """A revision beyond revisionHistoryLimit is deleted with a uid precondition (as the
    DaemonSet's, netemu.controllers.runtime.delete_seen): one recreated under its name since the
    cache saw it is kept, and the Conflict is not an error; one already gone is not either."""
    import asyncio
    from types import SimpleNamespace

    from netemu.controllers.statefulset import StatefulSetController
    v3 = sts(image="nginx:3", revisionHistoryLimit=0)
    old = _revisions(sts(), sts(image="nginx:2"))
    for i, rev in enumerate(old):
        rev["metadata"]["uid"] = f"seen-{i}"
    api = _Api({old[0]["metadata"]["name"]: "recreated"})          # old[1] is gone already
    ctl = SimpleNamespace(client=api)
    asyncio.run(StatefulSetController._history(ctl, v3, old, [], sp.revision_name(v3)))
    assert sorted(api.deletes) == sorted([(old[0]["metadata"]["name"], {"uid": "seen-0"}),
                                          (old[1]["metadata"]["name"], {"uid": "seen-1"})])
    assert api.live == {old[0]["metadata"]["name"]: "recreated"}
