"""StatefulSet defaults, validation and update rules (upstream pkg/apis/apps/validation, v1.32)."""

import copy

import pytest

from netemu.api import errors, kinds, strategy

NOW = "2026-12-06T09:00:00Z"
STS = kinds.by_kind_name("StatefulSet")


def sts(**spec):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "nginx"}},
                     "template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}},
                     **spec}}


def causes(exc):
    return {(c["field"], c["message"]) for c in exc.value.details["causes"]}


def stored(obj, rv="5"):
    out = strategy.prepare_create(STS, obj, now=NOW)
    out["metadata"]["resourceVersion"] = rv
    return out


def test_served_with_short_name_status_and_scale():
    assert STS.resource == "statefulsets" and STS.short_names == ("sts",)
    assert set(STS.subresources) == {"status", "scale"} and kinds.by_resource("apps", "v1", "statefulsets") is STS


def test_create_defaults_as_upstream():
    out = strategy.prepare_create(STS, sts(volumeClaimTemplates=[{"metadata": {"name": "www"},
                                                                  "spec": {"accessModes": ["ReadWriteOnce"]}}]),
                                  now=NOW)
    spec = out["spec"]
    assert spec["replicas"] == 1 and spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    assert out["metadata"]["generation"] == 1 and out["status"] == {"replicas": 0, "availableReplicas": 0}


@pytest.mark.parametrize("change,expected", [
    ({"selector": None}, ("spec.selector", "Required value")),
    ({"selector": {"matchLabels": {"app": "other"}}},
     ("spec.template.metadata.labels",
      'Invalid value: map[string]string{"app":"nginx"}: `selector` does not match template `labels`')),
    ({"podManagementPolicy": "Random"},
     ("spec.podManagementPolicy", 'Invalid value: "Random": must be \'OrderedReady\' or \'Parallel\'')),
    ({"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}},
     ("spec.updateStrategy.rollingUpdate", None)),
    ({"updateStrategy": {"type": "Recreate"}}, ("spec.updateStrategy", None)),
    ({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}},
     ("spec.updateStrategy.rollingUpdate.partition", "Invalid value: -1: must be greater than or equal to 0")),
    ({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}},
     ("spec.updateStrategy.rollingUpdate.maxUnavailable", "Invalid value: 0: must be greater than 0")),
    ({"replicas": -1}, ("spec.replicas", "Invalid value: -1: must be greater than or equal to 0")),
    ({"serviceName": "Not_A_Name"}, ("spec.serviceName", None)),
    ({"volumeClaimTemplates": [{"spec": {}}]}, ("spec.volumeClaimTemplates[0].metadata.name", "Required value")),
])
def test_invalid_specs_name_the_field(change, expected):
    obj = sts()
    for k, val in change.items():
        if val is None:
            obj["spec"].pop(k)
        else:
            obj["spec"][k] = val
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_create(STS, obj, now=NOW)
    found = causes(exc)
    path, message = expected
    assert path in {f for f, _ in found}, found
    if message:
        assert (path, message) in found


def test_restart_policy_and_deadline_rejected_like_upstream():
    obj = sts()
    obj["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_create(STS, obj, now=NOW)
    assert ("spec.template.spec.activeDeadlineSeconds",
            "Forbidden: activeDeadlineSeconds in StatefulSet is not Supported") in causes(exc)


def test_valid_variants_accepted():
    for spec in ({"podManagementPolicy": "Parallel"}, {"updateStrategy": {"type": "OnDelete"}},
                 {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2,
                                                                               "maxUnavailable": "50%"}}}):
        strategy.prepare_create(STS, sts(**spec), now=NOW)
    no_service = sts()
    del no_service["spec"]["serviceName"]      # optional in v1.32
    strategy.prepare_create(STS, no_service, now=NOW)


@pytest.mark.parametrize("key,value", [("replicas", 5), ("updateStrategy", {"type": "OnDelete"}),
                                       ("minReadySeconds", 3), ("ordinals", {"start": 1}),
                                       ("persistentVolumeClaimRetentionPolicy",
                                        {"whenDeleted": "Delete", "whenScaled": "Retain"})])
def test_mutable_fields_update_and_bump_generation(key, value):
    old = stored(sts())
    new = copy.deepcopy(old)
    new["spec"][key] = value
    out = strategy.prepare_update(STS, old, new)
    assert out["spec"][key] == value and out["metadata"]["generation"] == 2


def test_template_update_allowed():
    old = stored(sts())
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    assert strategy.prepare_update(STS, old, new)["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"


@pytest.mark.parametrize("key,value", [("serviceName", "other"), ("podManagementPolicy", "Parallel"),
                                       ("revisionHistoryLimit", 3),
                                       ("volumeClaimTemplates", [{"metadata": {"name": "data"}}])])
def test_other_fields_are_forbidden_on_update(key, value):
    old = stored(sts())
    new = copy.deepcopy(old)
    new["spec"][key] = value
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(STS, old, new)
    assert ("spec", "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
            "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' "
            "are forbidden") in causes(exc)


def test_selector_change_forbidden_too():
    old = stored(sts())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "nginx", "tier": "x"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    with pytest.raises(errors.Invalid):
        strategy.prepare_update(STS, old, new)


def test_status_update_keeps_spec():
    old = stored(sts())
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 9
    new["status"] = {"replicas": 1, "readyReplicas": 1}
    out = strategy.prepare_update(STS, old, new, subresource="status")
    assert out["spec"]["replicas"] == 1 and out["status"]["readyReplicas"] == 1


def test_discovery_serves_statefulsets_with_scale_and_status():
    from netemu.apiserver import discovery
    apps = {r["name"]: r for r in discovery.api_resource_list("apps", "v1")["resources"]}
    assert apps["statefulsets"]["shortNames"] == ["sts"] and apps["statefulsets"]["categories"] == ["all"]
    assert apps["statefulsets/scale"]["kind"] == "Scale" and "statefulsets/status" in apps


def test_controller_revision_data_is_immutable():
    cr = kinds.by_kind_name("ControllerRevision")
    obj = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "web-1", "namespace": "d"},
           "data": {"spec": {}}, "revision": 1}
    old = strategy.prepare_create(cr, obj, now=NOW)
    old["metadata"]["resourceVersion"] = "3"
    bumped = strategy.prepare_update(cr, old, {**copy.deepcopy(old), "revision": 4})
    assert bumped["revision"] == 4
    with pytest.raises(errors.Invalid):
        strategy.prepare_update(cr, old, {**copy.deepcopy(old), "data": {"spec": {"x": 1}}})
    with pytest.raises(errors.Invalid):
        strategy.prepare_create(cr, {**obj, "revision": -1}, now=NOW)
