"""batch/v1 Job: defaults, generated selector, validation, table, and the controller's
decisions (pkg/apis/batch, pkg/registry/batch/job/strategy.go, pkg/controller/job of v1.32)."""

from __future__ import annotations

import datetime as dt

import pytest

from netemu.api import errors, kinds, strategy
from netemu.apiserver import tables
from netemu.controllers import job_plan as jp

NOW_S = "2026-01-01T00:00:00Z"
RT = kinds.by_kind("batch/v1", "Job")
T0 = 1_767_225_600.0           # 2026-01-01T00:00:00Z


def job(**spec) -> dict:
    body = {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
    body.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default"}, "spec": body}


def create(obj: dict) -> dict:
    return strategy.prepare_create(RT, obj, now=NOW_S)


def error_of(obj: dict) -> str:
    with pytest.raises(errors.StatusError) as exc:
        create(obj)
    return str(exc.value)


def test_defaults_and_generated_selector():
    out = create(job())
    spec, uid = out["spec"], out["metadata"]["uid"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["manualSelector"] is False and spec["completionMode"] == "NonIndexed"
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == labels["job-name"] == "pi"
    assert labels["controller-uid"] == uid and out["status"] == {}
    work_queue = create(job(parallelism=3))["spec"]
    assert "completions" not in work_queue and work_queue["parallelism"] == 3


@pytest.mark.parametrize("spec,want", [
    ({"parallelism": -1}, "spec.parallelism: Invalid value: -1: must be greater than or equal to 0"),
    ({"completions": -2}, "spec.completions: Invalid value: -2"),
    ({"backoffLimit": -1}, "spec.backoffLimit: Invalid value: -1"),
    ({"activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds: Invalid value: 0: must be greater than 0"),
    ({"selector": {"matchLabels": {"a": "b"}}}, "`selector` does not match template `labels`"),
])
def test_invalid_specs(spec, want):
    assert want in error_of(job(**spec))


def test_restart_policy_never_or_on_failure():
    body = job()
    body["spec"]["template"]["spec"].pop("restartPolicy")      # defaults to Always: refused
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in error_of(body)
    body["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    create(body)


def test_manual_selector_kept_and_must_match():
    body = job(manualSelector=True, selector={"matchLabels": {"app": "x"}})
    body["spec"]["template"]["metadata"] = {"labels": {"app": "x"}}
    assert create(body)["spec"]["selector"] == {"matchLabels": {"app": "x"}}


def test_template_and_selector_immutable():
    old = create(job())
    old["metadata"]["resourceVersion"] = "3"
    new = dict(old, spec=dict(old["spec"], template={**old["spec"]["template"], "spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:2"}]}}))
    with pytest.raises(errors.StatusError) as exc:
        strategy.prepare_update(RT, old, new)
    assert "spec.template: Invalid value" in str(exc.value) and "field is immutable" in str(exc.value)


def test_table_columns():
    names = [c["name"] for c in tables.column_definitions("Job")]
    assert names[:5] == ["Name", "Status", "Completions", "Duration", "Age"]
    obj = create(job(completions=3))
    obj["status"] = {"succeeded": 3, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:07Z",
                     "conditions": [{"type": "Complete", "status": "True"}]}
    cells = tables.row("Job", obj, dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.timezone.utc))["cells"]
    assert cells[:5] == ["pi", "Complete", "3/3", "7s", "5m"]
    running = create(job(parallelism=2, completions=None))
    running["spec"].pop("completions", None)
    running["status"] = {"succeeded": 0, "startTime": "2026-01-01T00:00:00Z"}
    cells = tables.row("Job", running, dt.datetime(2026, 1, 1, 0, 0, 30, tzinfo=dt.timezone.utc))["cells"]
    assert cells[1:4] == ["Running", "0/1 of 2", "30s"]


# -- controller decisions -------------------------------------------------------------------------

def pod(name: str, phase: str = "Running", restarts: int = 0) -> dict:
    return {"metadata": {"name": name, "creationTimestamp": NOW_S},
            "spec": {"nodeName": "n"}, "status": {"phase": phase, "containerStatuses": [{"restartCount": restarts}]}}


def test_parallel_pods_up_to_remaining_completions():
    j = create(job(completions=5, parallelism=2))
    d = jp.decide(j, [], T0)
    assert d.create == 2 and d.status["startTime"] == NOW_S and d.status["active"] == 0
    d = jp.decide(j, [pod("a", "Succeeded")] * 4 + [pod("b")], T0)
    assert d.create == 0 and d.delete == [] and d.status["succeeded"] == 4
    d = jp.decide(j, [pod("a", "Succeeded")] * 4 + [pod("b"), pod("c")], T0)
    assert len(d.delete) == 1                     # one completion left: one pod is enough


def test_complete_sets_condition_and_completion_time():
    j = create(job(completions=2))
    d = jp.decide(j, [pod("a", "Succeeded"), pod("b", "Succeeded")], T0 + 9)
    cond = {c["type"]: c for c in d.status["conditions"]}
    assert cond["Complete"]["status"] == "True" and d.status["completionTime"] == "2026-01-01T00:00:09Z"
    assert d.create == 0 and d.status["succeeded"] == 2


def test_work_queue_completes_when_one_succeeded_and_none_runs():
    j = create(job(parallelism=2))
    assert jp.decide(j, [pod("a", "Succeeded"), pod("b")], T0).create == 0
    assert not jp.decide(j, [pod("a", "Succeeded"), pod("b")], T0).status.get("conditions")
    assert jp.decide(j, [pod("a", "Succeeded"), pod("b", "Succeeded")], T0).status["conditions"][0]["type"] == "Complete"


def test_backoff_limit_exceeded_fails_after_running_pods_are_gone():
    j = create(job(backoffLimit=1, parallelism=2, completions=4))
    assert jp.decide(j, [pod("a", "Failed")], T0).create == 2           # replaced at once
    d = jp.decide(j, [pod("a", "Failed"), pod("b", "Failed"), pod("c")], T0)
    types = [c["type"] for c in d.status["conditions"]]
    assert types == ["FailureTarget"] and [p["metadata"]["name"] for p in d.delete] == ["c"]
    d = jp.decide(j, [pod("a", "Failed"), pod("b", "Failed")], T0)
    failed = {c["type"]: c for c in d.status["conditions"]}["Failed"]
    assert failed["reason"] == "BackoffLimitExceeded" and failed["message"] == jp.BACKOFF_MESSAGE
    assert d.status["failed"] == 2 and d.create == 0


def test_on_failure_counts_container_restarts():
    body = job(backoffLimit=2)
    body["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    j = create(body)
    assert not jp.decide(j, [pod("a", restarts=2)], T0).status.get("conditions")
    assert jp.decide(j, [pod("a", restarts=3)], T0).status["conditions"][0]["type"] == "FailureTarget"


def test_active_deadline_and_ttl_after_finished():
    j = create(job(activeDeadlineSeconds=10, ttlSecondsAfterFinished=30))
    j["status"] = {"startTime": NOW_S}
    assert jp.decide(j, [pod("a")], T0 + 4).requeue_after == pytest.approx(6)
    d = jp.decide(j, [], T0 + 11)
    assert {c["type"]: c for c in d.status["conditions"]}["Failed"]["reason"] == "DeadlineExceeded"
    j["status"] = d.status
    assert jp.decide(j, [], T0 + 20).requeue_after == pytest.approx(21)
    assert jp.decide(j, [], T0 + 42).delete_job


def test_suspend_deletes_running_pods():
    j = create(job(suspend=True))
    d = jp.decide(j, [pod("a")], T0)
    assert d.create == 0 and len(d.delete) == 1 and d.status["conditions"][0]["type"] == "Suspended"


def test_generated_selector_and_labels_owned_by_no_manager_after_create():
    """Upstream records a create's managedFields before generateSelector runs, so a later
    server-side apply without a selector (kubectl's client-side -> server-side migration)
    keeps it instead of removing it and failing with spec.selector: Required value."""
    from netemu.apiserver.fieldmanager import FieldManager
    sent = job()
    prepared = create(sent)
    FieldManager(RT, "kubectl-client-side-apply").record(None, sent, prepared)
    owned = prepared["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
    assert "f:selector" not in owned and "f:parallelism" in owned
    assert "f:metadata" not in owned["f:template"]
    assert prepared["spec"]["selector"]["matchLabels"]       # the object itself keeps them
