"""Validation causes, worded and placed as upstream's field errors."""

import pytest

from netemu.api import kinds, strategy, validation as v
from netemu.api.defaults import apply_defaults


def causes(kind, obj, defaults=True):
    if defaults:
        apply_defaults(kind, obj)
    return {(c["field"], c["message"]) for c in strategy.validate(kinds.by_kind_name(kind), obj)}


def fields(kind, obj, defaults=True):
    return {f for f, _ in causes(kind, obj, defaults)}


def meta(name="x", ns="default"):
    return {"name": name, "namespace": ns}


def svc(**spec):
    return {"metadata": meta("web"), "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}


# -- names and labels ------------------------------------------------------------------------

@pytest.mark.parametrize("name, ok", [
    ("a", True), ("web-1", True), ("a.b.c", True), ("1abc", True), ("A", False), ("a_b", False),
    ("-a", False), ("a-", False), ("a" * 253, True), ("a" * 254, False), ("a..b", False),
])
def test_dns1123_subdomain(name, ok):
    assert (v.is_dns1123_subdomain(name) == []) is ok


@pytest.mark.parametrize("name, ok", [("web", True), ("1web", False), ("a" * 63, True), ("a" * 64, False), ("a.b", False)])
def test_dns1035_label(name, ok):
    assert (v.is_dns1035_label(name) == []) is ok


@pytest.mark.parametrize("key, ok", [
    ("app", True), ("example.com/app", True), ("app.kubernetes.io/name", True), ("a/b/c", False),
    ("/a", False), ("Example.com/a", False), ("a" * 64, False), ("-a", False), ("k8s.io/", False), ("A_b.c", True),
])
def test_qualified_names(key, ok):
    assert (v.is_qualified_name(key) == []) is ok


@pytest.mark.parametrize("value, ok", [("", True), ("web", True), ("a-b_c.d", True), ("-a", False), ("a b", False), ("a" * 64, False)])
def test_label_values(value, ok):
    assert (v.is_label_value(value) == []) is ok


def test_object_meta_causes():
    got = causes("ConfigMap", {"metadata": {"name": "Bad_Name", "namespace": "default",
                                            "labels": {"bad key!": "v", "ok": "bad value!"},
                                            "annotations": {"a": "x" * 300000},
                                            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "1", "controller": True},
                                                                {"apiVersion": "v1", "kind": "X", "name": "p", "uid": "2", "controller": True}]}})
    got_fields = {f for f, _ in got}
    assert {"metadata.name", "metadata.labels", "metadata.annotations", "metadata.ownerReferences"} <= got_fields
    assert ("metadata.annotations", "Too long: must have at most 262144 bytes") in got
    assert any(m.startswith('Invalid value: "bad key!": name part must consist of alphanumeric') for f, m in got)
    assert ("metadata.namespace", "Forbidden: not allowed on this type") in causes("Node", {"metadata": meta("n")})


# -- Service -------------------------------------------------------------------------------------

def test_valid_services_pass():
    assert causes("Service", svc()) == set()
    assert causes("Service", svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])) == set()
    assert causes("Service", svc(clusterIP="None", ports=[])) == set()
    assert causes("Service", {"metadata": meta("db"), "spec": {"type": "ExternalName", "externalName": "db.example.com"}}) == set()
    assert causes("Service", svc(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=31000)) == set()


def test_service_port_causes():
    got = causes("Service", svc(ports=[{"port": 0, "protocol": "XYZ", "targetPort": 70000},
                                       {"port": 80, "name": "Bad"}, {"port": 81, "name": "Bad"}]))
    assert ("spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive") in got
    assert ("spec.ports[0].protocol", 'Unsupported value: "XYZ": supported values: "SCTP", "TCP", "UDP"') in got
    assert ("spec.ports[0].targetPort", "Invalid value: 70000: must be between 1 and 65535, inclusive") in got
    assert ("spec.ports[0].name", "Required value") in got
    assert ("spec.ports[2].name", 'Duplicate value: "Bad"') in got
    assert any(f == "spec.ports[1].name" and "RFC 1123 label" in m for f, m in got)


def test_service_type_and_fields_per_type():
    assert ("spec.type", 'Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"') \
        in causes("Service", svc(type="Foo"))
    got = causes("Service", svc(ports=[{"port": 80, "nodePort": 30080}]))
    assert ("spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'") in got
    assert ("spec.ports", "Required value") in causes("Service", svc(ports=[]))
    assert ("spec.externalName", "Required value") in causes("Service", {"metadata": meta("e"), "spec": {"type": "ExternalName"}})
    assert "spec.clusterIPs[0]" in fields("Service", svc(clusterIP="300.1.1.1"))
    assert "spec.healthCheckNodePort" in fields("Service", svc(healthCheckNodePort=31000))
    assert "spec.externalTrafficPolicy" in fields("Service", svc(type="NodePort", externalTrafficPolicy="Nearest"))
    assert "spec.allocateLoadBalancerNodePorts" in fields("Service", svc(type="NodePort", allocateLoadBalancerNodePorts=True))


def test_service_session_affinity_timeout():
    got = causes("Service", svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}}))
    assert ("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            "Invalid value: 0: must be greater than 0 and less than 86400") in got
    assert "spec.sessionAffinity" in fields("Service", svc(sessionAffinity="Sticky"))


def test_service_name_must_be_dns1035():
    obj = svc()
    obj["metadata"]["name"] = "1web"
    assert "metadata.name" in fields("Service", obj)


# -- Pod -----------------------------------------------------------------------------------------

def pod(**spec):
    return {"metadata": meta("p"), "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def test_valid_pod_passes():
    assert causes("Pod", pod()) == set()


def test_pod_causes():
    got = causes("Pod", pod(containers=[
        {"name": "c", "image": "x", "ports": [{"containerPort": 70000, "name": "http"}, {"containerPort": 80, "name": "http"}],
         "env": [{"name": "1BAD"}], "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2", "memory": "lots"}},
         "volumeMounts": [{"name": "nope", "mountPath": "/x"}]},
        {"name": "c"}], restartPolicy="Sometimes", dnsPolicy="Magic"))
    assert ("spec.containers[0].ports[0].containerPort", "Invalid value: 70000: must be between 1 and 65535, inclusive") in got
    assert ("spec.containers[0].ports[1].name", 'Duplicate value: "http"') in got
    assert ("spec.containers[1].name", 'Duplicate value: "c"') in got
    assert ("spec.containers[1].image", "Required value") in got
    assert ("spec.restartPolicy", 'Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"') in got
    assert "spec.dnsPolicy" in {f for f, _ in got}
    assert ("spec.containers[0].resources.requests", 'Invalid value: "2": must be less than or equal to cpu limit of 1') in got
    assert any(f == "spec.containers[0].resources.requests[memory]" and "quantities must match" in m for f, m in got)
    assert any(f == "spec.containers[0].env[0].name" and "valid environment variable name" in m for f, m in got)
    assert ("spec.containers[0].volumeMounts[0].name", 'Not found: "nope"') in got
    assert ("spec.containers", "Required value") in causes("Pod", {"metadata": meta("p"), "spec": {}})


def test_tolerations():
    got = fields("Pod", pod(tolerations=[{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"},
                                         {"key": "k", "effect": "Sometimes"}, {"key": "k", "tolerationSeconds": 5, "effect": "NoSchedule"}]))
    assert {"spec.tolerations[0].operator", "spec.tolerations[1].operator", "spec.tolerations[2].effect",
            "spec.tolerations[3].effect"} <= got


# -- apps ------------------------------------------------------------------------------------------

def deploy(selector=None, labels=None, **spec):
    labels = labels if labels is not None else {"app": "web"}
    return {"metadata": meta("web"), "spec": {"selector": {"matchLabels": selector if selector is not None else labels},
                                              "template": {"metadata": {"labels": labels},
                                                           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, **spec}}


def test_valid_deployment_and_replicaset_pass():
    assert causes("Deployment", deploy()) == set()
    assert causes("ReplicaSet", deploy()) == set()


def test_selector_must_match_template_labels():
    got = causes("Deployment", deploy(selector={"app": "other"}))
    assert ("spec.template.metadata.labels", 'Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`') in got
    assert "spec.selector" in fields("Deployment", deploy(selector={}, labels={}))
    obj = deploy()
    del obj["spec"]["selector"]
    assert ("spec.selector", "Required value") in causes("ReplicaSet", obj)


def test_deployment_spec_causes():
    got = causes("Deployment", deploy(replicas=-1, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}))
    assert ("spec.replicas", "Invalid value: -1: must be greater than or equal to 0") in got
    assert ("spec.strategy.rollingUpdate.maxUnavailable", 'Invalid value: "0%": may not be 0 when `maxSurge` is 0') in got
    assert "spec.strategy.rollingUpdate" in fields("Deployment", deploy(strategy={"type": "Recreate", "rollingUpdate": {}}))
    assert "spec.strategy.rollingUpdate.maxSurge" in fields("Deployment", deploy(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "lots"}}))
    assert "spec.strategy.rollingUpdate.maxUnavailable" in fields("Deployment", deploy(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}}))
    obj = deploy()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert ("spec.template.spec.restartPolicy", 'Unsupported value: "Never": supported values: "Always"') in causes("Deployment", obj)


# -- the smaller kinds -----------------------------------------------------------------------------

def test_endpoint_slice():
    ok = {"metadata": meta("s"), "addressType": "IPv4",
          "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}, "nodeName": "n1"}],
          "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    assert causes("EndpointSlice", ok) == set()
    bad = {"metadata": meta("s"), "addressType": "IPv5",
           "endpoints": [{"addresses": []}, {"addresses": ["not-an-ip"]}], "ports": [{"port": 0}]}
    got = causes("EndpointSlice", bad)
    assert ("addressType", 'Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"') in got
    assert ("endpoints[0].addresses", "Required value: must contain at least 1 address") in got
    bad["addressType"] = "IPv4"
    assert ("endpoints[1].addresses[0]", 'Invalid value: "not-an-ip": must be a valid IPv4 address') in causes("EndpointSlice", bad)


def test_configmap_secret_keys():
    assert "data" in fields("ConfigMap", {"metadata": meta("c"), "data": {"bad key": "v"}})
    assert "binaryData" in fields("ConfigMap", {"metadata": meta("c"), "data": {"k": "v"}, "binaryData": {"k": "YQ=="}})
    assert "data[k]" in fields("Secret", {"metadata": meta("s"), "data": {"k": "not base64!"}})
    assert causes("Secret", {"metadata": meta("s"), "data": {"k": "aGk="}}) == set()


def test_namespace_node_lease_ingress_rbac():
    assert "metadata.name" in fields("Namespace", {"metadata": {"name": "a.b"}})
    assert causes("Node", {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}}) == set()
    assert "spec.taints[0].effect" in fields("Node", {"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "k", "effect": "Maybe"}]}})
    assert "spec.leaseDurationSeconds" in fields("Lease", {"metadata": meta("l"), "spec": {"leaseDurationSeconds": 0}})
    ing = {"metadata": meta("i"), "spec": {"rules": [{"host": "a.example", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
    assert causes("Ingress", ing) == set()
    ing["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = "Fuzzy"
    assert "spec.rules[0].http.paths[0].pathType" in fields("Ingress", ing)
    role = {"metadata": meta("r"), "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": []}]}
    assert ("rules[0].verbs", "Required value: verbs must contain at least one value") in causes("Role", role)
    crb = {"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"},
           "subjects": [{"kind": "ServiceAccount", "name": "s"}]}
    got = fields("ClusterRoleBinding", crb)
    assert {"roleRef.kind", "subjects[0].namespace"} <= got
    assert causes("IngressClass", {"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}) == set()


def test_duplicate_node_ports_and_volume_sources():
    got = causes("Service", svc(type="NodePort", ports=[{"name": "a", "port": 80, "nodePort": 30080},
                                                         {"name": "b", "port": 81, "nodePort": 30080},
                                                         {"name": "c", "port": 81, "protocol": "UDP", "nodePort": 30080}]))
    assert ("spec.ports[1].nodePort", "Duplicate value: 30080") in got
    assert not any(f == "spec.ports[2].nodePort" for f, _ in got)  # same number, other protocol: fine
    got = causes("Pod", pod(volumes=[{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}]))
    assert ("spec.volumes[0].configMap", "Forbidden: may not specify more than 1 volume type") in got
    assert causes("Pod", pod(volumes=[{"name": "v"}])) == set()  # defaulted to emptyDir
    assert ("spec.volumes[0]", "Required value: must specify a volume type") in causes("Pod", pod(volumes=[{"name": "v"}]), defaults=False)


def test_load_balancer_source_ranges():
    assert causes("Service", svc(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8", " 192.168.0.0/16"])) == set()
    got = fields("Service", svc(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8", "nope"]))
    assert "spec.loadBalancerSourceRanges[1]" in got
    assert "spec.loadBalancerSourceRanges" in fields("Service", svc(loadBalancerSourceRanges=["10.0.0.0/8"]))


def test_well_known_secret_types_need_their_keys():
    got = causes("Secret", {"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "YQ=="}})
    assert got == {("data[tls.key]", "Required value")}
    assert causes("Secret", {"metadata": meta("s"), "type": "kubernetes.io/basic-auth", "data": {"password": "YQ=="}}) == set()
    assert fields("Secret", {"metadata": meta("s"), "type": "kubernetes.io/basic-auth"}) == {"data[username]", "data[password]"}
