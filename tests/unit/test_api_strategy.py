"""The registry strategy: what the API server stores for a create and an update."""

import copy

import pytest

from netemu.api import errors, kinds, patch, strategy

NOW = "2026-11-27T08:00:00Z"
SVC = kinds.by_kind_name("Service")
DEPLOY = kinds.by_kind_name("Deployment")
POD = kinds.by_kind_name("Pod")
NS = kinds.by_kind_name("Namespace")
CM = kinds.by_kind_name("ConfigMap")
SECRET = kinds.by_kind_name("Secret")
NODE = kinds.by_kind_name("Node")


def service(**spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}


def deployment(labels=None, selector=None):
    labels = labels or {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": selector or labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}


def pod():
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}}]},
            "status": {"phase": "Running"}}


def causes(exc):
    return {(c["field"], c["message"]) for c in exc.value.details["causes"]}


def stored(rt, obj, rv="5"):
    """What the store would hold after a create: prepared plus a resourceVersion."""
    out = strategy.prepare_create(rt, obj, now=NOW)
    out["metadata"]["resourceVersion"] = rv
    return out


def test_create_sets_system_metadata_and_does_not_touch_input():
    original = service()
    before = copy.deepcopy(original)
    out = strategy.prepare_create(SVC, original, now=NOW)
    assert original == before
    md = out["metadata"]
    assert md["creationTimestamp"] == NOW and len(md["uid"]) == 36
    assert "generation" not in md  # upstream Services have none
    assert out["status"] == {"loadBalancer": {}}
    assert strategy.prepare_create(DEPLOY, deployment(), now=NOW)["metadata"]["generation"] == 1
    assert list(out)[:2] == ["apiVersion", "kind"]


def test_create_overwrites_client_uid_and_resets_status():
    obj = pod()
    obj["metadata"]["uid"] = "mine"
    out = strategy.prepare_create(POD, obj, now=NOW)
    assert out["metadata"]["uid"] != "mine"
    assert out["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}


def test_create_rejects_resource_version_and_non_objects():
    obj = service()
    obj["metadata"]["resourceVersion"] = "7"
    with pytest.raises(errors.BadRequest):
        strategy.prepare_create(SVC, obj, now=NOW)
    with pytest.raises(errors.BadRequest):
        strategy.prepare_create(SVC, ["not", "a", "dict"], now=NOW)
    with pytest.raises(errors.BadRequest):
        strategy.prepare_create(SVC, {"metadata": "x"}, now=NOW)


def test_create_requires_name_and_namespace():
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_create(SVC, {"spec": {"ports": [{"port": 80}]}}, now=NOW)
    fields = {c["field"] for c in exc.value.details["causes"]}
    assert {"metadata.name", "metadata.namespace"} <= fields
    assert exc.value.status()["code"] == 422


def test_cluster_scoped_create_drops_namespace_and_namespace_gets_finalizer():
    out = strategy.prepare_create(NS, {"metadata": {"name": "team-a", "namespace": "x"}}, now=NOW)
    assert "namespace" not in out["metadata"]
    assert out["status"] == {"phase": "Active"} and out["spec"]["finalizers"] == ["kubernetes"]
    assert "generation" not in out["metadata"]


def test_invalid_message_is_worded_like_upstream():
    obj = service()
    obj["metadata"]["name"] = "Web"
    obj["spec"]["ports"][0]["protocol"] = "XYZ"
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_create(SVC, obj, now=NOW)
    assert exc.value.message.startswith('Service "Web" is invalid: metadata.name: Invalid value: "Web": a DNS-1035 label')
    assert ("spec.ports[0].protocol", 'Unsupported value: "XYZ": supported values: "SCTP", "TCP", "UDP"') in causes(exc)


def test_main_update_keeps_status_and_bumps_generation_on_spec_change():
    old = stored(DEPLOY, deployment())
    old["status"] = {"replicas": 1, "observedGeneration": 1}
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 99}
    new["metadata"]["labels"] = {"team": "a"}
    out = strategy.prepare_update(DEPLOY, old, new)
    assert out["status"] == {"replicas": 1, "observedGeneration": 1}
    assert out["metadata"]["generation"] == 1 and out["metadata"]["labels"] == {"team": "a"}
    new["spec"]["replicas"] = 3
    assert strategy.prepare_update(DEPLOY, old, new)["metadata"]["generation"] == 2


def test_status_update_keeps_spec_and_generation():
    old = stored(DEPLOY, deployment())
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 7
    new["status"] = {"replicas": 1}
    new["metadata"]["labels"] = {"sneaky": "yes"}
    out = strategy.prepare_update(DEPLOY, old, new, subresource="status")
    assert out["spec"]["replicas"] == 1 and out["status"] == {"replicas": 1}
    assert out["metadata"]["generation"] == 1 and "labels" not in out["metadata"]
    assert out["metadata"]["resourceVersion"] == "5"


def test_update_restores_system_fields_and_rejects_identity_changes():
    old = stored(SVC, service())
    new = copy.deepcopy(old)
    del new["metadata"]["uid"]
    new["metadata"]["creationTimestamp"] = "1999-01-01T00:00:00Z"
    out = strategy.prepare_update(SVC, old, new)
    assert out["metadata"]["uid"] == old["metadata"]["uid"]
    assert out["metadata"]["creationTimestamp"] == NOW
    new["metadata"]["uid"] = "other"
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(SVC, old, new)
    assert ("metadata.uid", 'Invalid value: "other": field is immutable') in causes(exc)


def test_service_cluster_ip_is_immutable_but_omitting_it_keeps_it():
    old = stored(SVC, service(clusterIP="10.96.0.20"))
    assert old["spec"]["clusterIPs"] == ["10.96.0.20"]
    reapply = service()  # the original manifest, without the allocated IP
    reapply["metadata"]["resourceVersion"] = "5"
    out = strategy.prepare_update(SVC, old, reapply)
    assert out["spec"]["clusterIP"] == "10.96.0.20" and out["spec"]["clusterIPs"] == ["10.96.0.20"]
    changed = copy.deepcopy(old)
    changed["spec"]["clusterIP"] = "10.96.0.21"
    changed["spec"]["clusterIPs"] = ["10.96.0.21"]
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(SVC, old, changed)
    assert ("spec.clusterIPs[0]", 'Invalid value: []string{"10.96.0.21"}: may not change once set') in causes(exc)


def test_service_type_change_drops_fields_the_user_did_not_touch():
    old = stored(SVC, service(type="NodePort"))
    old["spec"]["ports"][0]["nodePort"] = 30080
    old["spec"]["clusterIP"], old["spec"]["clusterIPs"] = "10.96.0.9", ["10.96.0.9"]
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    out = strategy.prepare_update(SVC, old, new)
    assert "nodePort" not in out["spec"]["ports"][0]
    assert "externalTrafficPolicy" not in out["spec"]
    to_external = copy.deepcopy(old)
    to_external["spec"].update(type="ExternalName", externalName="db.example.com")
    out = strategy.prepare_update(SVC, old, to_external)
    assert "clusterIP" not in out["spec"] and "clusterIPs" not in out["spec"]
    assert "ipFamilies" not in out["spec"]


def test_switching_session_affinity_off_with_a_patch_drops_its_config():
    """The issue-19 case: ``kubectl patch svc X -p '{"spec":{"sessionAffinity":"None"}}'`` on a
    ClientIP Service. Upstream defaulting (SetDefaults_Service) clears the config left over from
    ClientIP, so the update is valid; switching back defaults the timeout again."""
    old = stored(SVC, service(sessionAffinity="ClientIP",
                              sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10}}))
    off = patch.strategic_merge_patch(old, {"spec": {"sessionAffinity": "None"}}, "Service")
    out = strategy.prepare_update(SVC, old, off)
    assert out["spec"]["sessionAffinity"] == "None" and "sessionAffinityConfig" not in out["spec"]
    on = patch.strategic_merge_patch(out, {"spec": {"sessionAffinity": "ClientIP"}}, "Service")
    back = strategy.prepare_update(SVC, out, on)
    assert back["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_external_traffic_policy_follows_externally_accessible():
    """ExternallyAccessible = NodePort, LoadBalancer, or ClusterIP with externalIPs."""
    old = stored(SVC, service(externalIPs=["203.0.113.250"]))
    assert old["spec"]["externalTrafficPolicy"] == "Cluster"
    new = copy.deepcopy(old)
    del new["spec"]["externalIPs"]
    assert "externalTrafficPolicy" not in strategy.prepare_update(SVC, old, new)["spec"]
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_create(SVC, service(type="ExternalName", externalName="a.example",
                                             externalIPs=["203.0.113.9"], externalTrafficPolicy="Local"),
                                now=NOW)
    assert ("spec.externalTrafficPolicy", 'Invalid value: "Local": may only be set for '
            "externally-accessible services") in causes(exc)


def test_switch_to_external_name_keeps_internal_traffic_policy_like_upstream():
    old = stored(SVC, service())
    new = copy.deepcopy(old)
    new["spec"].update(type="ExternalName", externalName="db.example.com")
    out = strategy.prepare_update(SVC, old, new)
    assert out["spec"]["internalTrafficPolicy"] == "Cluster" and "clusterIP" not in out["spec"]
    bad = copy.deepcopy(out)
    bad["spec"]["internalTrafficPolicy"] = "Nearby"
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(SVC, out, bad)
    assert any(f == "spec.internalTrafficPolicy" for f, _ in causes(exc))


def test_type_change_drops_node_ports_when_no_new_value_appears():
    """sameNodePorts is "no new node port value": removing a port while leaving NodePort still
    wipes the rest; a LoadBalancer without allocated node ports may hold some by hand."""
    two = service(type="NodePort", ports=[{"name": "a", "port": 80, "nodePort": 30080},
                                          {"name": "b", "port": 81, "nodePort": 30081}])
    old = stored(SVC, two)
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    new["spec"]["ports"].pop()
    out = strategy.prepare_update(SVC, old, new)
    assert [p.get("nodePort") for p in out["spec"]["ports"]] == [None]
    lb = stored(SVC, service(type="LoadBalancer", allocateLoadBalancerNodePorts=False,
                             ports=[{"port": 80, "nodePort": 30090}]))
    to_cip = copy.deepcopy(lb)
    to_cip["spec"]["type"] = "ClusterIP"
    out = strategy.prepare_update(SVC, lb, to_cip)
    assert "nodePort" not in out["spec"]["ports"][0] and "allocateLoadBalancerNodePorts" not in out["spec"]


def test_load_balancer_status_gets_ip_mode_and_is_cleared_with_the_type():
    lb = stored(SVC, service(type="LoadBalancer"))
    with_ip = copy.deepcopy(lb)
    with_ip["status"] = {"loadBalancer": {"ingress": [{"ip": "172.18.255.200"}, {"hostname": "lb.example"}]}}
    out = strategy.prepare_update(SVC, lb, with_ip, subresource="status")
    assert out["status"]["loadBalancer"]["ingress"] == [{"ip": "172.18.255.200", "ipMode": "VIP"},
                                                        {"hostname": "lb.example"}]
    to_np = copy.deepcopy(out)
    to_np["spec"]["type"] = "NodePort"
    assert strategy.prepare_update(SVC, out, to_np)["status"] == {"loadBalancer": {}}


def test_deployment_selector_is_immutable():
    old = stored(DEPLOY, deployment())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(DEPLOY, old, new)
    assert "spec.selector" in {c["field"] for c in exc.value.details["causes"]}


def test_pod_spec_is_immutable_except_image():
    old = stored(POD, pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:1.36"
    new["spec"]["tolerations"] = [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]
    assert strategy.prepare_update(POD, old, new)["spec"]["containers"][0]["image"] == "busybox:1.36"
    new["spec"]["restartPolicy"] = "Never"
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(POD, old, new)
    assert exc.value.details["causes"][0]["message"].startswith("Forbidden: pod updates may not change fields")


def test_immutable_configmap_and_secret_type():
    old = stored(CM, {"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "1"}, "immutable": True})
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(CM, old, new)
    assert ("data", "Forbidden: field is immutable when `immutable` is set") in causes(exc)
    sec = stored(SECRET, {"metadata": {"name": "s", "namespace": "d"}, "stringData": {"pw": "hunter2"}})
    assert sec["data"] == {"pw": "aHVudGVyMg=="} and sec["type"] == "Opaque" and "stringData" not in sec
    new = copy.deepcopy(sec)
    new["type"] = "kubernetes.io/tls"
    with pytest.raises(errors.Invalid):
        strategy.prepare_update(SECRET, sec, new)


def test_deleting_object_keeps_deletion_timestamp_and_refuses_new_finalizers():
    old = stored(CM, {"metadata": {"name": "c", "namespace": "d", "finalizers": ["a/b"]}})
    old["metadata"]["deletionTimestamp"] = NOW
    new = copy.deepcopy(old)
    del new["metadata"]["deletionTimestamp"]
    assert strategy.prepare_update(CM, old, new)["metadata"]["deletionTimestamp"] == NOW
    new["metadata"]["finalizers"] = ["a/b", "c/d"]
    with pytest.raises(errors.Invalid):
        strategy.prepare_update(CM, old, new)


def test_unknown_subresource_is_not_found():
    old = stored(CM, {"metadata": {"name": "c", "namespace": "d"}})
    with pytest.raises(errors.NotFound):
        strategy.prepare_update(CM, old, old, subresource="scale")


def test_binding_sets_node_once():
    p = stored(POD, pod())
    bound = strategy.prepare_binding(p, {"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}})
    assert bound["spec"]["nodeName"] == "n1" and "nodeName" not in p["spec"]
    with pytest.raises(errors.Conflict):
        strategy.prepare_binding(bound, {"target": {"name": "n2"}})
    with pytest.raises(errors.Invalid):
        strategy.prepare_binding(p, {"target": {}})


def test_node_pod_cidr_may_not_change_once_set():
    old = stored(NODE, {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}})
    new = copy.deepcopy(old)
    new["spec"]["podCIDRs"] = new["spec"]["podCIDR"] = "10.244.2.0/24"
    new["spec"]["podCIDRs"] = ["10.244.2.0/24"]
    with pytest.raises(errors.Invalid):
        strategy.prepare_update(NODE, old, new)


@pytest.mark.parametrize("rt", kinds.RESOURCES, ids=lambda r: r.kind)
def test_every_kind_validates_without_crashing_on_garbage(rt):
    for body in ({}, {"metadata": {"name": "x", "namespace": "y"}, "spec": "junk", "data": 5,
                      "subsets": "x", "endpoints": [1], "rules": {}, "roleRef": 3}):
        assert isinstance(strategy.validate(rt, body), list)


GARBAGE = [
    {"metadata": {"name": "x", "namespace": "y"}, "spec": "junk"},
    {"metadata": {"name": "x", "namespace": "y"}, "spec": {"ports": "junk", "containers": {"a": 1},
                                                           "template": [], "selector": "s", "type": 5}},
    {"metadata": {"name": "x", "namespace": "y", "labels": ["a"], "annotations": {"k": 1}},
     "spec": {"ports": [None, 3, {"port": "80"}], "strategy": "x", "sessionAffinity": "ClientIP",
              "sessionAffinityConfig": "x", "containers": [None, {"resources": "x", "ports": [7]}]}},
]


@pytest.mark.parametrize("rt", kinds.RESOURCES, ids=lambda r: r.kind)
def test_create_and_update_of_garbage_fail_with_a_status_error(rt):
    for body in GARBAGE:
        try:
            strategy.prepare_create(rt, body, now=NOW)
        except errors.StatusError as e:
            assert 400 <= e.code < 500
        try:
            strategy.prepare_update(rt, {"metadata": {"name": "x", "namespace": "y"}}, body)
        except errors.StatusError as e:
            assert 400 <= e.code < 500


def test_changing_only_the_singular_cluster_ip_is_reported_as_a_change():
    old = stored(SVC, service(clusterIP="10.96.0.20"))
    patched = copy.deepcopy(old)
    patched["spec"]["clusterIP"] = "10.96.5.5"  # what `kubectl patch -p {"spec":{"clusterIP":...}}` yields
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(SVC, old, patched)
    assert ("spec.clusterIPs[0]", 'Invalid value: []string{"10.96.5.5"}: may not change once set') in causes(exc)


@pytest.mark.parametrize("rt, body, needle", [
    (DEPLOY, {"metadata": {"name": "d", "namespace": "n"}, "spec": {"replicas": "3"}},
     'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal string '
     "into Go struct field Deployment.spec.replicas of type int32"),
    (SVC, {"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": {"port": 80}}},
     "cannot unmarshal object into Go struct field Service.spec.ports of type []object"),
    (SVC, {"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 80, "targetPort": True}]}},
     "cannot unmarshal bool into Go struct field Service.spec.ports.targetPort of type intstr.IntOrString"),
    (POD, {"metadata": {"name": "p", "namespace": "n", "labels": {"a": 1}}, "spec": {}},
     "cannot unmarshal object into Go struct field Pod.metadata.labels of type map[string]string"),
    (POD, {"metadata": {"name": "p", "namespace": "n"}, "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 1.5}]}]}},
     "cannot unmarshal number 1.5 into Go struct field Pod.spec.containers.ports.containerPort of type int32"),
    (DEPLOY, {"metadata": {"name": "d", "namespace": "n"}, "spec": {"replicas": 2 ** 31}},
     "of type int32"),
    (CM, {"metadata": {"name": "c", "namespace": "n"}, "data": {"k": 5}}, "ConfigMap.data of type map[string]string"),
])
def test_wrong_json_types_are_bad_requests_naming_the_field(rt, body, needle):
    with pytest.raises(errors.BadRequest) as exc:
        strategy.prepare_create(rt, body, now=NOW)
    assert needle in exc.value.message


def test_nulls_decode_as_zero_values():
    obj = service()
    obj["metadata"]["creationTimestamp"] = None   # what `kubectl create --dry-run -o yaml` writes
    obj["metadata"]["labels"] = None
    obj["spec"]["ports"][0]["nodePort"] = None
    assert strategy.prepare_create(SVC, obj, now=NOW)["metadata"]["creationTimestamp"] == NOW
    out = strategy.prepare_create(SVC, obj, now=NOW)
    assert "labels" not in out["metadata"] and "nodePort" not in out["spec"]["ports"][0]


def test_selector_immutable_message_prints_the_selector_like_go():
    old = stored(DEPLOY, deployment())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    new["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(DEPLOY, old, new)
    assert exc.value.message == (
        'Deployment.apps "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:'
        'map[string]string{"app":"other"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable')


def test_ephemeral_containers_are_added_only_through_their_subresource():
    """pods/NAME/ephemeralcontainers (kubectl debug), as upstream's podEphemeralContainersStrategy
    and ValidatePodEphemeralContainersUpdate: only spec.ephemeralContainers changes, defaulted,
    checked against the allow-list, never removed or changed once there; a main update may not
    add one."""
    old = stored(POD, pod())
    debug = {"name": "debugger-x", "image": "busybox", "stdin": True, "tty": True, "targetContainerName": "c"}
    new = copy.deepcopy(old)
    new["spec"]["ephemeralContainers"] = [dict(debug)]
    new["spec"]["restartPolicy"] = "Never"                      # ignored: not this subresource's field
    out = strategy.prepare_update(POD, old, new, subresource="ephemeralcontainers")
    assert out["spec"]["restartPolicy"] == old["spec"]["restartPolicy"]
    ec = out["spec"]["ephemeralContainers"][0]
    assert ec["name"] == "debugger-x" and ec["terminationMessagePath"] == "/dev/termination-log"
    assert ec["imagePullPolicy"] == "Always" and ec["stdin"] is True

    changed = copy.deepcopy(out)
    changed["spec"]["ephemeralContainers"][0]["image"] = "alpine"
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(POD, out, changed, subresource="ephemeralcontainers")
    assert ("spec.ephemeralContainers",
            'Forbidden: existing ephemeral containers "debugger-x" may not be changed\n') in causes(exc)
    removed = copy.deepcopy(out)
    removed["spec"]["ephemeralContainers"] = []
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(POD, out, removed, subresource="ephemeralcontainers")
    assert ("spec.ephemeralContainers",
            'Forbidden: existing ephemeral containers "debugger-x" may not be removed\n') in causes(exc)

    bad = copy.deepcopy(old)
    bad["spec"]["ephemeralContainers"] = [dict(debug, name="c", ports=[{"containerPort": 80}],
                                               targetContainerName="nope")]
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_update(POD, old, bad, subresource="ephemeralcontainers")
    assert {("spec.ephemeralContainers[0].name", 'Duplicate value: "c"'),
            ("spec.ephemeralContainers[0].ports", "Forbidden: cannot be set for an Ephemeral Container"),
            ("spec.ephemeralContainers[0].targetContainerName", 'Not found: "nope"')} <= causes(exc)

    main = copy.deepcopy(old)
    main["spec"]["ephemeralContainers"] = [dict(debug)]
    with pytest.raises(errors.Invalid):
        strategy.prepare_update(POD, old, main)
