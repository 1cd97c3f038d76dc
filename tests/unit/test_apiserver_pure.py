"""Pure parts of the API server: routing, discovery, deletion plans, scale, tables, tokens."""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest

from netemu.api import errors, kinds
from netemu.apiserver import auth, body, deletion, discovery, listing, openapi, routing, scale, tables

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def rt(resource: str, group: str = "", version: str = "v1") -> kinds.ResourceType:
    found = kinds.by_resource(group, version, resource)
    assert found is not None
    return found


# -- routing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path, resource, ns, name, sub, watch", [
    ("/api/v1/pods", "pods", None, None, None, False),
    ("/api/v1/namespaces/default/pods", "pods", "default", None, None, False),
    ("/api/v1/namespaces/default/pods/web-1", "pods", "default", "web-1", None, False),
    ("/api/v1/namespaces/default/pods/web-1/status", "pods", "default", "web-1", "status", False),
    ("/api/v1/namespaces/default/pods/web-1/binding", "pods", "default", "web-1", "binding", False),
    ("/api/v1/namespaces/kube-system", "namespaces", None, "kube-system", None, False),
    ("/api/v1/namespaces/kube-system/status", "namespaces", None, "kube-system", "status", False),
    ("/api/v1/namespaces", "namespaces", None, None, None, False),
    ("/apis/apps/v1/namespaces/ns1/deployments/web/scale", "deployments", "ns1", "web", "scale", False),
    ("/api/v1/watch/namespaces/default/services", "services", "default", None, None, True),
    ("/apis/apps/v1/watch/deployments", "deployments", None, None, None, True),
    ("/api/v1/nodes/node-1", "nodes", None, "node-1", None, False),
])
def test_parse_resource_paths(path, resource, ns, name, sub, watch):
    t = routing.parse(path)
    assert isinstance(t, routing.Target)
    assert (t.rt.resource, t.namespace, t.name, t.subresource, t.watch) == (resource, ns, name, sub, watch)


@pytest.mark.parametrize("path", [
    "/api/v2/pods", "/apis/apps/v2/deployments", "/api/v1/widgets", "/apis/nope/v1",
    "/apis/apps/v1/namespaces/x/nodes", "/api/v1/namespaces/x/pods/a/proxy", "/healthz/x",
    "/api/v1/namespaces/x/pods/a/status/extra", "/apis/apps/v1/namespaces/x/deployments/a/binding",
])
def test_unknown_paths_are_404(path):
    with pytest.raises(errors.NotFound):
        routing.parse(path)


def test_discovery_paths():
    assert routing.parse("/api") == routing.GroupVersion(legacy=True)
    assert routing.parse("/apis") == routing.GroupVersion()
    assert routing.parse("/apis/apps") == routing.GroupVersion(group="apps")
    assert routing.parse("/apis/apps/v1") == routing.GroupVersion(group="apps", version="v1")


def test_discovery_documents_list_served_subresources_only():
    core = discovery.api_resource_list("", "v1")
    names = {r["name"]: r for r in core["resources"]}
    assert names["pods"]["shortNames"] == ["po"] and names["pods"]["categories"] == ["all"]
    assert "pods/status" in names and "pods/binding" in names
    assert "nodes/proxy" not in names and names["pods/log"]["verbs"] == ["get"]
    assert names["pods/attach"]["kind"] == "PodAttachOptions" and names["pods/attach"]["verbs"] == ["create", "get"]
    assert names["pods/exec"]["kind"] == "PodExecOptions" and names["pods/exec"]["verbs"] == ["create", "get"]
    assert names["services"]["namespaced"] is True and names["nodes"]["namespaced"] is False
    apps = {r["name"]: r for r in discovery.api_resource_list("apps", "v1")["resources"]}
    assert apps["deployments/scale"]["kind"] == "Scale" and apps["deployments/scale"]["group"] == "autoscaling"
    groups = {g["name"] for g in discovery.api_group_list()["groups"]}
    assert {"apps", "discovery.k8s.io", "coordination.k8s.io", "networking.k8s.io"} <= groups
    assert discovery.version_info()["gitVersion"].startswith("v1.32")


def test_openapi_names_field_validation_for_every_patchable_kind():
    idx = openapi.index()["paths"]
    assert "api/v1" in idx and "apis/apps/v1" in idx
    doc = openapi.document("apps", "v1")
    patches = [p["patch"] for p in doc["paths"].values() if "patch" in p]
    kinds_seen = {p["x-kubernetes-group-version-kind"]["kind"] for p in patches}
    assert kinds_seen == {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ControllerRevision"}
    assert all(any(q["name"] == "fieldValidation" for q in p["parameters"]) for p in patches)
    assert openapi.document("apps", "v9") is None


# -- bodies -----------------------------------------------------------------------------------

def test_body_decoding_errors_are_400_and_413():
    with pytest.raises(errors.BadRequest):
        body.decode_object(b'{"kind": ', "application/json")
    with pytest.raises(errors.BadRequest):
        body.decode_object(b"a: [1, 2", "application/yaml")
    with pytest.raises(errors.BadRequest):
        body.decode_object(b"[1, 2]", "application/json")
    with pytest.raises(errors.RequestEntityTooLarge):
        body.decode_object(b" " * (body.MAX_BODY_BYTES + 1), "application/json")
    assert body.decode_object(b"kind: ConfigMap\n", "application/yaml") == {"kind": "ConfigMap"}


# -- deletion ---------------------------------------------------------------------------------

def pod(node: str = "", **meta):
    return {"metadata": {"name": "p", "namespace": "default", "resourceVersion": "5", **meta},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]}, "status": {"phase": "Running"}}


def test_unscheduled_pod_is_removed_at_once():
    assert deletion.plan("Pod", pod(), {}, NOW).remove


def test_bound_pod_gets_a_grace_period_then_grace_zero_removes_it():
    first = deletion.plan("Pod", pod("node-1"), {}, NOW)
    assert not first.remove
    md = first.updated["metadata"]
    assert md["deletionGracePeriodSeconds"] == 30
    assert md["deletionTimestamp"] == "2026-01-01T12:00:30Z"
    again = deletion.plan("Pod", first.updated, {}, NOW)
    assert not again.remove
    assert deletion.plan("Pod", first.updated, {"gracePeriodSeconds": 0}, NOW).remove


def test_grace_from_options_and_spec():
    p = pod("n")
    p["spec"]["terminationGracePeriodSeconds"] = 5
    assert deletion.plan("Pod", p, {}, NOW).updated["metadata"]["deletionGracePeriodSeconds"] == 5
    assert deletion.plan("Pod", p, {"gracePeriodSeconds": 2}, NOW).updated["metadata"]["deletionGracePeriodSeconds"] == 2


def test_finalizers_keep_the_object_and_policies_add_theirs():
    cm = {"metadata": {"name": "c", "finalizers": ["example.com/x"]}}
    kept = deletion.plan("ConfigMap", cm, {}, NOW)
    assert not kept.remove and kept.updated["metadata"]["deletionTimestamp"]
    fg = deletion.plan("Deployment", {"metadata": {"name": "d"}}, {"propagationPolicy": "Foreground"}, NOW)
    assert fg.updated["metadata"]["finalizers"] == ["foregroundDeletion"]
    orphan = deletion.plan("ReplicaSet", {"metadata": {"name": "r"}}, {"propagationPolicy": "Orphan"}, NOW)
    assert orphan.updated["metadata"]["finalizers"] == ["orphan"]
    assert deletion.plan("Deployment", {"metadata": {"name": "d"}}, {"propagationPolicy": "Background"}, NOW).remove
    assert deletion.finalized({"metadata": {"deletionTimestamp": "x", "deletionGracePeriodSeconds": 0}})
    assert not deletion.finalized({"metadata": {"deletionTimestamp": "x", "finalizers": ["a"]}})


def test_bad_delete_options():
    with pytest.raises(errors.Invalid):
        deletion.check_options({"propagationPolicy": "Sideways"})
    with pytest.raises(errors.BadRequest):
        deletion.check_options({"gracePeriodSeconds": "soon"})
    with pytest.raises(errors.Conflict):
        deletion.check_preconditions(pod(uid="a"), {"preconditions": {"uid": "b"}})


# -- scale ------------------------------------------------------------------------------------

def test_scale_round_trip():
    deploy = {"metadata": {"name": "web", "namespace": "d", "resourceVersion": "7", "uid": "u"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"},
                                                    "matchExpressions": [{"key": "tier", "operator": "In",
                                                                          "values": ["a", "b"]}]}},
              "status": {"replicas": 2}}
    s = scale.to_scale(deploy)
    assert s["spec"]["replicas"] == 2 and s["status"]["selector"] == "app=web,tier in (a,b)"
    s["spec"]["replicas"] = 5
    assert scale.apply_scale(deploy, s)["spec"]["replicas"] == 5
    with pytest.raises(errors.Invalid):
        scale.apply_scale(deploy, {"spec": {"replicas": -1}})


# -- tables -----------------------------------------------------------------------------------

def test_table_negotiation():
    assert tables.accepts_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert tables.accepts_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io")
    assert not tables.accepts_table("application/json")
    assert not tables.accepts_table(None)


@pytest.mark.parametrize("seconds, text", [(5, "5s"), (119, "119s"), (200, "3m20s"), (600, "10m"),
                                           (3600 * 5 + 120, "5h2m"), (3600 * 30, "30h"),
                                           (86400 * 3 + 3600 * 4, "3d4h"), (86400 * 400, "400d"),
                                           (86400 * 365 * 3, "3y")])
def test_human_duration(seconds, text):
    assert tables.human_duration(seconds) == text


def test_service_and_deployment_rows_like_upstream():
    svc = {"metadata": {"name": "web", "creationTimestamp": "2026-01-01T11:59:00Z"},
           "spec": {"type": "NodePort", "clusterIP": "10.96.4.5", "selector": {"app": "web"},
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}}
    t = tables.table("Service", [svc], NOW)
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Type", "Cluster-IP", "External-IP",
                                                           "Port(s)", "Age", "Selector"]
    assert t["rows"][0]["cells"] == ["web", "NodePort", "10.96.4.5", "<none>", "80:30080/TCP,53/UDP", "60s", "app=web"]
    lb = {**svc, "spec": {**svc["spec"], "type": "LoadBalancer"}}
    assert tables.row("Service", lb, NOW)["cells"][3] == "<pending>"
    deploy = {"metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                                                   "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
              "status": {"readyReplicas": 1, "updatedReplicas": 3, "availableReplicas": 1}}
    assert tables.row("Deployment", deploy, NOW)["cells"] == ["web", "1/3", 3, 1, "<unknown>", "c", "nginx", "app=web"]
    assert tables.row("Widget", {"metadata": {"name": "w"}}, NOW)["cells"] == ["w", "<unknown>"]


def test_pod_row_shows_terminating():
    p = pod("node-1", deletionTimestamp="2026-01-01T12:00:30Z")
    p["status"]["podIP"] = "10.244.1.5"
    cells = tables.row("Pod", p, NOW)["cells"]
    assert cells[2] == "Terminating" and cells[5] == "10.244.1.5" and cells[6] == "node-1"


# -- continue tokens and selectors ------------------------------------------------------------

def test_continue_token_round_trip_and_garbage():
    token = listing.encode_continue(42, "/registry/pods/default/web-3")
    assert listing.decode_continue(token, "/registry/pods/") == (42, "/registry/pods/default/web-3")
    with pytest.raises(errors.BadRequest):
        listing.decode_continue("not-a-token!", "/registry/pods/")
    with pytest.raises(errors.BadRequest):
        listing.decode_continue(token, "/registry/services/specs/")


def test_field_selector_labels_are_checked_per_kind():
    pods = rt("pods")
    match = listing.object_filter(pods, "app=web", "spec.nodeName=n1,status.phase!=Failed")
    assert match(pod("n1", labels={"app": "web"}))
    assert not match(pod("n2", labels={"app": "web"}))
    with pytest.raises(errors.BadRequest):
        listing.object_filter(rt("configmaps"), None, "spec.nodeName=n1")
    with pytest.raises(errors.BadRequest):
        listing.object_filter(pods, "app in (", None)
    assert listing.object_filter(pods, "", "") is None


# -- auth -------------------------------------------------------------------------------------

def test_token_is_created_once_with_mode_0600(tmp_path):
    token = auth.load_or_create_token(tmp_path)
    assert len(token) >= 32 and auth.load_or_create_token(tmp_path) == token
    assert stat.S_IMODE(os.stat(tmp_path / auth.TOKEN_FILE).st_mode) == 0o600


def test_authenticator_static_token_anonymous_and_401():
    import asyncio

    from netemu.apiserver.authn import ANONYMOUS, Authenticator
    from netemu.apiserver.security import ADMIN_USER
    authn = Authenticator({"s3cret": ADMIN_USER})

    def who(header, cert=None):
        return asyncio.run(authn.authenticate(header, cert))
    assert who("Bearer s3cret").name == "kubernetes-admin"
    assert set(who("Bearer s3cret").groups) == {"kubeadm:cluster-admins", "system:authenticated"}
    for header in (None, "", "Basic s3cret", "s3cret", "Bearer "):          # no bearer token: anonymous
        assert who(header) == ANONYMOUS
    for header in ("Bearer wrong", "Bearer s3cret2", "bearer a.b.c"):        # a token nobody owns: 401
        with pytest.raises(errors.Unauthorized):
            who(header)
    cert = {"subject": ((("organizationName", "devs"),), (("organizationName", "ops"),), (("commonName", "jane"),))}
    jane = who("Bearer wrong", cert)                                         # a client certificate comes first
    assert jane.name == "jane" and jane.groups == ("devs", "ops", "system:authenticated")
    with pytest.raises(errors.Unauthorized):
        asyncio.run(Authenticator({}, anonymous=False).authenticate(None, None))


def test_event_columns_like_kubectl_get_events():
    ev = {"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Scheduled", "message": "assigned",
          "involvedObject": {"kind": "Pod", "name": "web-1"}, "source": {"component": "default-scheduler"},
          "firstTimestamp": "2026-01-01T11:58:00Z", "lastTimestamp": "2026-01-01T11:59:30Z", "count": 2}
    t = tables.table("Event", [ev], NOW)
    names = [c["name"] for c in t["columnDefinitions"] if c["priority"] == 0]
    assert names == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert t["rows"][0]["cells"] == ["30s", "Normal", "Scheduled", "pod/web-1", "", "default-scheduler",
                                     "assigned", "2m", 2, "web.1"]


def test_pod_with_finalizer_waits_for_both_kubelet_and_finalizer():
    p = pod("node-1", finalizers=["example.com/hold"])
    marked = deletion.plan("Pod", p, {}, NOW).updated
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    after_kubelet = deletion.plan("Pod", marked, {"gracePeriodSeconds": 0}, NOW)
    assert not after_kubelet.remove                                   # the finalizer still holds it
    md = after_kubelet.updated["metadata"]
    assert md["deletionGracePeriodSeconds"] == 0 and md["deletionTimestamp"] == "2026-01-01T12:00:00Z"
    md["finalizers"] = []
    assert deletion.finalized(after_kubelet.updated)                  # removing the finalizer removes it
    assert not deletion.finalized(marked | {"metadata": {**marked["metadata"], "finalizers": []}})


def test_rbac_and_ingress_rows():
    rb = {"metadata": {"name": "rb"}, "roleRef": {"kind": "Role", "name": "reader"},
          "subjects": [{"kind": "User", "name": "bob"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}
    assert tables.row("RoleBinding", rb, NOW)["cells"] == ["rb", "Role/reader", "<unknown>", "bob", "", "ns/sa"]
    role = {"metadata": {"name": "reader", "creationTimestamp": "2026-01-01T10:00:00Z"}}
    assert tables.row("Role", role, NOW)["cells"] == ["reader", "2026-01-01T10:00:00Z"]
    ing = {"metadata": {"name": "i"}, "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.com"}]}}
    assert tables.row("Ingress", ing, NOW)["cells"] == ["i", "nginx", "a.com", "", "80", "<unknown>"]


def _pod_with(statuses, phase="Running", **extra):
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": f"c{i}"} for i in range(len(statuses))],
                                                **extra.pop("spec", {})},
            "status": {"phase": phase, "containerStatuses": statuses, **extra}}


@pytest.mark.parametrize("statuses, phase, extra, ready_status", [
    ([{"ready": True, "state": {"running": {}}}], "Running", {}, ("1/1", "Running")),
    ([{"ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 3}], "Running", {},
     ("0/1", "CrashLoopBackOff")),
    ([{"ready": False, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}], "Succeeded", {},
     ("0/1", "Completed")),
    ([{"ready": False, "state": {"terminated": {"exitCode": 3}}}], "Failed", {}, ("0/1", "ExitCode:3")),
    ([{"ready": True, "state": {"running": {}}}, {"ready": False, "state": {"terminated": {"reason": "Completed"}}}],
     "Running", {"conditions": [{"type": "Ready", "status": "False"}]}, ("1/2", "NotReady")),
    ([], "Pending", {"initContainerStatuses": [{"state": {"terminated": {"exitCode": 0}}},
                                               {"state": {"running": {}}}],
                     "spec": {"initContainers": [{"name": "a"}, {"name": "b"}]}}, ("0/0", "Init:1/2")),
])
def test_pod_status_column_like_printpod(statuses, phase, extra, ready_status):
    cells = tables.row("Pod", _pod_with(statuses, phase, **extra), NOW)["cells"]
    assert (cells[1], cells[2]) == ready_status
