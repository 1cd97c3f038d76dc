"""The three patch types, including the shapes kubectl apply/edit/label/scale send."""

import copy

import pytest

from netemu.api import errors
from netemu.api.patch import json_patch, merge_patch, strategic_merge_patch


def deployment():
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                     "finalizers": ["a.io/x"],
                     "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u1"}]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.27",
                         "ports": [{"containerPort": 80, "protocol": "TCP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                        {"name": "sidecar", "image": "busybox"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "k1", "operator": "Exists"}],
                },
            },
        },
    }


def containers(obj):
    return obj["spec"]["template"]["spec"]["containers"]


# -- merge patch ----------------------------------------------------------------------------

def test_merge_patch_merges_maps_deletes_nulls_replaces_lists():
    orig = deployment()
    out = merge_patch(orig, {"metadata": {"labels": {"tier": "fe", "app": None}},
                             "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}})
    assert out["metadata"]["labels"] == {"tier": "fe"}
    assert containers(out) == [{"name": "only", "image": "x"}]
    assert orig == deployment()  # the input is untouched


def test_merge_patch_rejects_non_objects():
    with pytest.raises(errors.BadRequest):
        merge_patch(deployment(), ["x"])


# -- JSON patch -------------------------------------------------------------------------------

def test_json_patch_operations():
    out = json_patch(deployment(), [
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/labels/tier", "value": "fe"},
        {"op": "remove", "path": "/spec/template/spec/containers/1"},
        {"op": "test", "path": "/metadata/name", "value": "web"},
    ])
    assert out["spec"]["replicas"] == 5 and out["metadata"]["labels"]["tier"] == "fe"
    assert [c["name"] for c in containers(out)] == ["web"]


@pytest.mark.parametrize("patch, error", [
    ({"op": "add"}, errors.BadRequest),                           # not a list
    ([{"op": "frobnicate", "path": "/a"}], errors.BadRequest),    # unknown op
    ([{"path": "/a"}], errors.BadRequest),                        # no op
    ([{"op": "remove", "path": "/nope/deeper"}], errors.Invalid),  # cannot apply
    ([{"op": "test", "path": "/metadata/name", "value": "other"}], errors.Invalid),
    (["junk"], errors.BadRequest),
])
def test_json_patch_errors_are_4xx(patch, error):
    with pytest.raises(error):
        json_patch(deployment(), patch)


# -- strategic merge patch ------------------------------------------------------------------

def test_kubectl_apply_changes_image_and_replicas_keeping_other_containers():
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"name": "web", "image": "nginx:1.28"}]}}},
    }
    out = strategic_merge_patch(deployment(), patch, "Deployment")
    assert out["spec"]["replicas"] == 3
    web, sidecar = containers(out)
    assert web["image"] == "nginx:1.28" and web["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert sidecar == {"name": "sidecar", "image": "busybox"}
    assert "$setElementOrder/containers" not in out["spec"]["template"]["spec"]


def test_kubectl_apply_removes_a_container_and_reorders():
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "new"}],
        "containers": [{"name": "web", "$patch": "delete"}, {"name": "new", "image": "alpine"}]}}}}
    out = strategic_merge_patch(deployment(), patch, "Deployment")
    assert [c["name"] for c in containers(out)] == ["sidecar", "new"]


def test_set_element_order_alone_reorders():
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]}}}}
    out = strategic_merge_patch(deployment(), patch, "Deployment")
    assert [c["name"] for c in containers(out)] == ["sidecar", "web"]


def test_merge_keeps_positions_without_set_element_order():
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "busybox:2"}, {"name": "web", "image": "nginx:2"}]}}}}
    out = strategic_merge_patch(deployment(), patch, "Deployment")
    assert [(c["name"], c["image"]) for c in containers(out)] == [("web", "nginx:2"), ("sidecar", "busybox:2")]


def test_nested_lists_merge_by_their_own_keys_and_null_deletes():
    patch = {"spec": {"template": {"spec": {"containers": [{
        "name": "web",
        "env": [{"name": "B", "value": "22"}, {"name": "C", "value": "3"}, {"name": "A", "$patch": "delete"}],
        "ports": [{"containerPort": 443}],
        "image": None}]}}}}
    web = containers(strategic_merge_patch(deployment(), patch, "Deployment"))[0]
    assert web["env"] == [{"name": "B", "value": "22"}, {"name": "C", "value": "3"}]
    assert web["ports"] == [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]
    assert "image" not in web


def test_lists_without_merge_key_are_replaced():
    patch = {"spec": {"template": {"spec": {"tolerations": [{"key": "k2", "operator": "Exists"}]}}}}
    out = strategic_merge_patch(deployment(), patch, "Deployment")
    assert out["spec"]["template"]["spec"]["tolerations"] == [{"key": "k2", "operator": "Exists"}]


def test_replace_directive_on_list_and_map():
    patch = {"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "solo", "image": "x"}]}}}}
    out = strategic_merge_patch(deployment(), patch, "Deployment")
    assert containers(out) == [{"name": "solo", "image": "x"}]
    out = strategic_merge_patch(deployment(), {"metadata": {"labels": {"$patch": "replace", "only": "me"}}}, "Deployment")
    assert out["metadata"]["labels"] == {"only": "me"}
    out = strategic_merge_patch(deployment(), {"spec": {"strategy": {"$patch": "delete"}}}, "Deployment")
    assert out["spec"]["strategy"] == {}


def test_retain_keys_switches_deployment_strategy():
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    out = strategic_merge_patch(deployment(), patch, "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    with pytest.raises(errors.BadRequest):
        strategic_merge_patch(deployment(), {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}, "Deployment")


def test_retain_keys_in_volume_switches_source():
    patch = {"spec": {"template": {"spec": {"volumes": [
        {"name": "data", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}}}}
    out = strategic_merge_patch(deployment(), patch, "Deployment")
    assert out["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "configMap": {"name": "cm"}}]


def test_primitive_merge_lists_union_and_delete():
    out = strategic_merge_patch(deployment(), {"metadata": {"finalizers": ["b.io/y", "a.io/x"]}}, "Deployment")
    assert out["metadata"]["finalizers"] == ["a.io/x", "b.io/y"]
    out = strategic_merge_patch(out, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.io/x"]}}, "Deployment")
    assert out["metadata"]["finalizers"] == ["b.io/y"]


def test_owner_references_merge_by_uid():
    ref = {"apiVersion": "v1", "kind": "Y", "name": "p", "uid": "u2"}
    out = strategic_merge_patch(deployment(), {"metadata": {"ownerReferences": [ref]}}, "Deployment")
    assert [r["uid"] for r in out["metadata"]["ownerReferences"]] == ["u1", "u2"]


def test_label_annotate_and_scale_shapes():
    obj = deployment()
    out = strategic_merge_patch(obj, {"metadata": {"labels": {"env": "prod"}}}, "Deployment")
    assert out["metadata"]["labels"] == {"app": "web", "env": "prod"}
    out = strategic_merge_patch(out, {"metadata": {"annotations": {"note": "hi"}}}, "Deployment")
    assert out["metadata"]["annotations"] == {"note": "hi"}
    out = strategic_merge_patch(out, {"metadata": {"labels": {"env": None}}}, "Deployment")
    assert out["metadata"]["labels"] == {"app": "web"}
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 2}}
    assert strategic_merge_patch(scale, {"spec": {"replicas": 5}}, "Scale")["spec"]["replicas"] == 5
    assert obj == deployment()


def test_service_ports_merge_by_port_and_pod_status_conditions_by_type():
    svc = {"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080},
                              {"name": "https", "port": 443}]}}
    out = strategic_merge_patch(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "Service")
    assert out["spec"]["ports"][0] == {"name": "http", "port": 80, "targetPort": 9090}
    assert len(out["spec"]["ports"]) == 2
    pod = {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}
    out = strategic_merge_patch(pod, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "Pod")
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]


@pytest.mark.parametrize("patch", [
    ["not", "an", "object"],
    {"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}},
    {"spec": {"template": {"spec": {"containers": ["string"]}}}},
    {"spec": {"template": {"spec": {"containers": [{"name": "web", "$patch": "explode"}]}}}},
    {"spec": {"$patch": "explode"}},
    {"spec": {"strategy": {"$retainKeys": "type"}}},
    {"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}},
    {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"nope": 1}]}}}},
    {"metadata": {"finalizers": [{"a": 1}]}},
    {"spec": {"$unknownDirective": 1}},
])
def test_malformed_strategic_patches_are_bad_requests(patch):
    orig = deployment()
    with pytest.raises(errors.BadRequest):
        strategic_merge_patch(orig, copy.deepcopy(patch), "Deployment")
    assert orig == deployment()


def test_new_subtrees_lose_nulls_and_directives():
    out = strategic_merge_patch({}, {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "x", "$patch": "merge", "args": None}]}}}}, "Deployment")
    assert containers(out) == [{"name": "a", "image": "x"}]


# Captured from kubectl 1.32 (`kubectl apply -v=8`) after editing a manifest of deployment():
# replicas 2 -> 3, strategy RollingUpdate -> Recreate, env A and the sidecar removed.
KUBECTL_132_APPLY = {
    "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}\n"}},
    "spec": {"replicas": 3, "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
             "template": {"spec": {"$setElementOrder/containers": [{"name": "web"}],
                                   "containers": [{"$setElementOrder/env": [{"name": "B"}],
                                                   "env": [{"$patch": "delete", "name": "A"}], "name": "web"},
                                                  {"$patch": "delete", "name": "side"}]}}}}


def test_real_kubectl_apply_patch():
    orig = deployment()
    containers(orig)[1]["name"] = "side"
    out = strategic_merge_patch(orig, KUBECTL_132_APPLY, "Deployment")
    assert out["spec"]["replicas"] == 3 and out["spec"]["strategy"] == {"type": "Recreate"}
    assert [c["name"] for c in containers(out)] == ["web"]
    assert containers(out)[0]["env"] == [{"name": "B", "value": "2"}]
    assert containers(out)[0]["image"] == "nginx:1.27"
    assert out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == "{...}\n"
