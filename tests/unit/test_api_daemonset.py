"""apps/v1 DaemonSet as a served kind: defaults, validation, update rules, table (upstream
pkg/apis/apps/validation ValidateDaemonSet* and pkg/printers DaemonSet columns, v1.32)."""

from __future__ import annotations

import datetime as dt

import pytest

from netemu.api import errors, kinds, strategy
from netemu.apiserver import discovery, tables

NOW = "2026-01-01T00:00:00Z"
RT = kinds.by_kind("apps/v1", "DaemonSet")


def ds(**spec) -> dict:
    body = {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    body.update(spec)
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
            "spec": body}


def causes(obj: dict) -> list[str]:
    try:
        strategy.prepare_create(RT, obj, now=NOW)
    except errors.StatusError as exc:
        return [str(exc)]
    return []


def test_served_with_short_name_status_subresource_and_all_category():
    assert RT is not None and RT.resource == "daemonsets" and RT.short_names == ("ds",)
    assert "status" in RT.subresources and "all" in RT.categories


def test_defaults_rolling_update_one_at_a_time_and_status_reset():
    out = strategy.prepare_create(RT, dict(ds(), status={"numberReady": 9}), now=NOW)
    assert out["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                             "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert out["spec"]["revisionHistoryLimit"] == 10
    assert out["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert out["status"]["numberReady"] == 0 and out["metadata"]["generation"] == 1


@pytest.mark.parametrize("spec,want", [
    ({"selector": None}, "spec.selector: Required value"),
    ({"selector": {"matchLabels": {"app": "other"}}}, "`selector` does not match template `labels`"),
    ({"selector": {}}, "empty selector is invalid for daemonset"),
    ({"updateStrategy": {"type": "Recreate"}}, 'spec.updateStrategy.type: Unsupported value: "Recreate"'),
    ({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}},
     "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"),
    ({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}},
     "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"),
    ({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "120%"}}},
     "must not be greater than 100%"),
    ({"minReadySeconds": -1}, "spec.minReadySeconds: Invalid value: -1"),
])
def test_invalid_specs_name_the_field(spec, want):
    body = ds(**{k: v for k, v in spec.items() if v is not None})
    if spec.get("selector", 0) is None:
        body["spec"].pop("selector")
    found = causes(body)
    assert any(want in c for c in found), found


def test_template_restart_policy_must_be_always():
    body = ds()
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert any("spec.template.spec.restartPolicy" in c for c in causes(body))


def test_valid_surge_and_on_delete():
    assert causes(ds(updateStrategy={"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}})) == []
    assert causes(ds(updateStrategy={"type": "OnDelete"})) == []


def test_selector_immutable_and_generation_bumps_on_template_change():
    old = strategy.prepare_create(RT, ds(), now=NOW)
    old["metadata"]["resourceVersion"] = "5"
    new = dict(old, spec=dict(old["spec"], selector={"matchLabels": {"app": "agent"},
                                                      "matchExpressions": [{"key": "app", "operator": "Exists"}]}))
    with pytest.raises(errors.StatusError) as exc:
        strategy.prepare_update(RT, old, new)
    assert "spec.selector" in str(exc.value) and "field is immutable" in str(exc.value)
    tmpl = {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}
    updated = strategy.prepare_update(RT, old, dict(old, spec=dict(old["spec"], template=tmpl)))
    assert updated["metadata"]["generation"] == 2


def test_table_columns_as_kubectl_shows():
    obj = strategy.prepare_create(RT, ds(), now=NOW)
    obj["spec"]["template"]["spec"]["nodeSelector"] = {"role": "edge"}
    obj["status"] = {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                     "updatedNumberScheduled": 1, "numberAvailable": 2}
    names = [c["name"] for c in tables.column_definitions("DaemonSet")]
    assert names[:8] == ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"]
    cells = tables.row("DaemonSet", obj, dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.timezone.utc))["cells"]
    assert cells[:8] == ["agent", 3, 3, 2, 1, 2, "role=edge", "60s"]
    assert cells[-1] == "app=agent"


def test_discovery_lists_daemonsets_in_apps_v1():
    resources = {r["name"]: r for r in discovery.api_resource_list("apps", "v1")["resources"]}
    assert resources["daemonsets"]["shortNames"] == ["ds"] and "daemonsets/status" in resources
