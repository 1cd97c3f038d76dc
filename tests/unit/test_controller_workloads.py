"""ReplicaSet and Deployment planners: pure decisions from API objects."""

from netemu.controllers import deployment, replicaset, rollout
from netemu.controllers.kube import name_of


def rs_obj(name, replicas, uid="rs-uid", available=None, status_replicas=None, created="2026-01-01T00:00:00Z",
           template=None, revision=1):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default", "uid": uid, "creationTimestamp": created,
                         "generation": 1, "annotations": {rollout.REVISION: str(revision)}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": template or {"metadata": {"labels": {"app": "web"}},
                                              "spec": {"containers": [{"name": "c", "image": "v1"}]}}},
            "status": {"replicas": replicas if status_replicas is None else status_replicas,
                       "availableReplicas": replicas if available is None else available}}


def pod_obj(name, owner_uid="rs-uid", node=None, ready=False, phase="Pending", created="2026-01-01T00:00:00Z",
            ready_since="2026-01-01T00:00:00Z", labels=None):
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": "default", "creationTimestamp": created,
                      "labels": labels if labels is not None else {"app": "web"},
                      "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "uid": owner_uid, "controller": True}]},
         "spec": {"nodeName": node} if node else {},
         "status": {"phase": phase,
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                    "lastTransitionTime": ready_since}]}}
    if owner_uid is None:
        del p["metadata"]["ownerReferences"]
    return p


def deploy_obj(replicas=3, image="v1", strategy=None, generation=1):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": generation},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": strategy or {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {}}


# ---- ReplicaSet ---------------------------------------------------------------------------------

def test_replicaset_creates_missing_and_deletes_worst_first():
    rs = rs_obj("rs", 3)
    assert replicaset.plan(rs, [pod_obj("a")]).create == 2
    pods = [pod_obj("ready", node="n", ready=True, phase="Running"),
            pod_obj("unscheduled"),
            pod_obj("running-notready", node="n", phase="Running"),
            pod_obj("ready-new", node="n", ready=True, phase="Running", ready_since="2026-01-02T00:00:00Z"),
            pod_obj("ready2", node="n", ready=True, phase="Running", created="2026-01-01T00:00:01Z")]
    rs["spec"]["replicas"] = 1
    order = [name_of(p) for p in replicaset.plan(rs, pods).delete]
    assert order == ["unscheduled", "running-notready", "ready-new", "ready2"]


def test_replicaset_status_counts_and_pod_template():
    rs = rs_obj("rs", 2)
    rs["spec"]["minReadySeconds"] = 0
    terminating = pod_obj("t", ready=True)
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    st = replicaset.status_for(rs, [pod_obj("a", ready=True), pod_obj("b"), terminating], now=1e10)
    assert (st["replicas"], st["readyReplicas"], st["availableReplicas"]) == (2, 1, 1)
    pod = replicaset.pod_from_template(rs, "rs-abcde")
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "rs-uid"
    assert pod["metadata"]["ownerReferences"][0]["controller"] is True
    assert pod["metadata"]["labels"] == {"app": "web"}


def test_min_ready_seconds_delays_availability():
    p = pod_obj("a", ready=True, ready_since="2026-01-01T00:00:00Z")
    t0 = 1767225600.0  # 2026-01-01T00:00:00Z
    assert not replicaset.is_available(p, 10, t0 + 5)
    assert replicaset.is_available(p, 10, t0 + 11)


def test_orphans_adopted_only_when_selector_matches():
    rs = rs_obj("rs", 1)
    orphan, other = pod_obj("o", owner_uid=None), pod_obj("x", owner_uid=None, labels={"app": "db"})
    assert replicaset.claim_step(rs, [orphan, other]).adopt == [orphan]


# ---- rollout arithmetic ----------------------------------------------------------------------------

def test_fenceposts_round_surge_up_and_unavailable_down():
    d = deploy_obj(replicas=10)
    assert rollout.fenceposts(d) == (3, 2)
    d["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 0, "maxUnavailable": 0}
    assert rollout.fenceposts(d) == (0, 1)


def test_template_hash_ignores_hash_label_and_changes_with_image():
    d1, d2 = deploy_obj(image="v1"), deploy_obj(image="v2")
    h1 = rollout.template_hash(d1["spec"]["template"])
    assert h1 != rollout.template_hash(d2["spec"]["template"])
    labelled = deployment.new_replicaset(d1, 3, 1)
    assert labelled["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == h1
    assert rollout.find_new_rs(d1, [labelled]) is labelled
    assert rollout.find_new_rs(d2, [labelled]) is None


def test_first_step_creates_new_rs_with_all_replicas():
    step = deployment.plan(deploy_obj(replicas=4), [], 0)
    assert step.create["spec"]["replicas"] == 4
    assert step.create["metadata"]["annotations"][rollout.REVISION] == "1"
    assert step.create["metadata"]["ownerReferences"][0]["uid"] == "d-uid"


def _rolling_cluster(replicas=4, image="v2"):
    d = deploy_obj(replicas=replicas, image="v2")
    old_tpl = deploy_obj(image="v1")["spec"]["template"]
    old = rs_obj("web-old", replicas, uid="old", template=old_tpl)
    return d, old


def test_rolling_update_surges_then_scales_old_down_within_bounds():
    d, old = _rolling_cluster()
    step = deployment.plan(d, [old], 4)
    assert step.create["spec"]["replicas"] == 1          # maxSurge 25% of 4 = 1
    assert step.create["metadata"]["annotations"][rollout.REVISION] == "2"
    new = rs_obj("web-new", 1, uid="new", available=0, template=step.create["spec"]["template"],
                 created="2026-01-02T00:00:00Z")
    # new pod not yet available: old may drop by maxUnavailable (1) only
    step = deployment.plan(d, [old, new], 4)
    assert step.scale == {"web-old": 3}
    old3 = rs_obj("web-old", 3, uid="old", template=old["spec"]["template"])
    step = deployment.plan(d, [old3, new], 3)
    assert step.scale == {"web-new": 2}
    new2 = rs_obj("web-new", 2, uid="new", available=0, template=new["spec"]["template"], created="2026-01-02T00:00:00Z")
    assert deployment.plan(d, [old3, new2], 3).scale == {}  # must wait: 3 available = min


def test_rolling_update_never_goes_below_min_available():
    """Simulate the rollout with instantly ready pods: available never < replicas - maxUnavailable."""
    d, old = _rolling_cluster(replicas=5)
    rss = [old]
    for _ in range(50):
        step = deployment.plan(d, rss, 0)
        if step.create:
            rs = step.create
            rs["metadata"]["uid"] = "new"
            rs["metadata"]["creationTimestamp"] = "2026-01-02T00:00:00Z"
            rss.append(rs)
            rs["status"] = {"replicas": 0, "availableReplicas": 0}
        for name, n in step.scale.items():
            for rs in rss:
                if name_of(rs) == name:
                    rs["spec"]["replicas"] = n
        for rs in rss:  # pods become available right away (after one step)
            rs["status"] = {"replicas": rs["spec"]["replicas"], "availableReplicas": rs["spec"]["replicas"]}
        available = sum(rs["status"]["availableReplicas"] for rs in rss)
        assert available >= 5 - 1
        assert sum(rs["spec"]["replicas"] for rs in rss) <= 5 + 2
        if not step.create and not step.scale:
            break
    assert [rs["spec"]["replicas"] for rs in rss] == [0, 5]


def test_recreate_scales_old_to_zero_and_waits_for_pods():
    d, old = _rolling_cluster()
    d["spec"]["strategy"] = {"type": "Recreate"}
    assert deployment.plan(d, [old], 4).scale == {"web-old": 0}
    old0 = rs_obj("web-old", 0, uid="old", template=old["spec"]["template"], status_replicas=0)
    step = deployment.plan(d, [old0], 2)
    assert step.create["spec"]["replicas"] == 0
    new = rs_obj("web-new", 0, uid="new", template=step.create["spec"]["template"])
    assert deployment.plan(d, [old0, new], 1).scale == {}
    assert deployment.plan(d, [old0, new], 0).scale == {"web-new": 4}


def test_scale_down_new_rs_directly():
    d = deploy_obj(replicas=2)
    rs = deployment.new_replicaset(deploy_obj(replicas=5), 5, 1)
    assert deployment.plan(d, [rs], 0).scale == {name_of(rs): 2}


def test_history_limit_deletes_oldest_idle():
    d = deploy_obj(replicas=1)
    d["spec"]["revisionHistoryLimit"] = 1
    cur = deployment.new_replicaset(d, 1, 3)
    cur["status"] = {"replicas": 1, "availableReplicas": 1}
    olds = [rs_obj(f"old{i}", 0, uid=f"o{i}", status_replicas=0, revision=i,
                   template=deploy_obj(image=f"x{i}")["spec"]["template"]) for i in (1, 2)]
    assert deployment.plan(d, olds + [cur], 0).delete == ["old1"]


def test_status_conditions_like_upstream():
    d = deploy_obj(replicas=2)
    new = deployment.new_replicaset(d, 2, 1)
    new["status"] = {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}
    st = rollout.deployment_status(d, new, [new], 1e9)
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conds["Progressing"]["message"] == f'ReplicaSet "{name_of(new)}" has successfully progressed.'
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"], st["observedGeneration"]) == (2, 2, 2, 1)
    new["status"] = {"replicas": 2, "availableReplicas": 0}
    st = rollout.deployment_status(d, new, [new], 1e9, created_new=True)
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Available"]["status"] == "False" and conds["Available"]["reason"] == "MinimumReplicasUnavailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetCreated"
    assert st["unavailableReplicas"] == 2


def test_progress_deadline_exceeded():
    d = deploy_obj(replicas=2)
    d["spec"]["progressDeadlineSeconds"] = 10
    new = deployment.new_replicaset(d, 2, 1)
    new["status"] = {"replicas": 2, "availableReplicas": 0}
    d["status"] = {"replicas": 2, "updatedReplicas": 2, "conditions": [
        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
         "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    st = rollout.deployment_status(d, new, [new], 1767225600.0 + 60)
    prog = next(c for c in st["conditions"] if c["type"] == "Progressing")
    assert (prog["status"], prog["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_stale_status_after_scale_down_does_not_scale_down_twice():
    d, old = _rolling_cluster(replicas=4)
    old3 = rs_obj("web-old", 3, uid="old", template=old["spec"]["template"], available=4, status_replicas=4)
    new = rs_obj("web-new", 2, uid="new", available=1, template=deploy_obj(image="v2")["spec"]["template"],
                 created="2026-01-02T00:00:00Z")
    # 3 old (the 4th is terminating, still in the stale status) + 1 new available: only 1 may go
    assert deployment.plan(d, [old3, new], 4).scale == {"web-old": 2}


def test_relabelled_pod_is_released():
    rs = rs_obj("rs", 2)
    keep, moved = pod_obj("a"), pod_obj("b", labels={"app": "other"})
    assert replicaset.claim_step(rs, [keep, moved]).release == [moved]


def test_rollback_takes_the_next_revision():
    d1 = deploy_obj(image="v1")
    rs1 = deployment.new_replicaset(d1, 0, 1)
    rs2 = deployment.new_replicaset(deploy_obj(image="v2"), 3, 2)
    assert deployment.revision_bump(d1, [rs1, rs2]) == 3
    assert deployment.revision_bump(deploy_obj(image="v2"), [rs1, rs2]) is None


def _annotated(rs, desired, max_replicas):
    rs["metadata"]["annotations"].update({rollout.DESIRED: str(desired), rollout.MAX_REPLICAS: str(max_replicas)})
    return rs


def test_scaling_mid_rollout_is_proportional_like_upstream():
    # upstream's documented example: 10 replicas, maxSurge 3, rollout in flight with 8 old + 5 new,
    # scaled to 15: the 5 extra (allowed 18 - 13) go 3 to the old set and 2 to the new
    d = deploy_obj(replicas=15, image="v2", strategy={"type": "RollingUpdate",
                                                      "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}})
    old = _annotated(rs_obj("web-old", 8, uid="old", template=deploy_obj(image="v1")["spec"]["template"]), 10, 13)
    new = _annotated(rs_obj("web-new", 5, uid="new", available=0, template=d["spec"]["template"],
                            created="2026-01-02T00:00:00Z", revision=2), 10, 13)
    assert rollout.is_scaling_event(d, [old, new])
    step = deployment.plan(d, [old, new], 8)
    assert step.scale == {"web-old": 11, "web-new": 7}


def test_scaling_single_active_set_and_paused_deployment():
    d = deploy_obj(replicas=6)
    rs = _annotated(deployment.new_replicaset(deploy_obj(replicas=3), 3, 1), 3, 4)
    assert deployment.plan(d, [rs], 0).scale == {rs["metadata"]["name"]: 6}
    d["spec"]["paused"] = True
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "v9"   # no rollout while paused
    step = deployment.plan(d, [rs], 0)
    assert step.create is None and step.scale == {rs["metadata"]["name"]: 6}
    done = _annotated(deployment.new_replicaset(deploy_obj(replicas=6), 6, 1), 6, 8)
    assert deployment.plan(d, [done], 0).scale == {}  # nothing to write: no churn
