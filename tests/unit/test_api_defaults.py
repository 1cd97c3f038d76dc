"""Upstream defaulting per kind (pkg/apis/*/v1/defaults.go)."""

from netemu.api.defaults import apply_defaults


def test_service_defaults():
    svc = apply_defaults("Service", {"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}})
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}
    assert spec["ports"][1] == {"port": 53, "protocol": "UDP", "targetPort": "dns"}
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec and "allocateLoadBalancerNodePorts" not in spec
    assert spec["ipFamilyPolicy"] == "SingleStack" and spec["ipFamilies"] == ["IPv4"]


def test_service_type_dependent_defaults():
    lb = apply_defaults("Service", {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})["spec"]
    assert lb["externalTrafficPolicy"] == "Cluster" and lb["allocateLoadBalancerNodePorts"] is True
    np_ = apply_defaults("Service", {"spec": {"type": "NodePort", "externalTrafficPolicy": "Local"}})["spec"]
    assert np_["externalTrafficPolicy"] == "Local" and "allocateLoadBalancerNodePorts" not in np_
    ext = apply_defaults("Service", {"spec": {"type": "ExternalName", "externalName": "x.example"}})["spec"]
    assert "internalTrafficPolicy" not in ext and "ipFamilies" not in ext and "clusterIPs" not in ext


def test_session_affinity_client_ip_timeout():
    spec = apply_defaults("Service", {"spec": {"sessionAffinity": "ClientIP"}})["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    spec = apply_defaults("Service", {"spec": {"sessionAffinity": "ClientIP",
                                               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}})["spec"]
    assert spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 60
    for partial in ({}, {"clientIP": {}}, {"clientIP": None}):  # upstream replaces the whole config
        spec = apply_defaults("Service", {"spec": {"sessionAffinity": "ClientIP",
                                                   "sessionAffinityConfig": partial}})["spec"]
        assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}, partial


def test_session_affinity_none_clears_its_config():
    """SetDefaults_Service: ``if SessionAffinity == None { SessionAffinityConfig = nil }``."""
    for affinity in ("None", None, ""):
        spec = apply_defaults("Service", {"spec": {"sessionAffinity": affinity, "sessionAffinityConfig":
                                                   {"clientIP": {"timeoutSeconds": 60}}}})["spec"]
        assert spec["sessionAffinity"] == "None" and "sessionAffinityConfig" not in spec


def test_traffic_policies_follow_upstream_types():
    ext_ips = apply_defaults("Service", {"spec": {"externalIPs": ["203.0.113.250"]}})["spec"]
    assert ext_ips["externalTrafficPolicy"] == "Cluster"          # ExternallyAccessible
    odd = apply_defaults("Service", {"spec": {"type": "Bogus"}})["spec"]
    assert "internalTrafficPolicy" not in odd and "externalTrafficPolicy" not in odd
    lb = apply_defaults("Service", {"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {
        "ingress": [{"ip": "172.18.255.200"}, {"ip": "172.18.255.201", "ipMode": "Proxy"}]}}})
    assert [i["ipMode"] for i in lb["status"]["loadBalancer"]["ingress"]] == ["VIP", "Proxy"]


def test_cluster_ip_and_cluster_ips_are_kept_in_step():
    assert apply_defaults("Service", {"spec": {"clusterIP": "10.96.0.5"}})["spec"]["clusterIPs"] == ["10.96.0.5"]
    assert apply_defaults("Service", {"spec": {"clusterIPs": ["None"]}})["spec"]["clusterIP"] == "None"


def test_deployment_and_pod_template_defaults():
    d = apply_defaults("Deployment", {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "nginx"}, {"name": "b", "image": "reg:5000/x:1.2", "ports": [{"containerPort": 8080}]},
        {"name": "c", "image": "x@sha256:abc", "livenessProbe": {"httpGet": {"port": 80}}}]}}}})
    spec = d["spec"]
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always" and pod["terminationGracePeriodSeconds"] == 30
    assert pod["dnsPolicy"] == "ClusterFirst" and pod["schedulerName"] == "default-scheduler"
    a, b, c = pod["containers"]
    assert a["imagePullPolicy"] == "Always" and b["imagePullPolicy"] == "IfNotPresent"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert a["terminationMessagePath"] == "/dev/termination-log" and a["terminationMessagePolicy"] == "File"
    assert b["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                  "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}


def test_recreate_strategy_gets_no_rolling_update():
    d = apply_defaults("Deployment", {"spec": {"strategy": {"type": "Recreate"}, "replicas": 0}})
    assert d["spec"]["strategy"] == {"type": "Recreate"} and d["spec"]["replicas"] == 0


def test_pod_defaults_requests_from_limits_and_host_ports():
    pod = apply_defaults("Pod", {"spec": {"hostNetwork": True, "containers": [
        {"name": "a", "image": "x:1", "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Mi"}},
         "ports": [{"containerPort": 53}]}]}})
    c = pod["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"memory": "1Mi", "cpu": "1"}
    assert c["ports"][0]["hostPort"] == 53


def test_other_kinds():
    assert apply_defaults("ReplicaSet", {"spec": {}})["spec"]["replicas"] == 1
    assert apply_defaults("Namespace", {})["status"] == {"phase": "Active"}
    assert apply_defaults("Secret", {})["type"] == "Opaque"
    eps = apply_defaults("EndpointSlice", {"ports": [{"port": 80}]})
    assert eps["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    ep = apply_defaults("Endpoints", {"subsets": [{"ports": [{"port": 80}]}]})
    assert ep["subsets"][0]["ports"][0]["protocol"] == "TCP"
    node = apply_defaults("Node", {"status": {"capacity": {"cpu": "2"}}})
    assert node["status"]["allocatable"] == {"cpu": "2"}
    rb = apply_defaults("RoleBinding", {"roleRef": {"kind": "Role", "name": "r"},
                                        "subjects": [{"kind": "User", "name": "u"},
                                                     {"kind": "ServiceAccount", "name": "s", "namespace": "d"}]})
    assert rb["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert rb["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io" and rb["subjects"][1]["apiGroup"] == ""
    assert apply_defaults("ConfigMap", {"data": {"a": "b"}}) == {"data": {"a": "b"}}


def test_defaulting_is_idempotent_and_survives_garbage():
    once = apply_defaults("Service", {"spec": {"ports": [{"port": 80}]}})
    import copy
    assert apply_defaults("Service", copy.deepcopy(once)) == once
    for kind in ("Service", "Pod", "Deployment", "ReplicaSet", "Endpoints", "EndpointSlice", "RoleBinding"):
        for junk in ({"spec": "x"}, {"spec": {"ports": "x", "containers": 5, "template": []}},
                     {"spec": {"template": {"spec": {"containers": [1, None]}}}}, {"subsets": [None]},
                     {"roleRef": "x", "subjects": "y"}, {"spec": {"strategy": "x"}},
                     {"spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": "x"}}):
            apply_defaults(kind, junk)


def test_node_pod_cidr_fields_are_kept_in_step():
    assert apply_defaults("Node", {"spec": {"podCIDR": "10.244.1.0/24"}})["spec"]["podCIDRs"] == ["10.244.1.0/24"]
    assert apply_defaults("Node", {"spec": {"podCIDRs": ["10.244.2.0/24"]}})["spec"]["podCIDR"] == "10.244.2.0/24"
