"""The API server over HTTP, in-process on a free 127.0.0.1 port, with a real SQLite store.

Each test drives it through the netemu client (and raw HTTP for malformed input) and checks
the answer and, for every rejected request, that the store did not change.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from netemu.api import errors, kinds
from netemu.testing.apiserver import api_server

NS = kinds.by_resource("", "v1", "namespaces")
CM = kinds.by_resource("", "v1", "configmaps")
PODS = kinds.by_resource("", "v1", "pods")
SVC = kinds.by_resource("", "v1", "services")
NODES = kinds.by_resource("", "v1", "nodes")
DEPLOY = kinds.by_resource("apps", "v1", "deployments")


def run(tmp_path, scenario, **kw):
    async def main():
        async with api_server(tmp_path, **kw) as srv:
            await scenario(srv)
    asyncio.run(asyncio.wait_for(main(), 60))


async def raw(srv, method, path, data=b"", content_type="application/json", token=True, headers=None):
    hdrs = {"Content-Type": content_type, **(headers or {})}
    if token:
        hdrs["Authorization"] = f"Bearer {srv.token}"
    async with aiohttp.ClientSession() as s:
        async with s.request(method, srv.url + path, data=data, headers=hdrs) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


def cm(name, ns="default", **labels):
    return {"metadata": {"name": name, "namespace": ns, "labels": labels}, "data": {"k": "v"}}


def pod(name, node="", ns="default", **labels):
    spec = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": spec}


def deployment(name, replicas=2):
    labels = {"app": name}
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def test_bootstrap_objects_and_discovery(tmp_path):
    async def scenario(srv):
        names = [n["metadata"]["name"] for n in (await srv.client.list(NS)).items]
        assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
        svc = await srv.client.get(SVC, "kubernetes", "default")
        assert svc["spec"]["clusterIP"] == "10.96.0.1" and svc["spec"]["ports"][0]["port"] == 443
        code, doc = await raw(srv, "GET", "/apis/apps/v1")
        assert code == 200 and doc["kind"] == "APIResourceList"
        code, _ = await raw(srv, "GET", "/healthz", token=False)
        assert code == 200
    run(tmp_path, scenario, rbac_policy=True)


def test_auth_wrong_token_is_401_and_anonymous_is_403(tmp_path):
    """Upstream with anonymous auth on (kubeadm's default): no credentials is system:anonymous,
    which may read /version and /healthz only; a token nobody owns is 401."""
    async def scenario(srv):
        code, doc = await raw(srv, "GET", "/api/v1/nodes", token=False)
        assert code == 403 and doc["reason"] == "Forbidden" and doc["kind"] == "Status"
        assert doc["message"] == ('nodes is forbidden: User "system:anonymous" cannot list resource "nodes" '
                                  'in API group "" at the cluster scope')
        assert doc["details"] == {"kind": "nodes"}                     # Go leaves out empty fields
        code, doc = await raw(srv, "GET", "/api", token=False)
        assert code == 403 and doc["message"] == 'forbidden: User "system:anonymous" cannot get path "/api"'
        code, doc = await raw(srv, "GET", "/api/v1/nodes", token=False, headers={"Authorization": "Bearer nope"})
        assert code == 401 and doc["reason"] == "Unauthorized" and doc["kind"] == "Status"
        code, _ = await raw(srv, "GET", "/version", token=False)
        assert code == 200
    run(tmp_path, scenario, rbac_policy=True)


def test_crud_and_conflicts(tmp_path):
    async def scenario(srv):
        c = srv.client
        created = await c.create(CM, cm("a"))
        assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
        with pytest.raises(errors.AlreadyExists):
            await c.create(CM, cm("a"))
        stale = dict(created)
        created["data"] = {"k": "2"}
        updated = await c.update(CM, created)
        assert updated["data"] == {"k": "2"}
        stale["data"] = {"k": "3"}
        rev = await srv.store.current_revision()
        with pytest.raises(errors.Conflict):
            await c.update(CM, stale)
        assert await srv.store.current_revision() == rev
        assert (await c.get(CM, "a", "default"))["data"] == {"k": "2"}
        await c.delete(CM, "a", "default")
        with pytest.raises(errors.NotFound):
            await c.get(CM, "a", "default")
        with pytest.raises(errors.NotFound):
            await c.create(CM, cm("b", ns="nowhere"))
    run(tmp_path, scenario)


def test_generate_name(tmp_path):
    async def scenario(srv):
        obj = await srv.client.create(CM, {"metadata": {"generateName": "web-", "namespace": "default"}})
        name = obj["metadata"]["name"]
        assert name.startswith("web-") and len(name) == len("web-") + 5
    run(tmp_path, scenario)


@pytest.mark.parametrize("method, path, data, content_type, code, reason", [
    ("POST", "/api/v1/namespaces/default/configmaps", b'{"metadata": ', "application/json", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/configmaps", b"metadata: [1,\n", "application/yaml", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/configmaps", b'{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}',
     "application/json", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/configmaps", b'{"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "x"}}',
     "application/json", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/configmaps", b'{"metadata": {"name": "Not_Valid"}}', "application/json", 422, "Invalid"),
    ("POST", "/api/v1/namespaces/default/widgets", b'{"metadata": {"name": "x"}}', "application/json", 404, "NotFound"),
    ("POST", "/apis/apps/v9/namespaces/default/deployments", b'{"metadata": {"name": "x"}}', "application/json", 404, "NotFound"),
    ("POST", "/api/v1/namespaces/default/configmaps", b"[1, 2, 3]", "application/json", 400, "BadRequest"),
    # server-side apply without apiVersion/kind, and without the required fieldManager
    ("PATCH", "/api/v1/namespaces/default/configmaps/x", b"{}", "application/apply-patch+yaml", 400, "BadRequest"),
    ("PATCH", "/api/v1/namespaces/default/configmaps/x", b"{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\"}",
     "application/apply-patch+yaml", 422, "Invalid"),
    ("PATCH", "/api/v1/namespaces/default/configmaps/x", b"{}", "text/plain", 415, "UnsupportedMediaType"),
    ("PUT", "/api/v1/namespaces/default/configmaps", b"{}", "application/json", 405, "MethodNotAllowed"),
    ("GET", "/api/v1/namespaces/default/configmaps?limit=ten", b"", "application/json", 400, "BadRequest"),
    ("GET", "/api/v1/pods?fieldSelector=spec.bogus%3Dx", b"", "application/json", 400, "BadRequest"),
    ("GET", "/api/v1/pods?labelSelector=app+in+(", b"", "application/json", 400, "BadRequest"),
    ("DELETE", "/api/v1/namespaces/default/configmaps/x", b'{"propagationPolicy": "Sideways"}', "application/json", 422, "Invalid"),
])
def test_bad_input_gets_4xx_status_and_changes_nothing(tmp_path, method, path, data, content_type, code, reason):
    async def scenario(srv):
        await srv.client.create(CM, cm("x"))
        rev = await srv.store.current_revision()
        got, doc = await raw(srv, method, path, data, content_type)
        assert (got, doc["kind"], doc["reason"], doc["code"]) == (code, "Status", reason, code), doc
        assert await srv.store.current_revision() == rev
    run(tmp_path, scenario)


def test_oversized_body_is_413(tmp_path):
    async def scenario(srv):
        rev = await srv.store.current_revision()
        big = json.dumps({"metadata": {"name": "big"}, "data": {"k": "x" * (4 * 1024 * 1024)}}).encode()
        code, doc = await raw(srv, "POST", "/api/v1/namespaces/default/configmaps", big)
        assert code == 413 and doc["reason"] == "RequestEntityTooLarge"
        assert await srv.store.current_revision() == rev
    run(tmp_path, scenario)


def test_immutable_field_change_is_422(tmp_path):
    async def scenario(srv):
        svc = await srv.client.create(SVC, {"metadata": {"name": "web", "namespace": "default"},
                                            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        ip = svc["spec"]["clusterIP"]
        other = "10.96.200.200" if ip != "10.96.200.200" else "10.96.200.201"
        svc["spec"]["clusterIP"], svc["spec"]["clusterIPs"] = other, [other]
        rev = await srv.store.current_revision()
        with pytest.raises(errors.Invalid):
            await srv.client.update(SVC, svc)
        assert await srv.store.current_revision() == rev
        assert (await srv.client.get(SVC, "web", "default"))["spec"]["clusterIP"] == ip
    run(tmp_path, scenario)


def test_cluster_ip_allocation_requested_taken_and_released(tmp_path):
    async def scenario(srv):
        c = srv.client
        spec = {"ports": [{"port": 80}], "clusterIP": "10.96.7.7"}
        await c.create(SVC, {"metadata": {"name": "a", "namespace": "default"}, "spec": dict(spec)})
        with pytest.raises(errors.Invalid):
            await c.create(SVC, {"metadata": {"name": "b", "namespace": "default"}, "spec": dict(spec)})
        await c.delete(SVC, "a", "default")
        again = await c.create(SVC, {"metadata": {"name": "b", "namespace": "default"}, "spec": dict(spec)})
        assert again["spec"]["clusterIP"] == "10.96.7.7"
        np = await c.create(SVC, {"metadata": {"name": "np", "namespace": "default"},
                                  "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
        assert 30000 <= np["spec"]["ports"][0]["nodePort"] <= 32767
    run(tmp_path, scenario)


def test_list_paging_with_continue_and_selectors(tmp_path):
    async def scenario(srv):
        c = srv.client
        for i in range(25):
            await c.create(CM, cm(f"cm-{i:02d}", tier="even" if i % 2 == 0 else "odd"))
        first = await c.list(CM, "default", limit=10)
        assert len(first.items) == 10 and first.continue_token
        await c.create(CM, cm("zz-after-first-page"))
        second = await c.list(CM, "default", limit=10, continue_token=first.continue_token)
        third = await c.list(CM, "default", limit=10, continue_token=second.continue_token)
        names = [o["metadata"]["name"] for o in first.items + second.items + third.items]
        assert names == [f"cm-{i:02d}" for i in range(25)]          # one snapshot: no late object
        assert not third.continue_token
        even = await c.list(CM, "default", label_selector="tier=even", limit=5)
        assert len(even.items) == 5 and all(o["metadata"]["labels"]["tier"] == "even" for o in even.items)
        rest = await c.list(CM, "default", label_selector="tier=even", continue_token=even.continue_token)
        assert len(even.items) + len(rest.items) == 13
        by_name = await c.list(CM, None, field_selector="metadata.name=cm-03")
        assert [o["metadata"]["name"] for o in by_name.items] == ["cm-03"]
        all_pages = await c.list_all(CM, "default", page_size=7)
        assert len(all_pages.items) == 26
    run(tmp_path, scenario)


def test_expired_continue_token_is_410(tmp_path):
    async def scenario(srv):
        c = srv.client
        for i in range(5):
            await c.create(CM, cm(f"cm-{i}"))
        first = await c.list(CM, "default", limit=2)
        for i in range(3):
            await c.update(CM, {**cm(f"cm-{i}"), "data": {"k": str(i)}})
        await srv.store.compact(await srv.store.current_revision())
        with pytest.raises(errors.Gone):
            await c.list(CM, "default", limit=2, continue_token=first.continue_token)
    run(tmp_path, scenario)


def test_pod_field_selectors(tmp_path):
    async def scenario(srv):
        c = srv.client
        await c.create(PODS, pod("a", "n1"))
        await c.create(PODS, pod("b", "n2"))
        await c.create(PODS, pod("c"))
        on_n1 = await c.list(PODS, None, field_selector="spec.nodeName=n1")
        assert [p["metadata"]["name"] for p in on_n1.items] == ["a"]
        unscheduled = await c.list(PODS, "default", field_selector="spec.nodeName=")
        assert [p["metadata"]["name"] for p in unscheduled.items] == ["c"]
        pending = await c.list(PODS, None, field_selector="status.phase=Pending")
        assert len(pending.items) == 3
    run(tmp_path, scenario)


async def collect(agen, n, timeout=10):
    out = []

    async def take():
        async for ev in agen:
            out.append(ev)
            if len(out) >= n:
                return
    await asyncio.wait_for(take(), timeout)
    return out


def test_watch_from_resource_version(tmp_path):
    async def scenario(srv):
        c = srv.client
        await c.create(CM, cm("before"))
        listed = await c.list(CM, "default")
        w = c.watch(CM, "default", resource_version=listed.resource_version)
        created = await c.create(CM, cm("w1"))
        created["data"] = {"k": "changed"}
        await c.update(CM, created)
        await c.delete(CM, "w1", "default")
        events = await collect(w, 3)
        assert [(t, o["metadata"]["name"]) for t, o in events] == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
        assert events[1][1]["data"] == {"k": "changed"} and events[0][1]["kind"] == "ConfigMap"
        revs = [int(o["metadata"]["resourceVersion"]) for _, o in events]
        assert revs == sorted(revs) and revs[0] > int(listed.resource_version)
        await w.aclose()
        # resume in the middle: only what came after
        resumed = await collect(c.watch(CM, "default", resource_version=str(revs[0])), 2)
        assert [t for t, _ in resumed] == ["MODIFIED", "DELETED"]
    run(tmp_path, scenario)


def test_watch_without_version_starts_with_synthetic_adds_and_times_out(tmp_path):
    async def scenario(srv):
        await srv.client.create(CM, cm("one"))
        events = []
        async for ev in srv.client.watch(CM, "default", timeout_seconds=1):
            events.append(ev)
        assert [(t, o["metadata"]["name"]) for t, o in events] == [("ADDED", "one")]
    run(tmp_path, scenario)


def test_watch_selector_transitions(tmp_path):
    async def scenario(srv):
        c = srv.client
        obj = await c.create(CM, cm("sel", app="web"))
        w = c.watch(CM, "default", resource_version=obj["metadata"]["resourceVersion"], label_selector="app=web")
        obj["metadata"]["labels"] = {"app": "other"}
        obj = await c.update(CM, obj)
        await c.create(CM, cm("never", app="other"))
        obj["metadata"]["labels"] = {"app": "web"}
        await c.update(CM, obj)
        events = await collect(w, 2)
        assert [t for t, _ in events] == ["DELETED", "ADDED"]
        await w.aclose()
    run(tmp_path, scenario)


def test_watch_from_compacted_revision_is_gone(tmp_path):
    async def scenario(srv):
        c = srv.client
        first = await c.create(CM, cm("g"))
        for i in range(3):
            await c.update(CM, {**cm("g"), "data": {"k": str(i)}})
        await srv.store.compact(await srv.store.current_revision())
        with pytest.raises(errors.Gone):
            await collect(c.watch(CM, "default", resource_version=first["metadata"]["resourceVersion"]), 1)
    run(tmp_path, scenario)


def test_watch_bookmarks(tmp_path):
    async def scenario(srv):
        obj = await srv.client.create(CM, cm("b"))
        rv = obj["metadata"]["resourceVersion"]
        events = await collect(srv.client.watch(CM, "default", resource_version=rv, allow_bookmarks=True), 1)
        assert events[0][0] == "BOOKMARK" and events[0][1]["metadata"]["resourceVersion"] == rv
    run(tmp_path, scenario, bookmark_interval=0.2)


def test_status_subresource_keeps_spec_and_main_update_keeps_status(tmp_path):
    async def scenario(srv):
        c = srv.client
        p = await c.create(PODS, pod("s", "n1"))
        p["status"] = {"phase": "Running", "podIP": "10.244.1.9"}
        p["spec"]["containers"][0]["image"] = "changed"
        after = await c.update_status(PODS, p)
        assert after["status"]["podIP"] == "10.244.1.9" and after["spec"]["containers"][0]["image"] == "busybox"
        got = await c.get(PODS, "s", "default", subresource="status")
        assert got["status"]["phase"] == "Running"
    run(tmp_path, scenario)


def test_scale_subresource(tmp_path):
    async def scenario(srv):
        c = srv.client
        await c.create(DEPLOY, deployment("web", 2))
        sc = await c.get(DEPLOY, "web", "default", subresource="scale")
        assert sc["kind"] == "Scale" and sc["spec"]["replicas"] == 2 and sc["status"]["selector"] == "app=web"
        sc["spec"]["replicas"] = 5
        out = await c.request("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", body=sc)
        assert out["spec"]["replicas"] == 5
        assert (await c.get(DEPLOY, "web", "default"))["spec"]["replicas"] == 5
        with pytest.raises(errors.Conflict):      # the Scale's resourceVersion is a precondition
            await c.request("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", body=sc)
    run(tmp_path, scenario)


def test_binding_sets_node_once(tmp_path):
    async def scenario(srv):
        c = srv.client
        await c.create(PODS, pod("b1"))
        await c.bind("default", "b1", "node-1")
        assert (await c.get(PODS, "b1", "default"))["spec"]["nodeName"] == "node-1"
        with pytest.raises(errors.Conflict):
            await c.bind("default", "b1", "node-2")
        await c.create(PODS, pod("b2"))
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b2"},
                "target": {"apiVersion": "v1", "kind": "Node", "name": "node-3"}}
        await c.request("POST", "/api/v1/namespaces/default/bindings", body=body)
        assert (await c.get(PODS, "b2", "default"))["spec"]["nodeName"] == "node-3"
    run(tmp_path, scenario)


def test_graceful_pod_delete_and_finalizers(tmp_path):
    async def scenario(srv):
        c = srv.client
        await c.create(PODS, pod("g", "node-1"))
        marked = await c.delete(PODS, "g", "default")
        assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["deletionGracePeriodSeconds"] == 30
        assert (await c.get(PODS, "g", "default"))["metadata"]["deletionTimestamp"]
        await c.delete(PODS, "g", "default", grace_period_seconds=0)        # the kubelet's final delete
        with pytest.raises(errors.NotFound):
            await c.get(PODS, "g", "default")
        await c.create(PODS, pod("u"))
        await c.delete(PODS, "u", "default")                                 # never scheduled: gone at once
        with pytest.raises(errors.NotFound):
            await c.get(PODS, "u", "default")
        fin = cm("f")
        fin["metadata"]["finalizers"] = ["example.com/hold"]
        await c.create(CM, fin)
        held = await c.delete(CM, "f", "default")
        assert held["metadata"]["deletionTimestamp"]
        held["metadata"]["finalizers"] = []
        await c.update(CM, held)
        with pytest.raises(errors.NotFound):
            await c.get(CM, "f", "default")
        d = await c.create(DEPLOY, deployment("fg"))
        fg = await c.delete(DEPLOY, "fg", "default", propagation_policy="Foreground")
        assert fg["metadata"]["finalizers"] == ["foregroundDeletion"] and d["metadata"]["uid"] == fg["metadata"]["uid"]
    run(tmp_path, scenario)


def test_namespace_delete_marks_terminating_until_finalized(tmp_path):
    """Upstream's namespace REST: DELETE only marks the namespace (content stays for the
    namespace controller, tests/unit/test_namespace_lifecycle.py); new content is refused with
    upstream's 403; the namespace goes once spec.finalizers is emptied through /finalize."""
    async def scenario(srv):
        c = srv.client
        await c.create(NS, {"metadata": {"name": "team"}})
        await c.create(CM, cm("x", ns="team"))
        await c.delete(NS, "team")
        ns = await c.get(NS, "team")
        assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
        with pytest.raises(errors.Forbidden) as exc:
            await c.create(CM, cm("y", ns="team"))
        assert exc.value.message == ('configmaps "y" is forbidden: unable to create new content in namespace '
                                     "team because it is being terminated")
        assert exc.value.details["causes"] == [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                                "message": "namespace team is being terminated"}]
        assert [o["metadata"]["name"] for o in (await c.list(CM, "team")).items] == ["x"]
        again = await c.delete(NS, "team")                              # a second delete changes nothing
        assert again["metadata"]["deletionTimestamp"] == ns["metadata"]["deletionTimestamp"]
        ns["spec"]["finalizers"] = []
        await c.update(NS, ns, subresource="finalize")
        with pytest.raises(errors.NotFound):
            await c.get(NS, "team")
    run(tmp_path, scenario)


def test_delete_collection(tmp_path):
    async def scenario(srv):
        c = srv.client
        for i in range(4):
            await c.create(CM, cm(f"d{i}", app="x" if i < 3 else "y"))
        await c.delete_collection(CM, "default", label_selector="app=x")
        assert [o["metadata"]["name"] for o in (await c.list(CM, "default")).items] == ["d3"]
    run(tmp_path, scenario)


def test_table_output(tmp_path):
    async def scenario(srv):
        accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        code, doc = await raw(srv, "GET", "/api/v1/namespaces/default/services", headers={"Accept": accept})
        assert code == 200 and doc["kind"] == "Table"
        assert doc["rows"][0]["cells"][:3] == ["kubernetes", "ClusterIP", "10.96.0.1"]
        code, doc = await raw(srv, "GET", "/api/v1/namespaces/default/services/kubernetes", headers={"Accept": accept})
        assert doc["kind"] == "Table" and len(doc["rows"]) == 1
    run(tmp_path, scenario)


def test_dry_run_writes_nothing(tmp_path):
    async def scenario(srv):
        c = srv.client
        base = "/api/v1/namespaces/default"
        rev = await srv.store.current_revision()
        out = await c.request("POST", f"{base}/services", params={"dryRun": "All"},
                              body={"metadata": {"name": "dry"}, "spec": {"ports": [{"port": 80}], "clusterIP": "10.96.9.9"}})
        assert out["spec"]["clusterIP"] == "10.96.9.9"
        assert await srv.store.current_revision() == rev
        await c.create(SVC, {"metadata": {"name": "real", "namespace": "default"},
                             "spec": {"ports": [{"port": 80}], "clusterIP": "10.96.9.9"}})   # the IP was given back
        rev = await srv.store.current_revision()
        patched = await c.request("PATCH", f"{base}/services/real", params={"dryRun": "All"},
                                  body={"metadata": {"labels": {"x": "y"}}},
                                  content_type="application/merge-patch+json")
        assert patched["metadata"]["labels"] == {"x": "y"}
        await c.request("DELETE", f"{base}/services/real", params={"dryRun": "All"})
        assert await srv.store.current_revision() == rev
        assert "labels" not in (await c.get(SVC, "real", "default"))["metadata"]
        with pytest.raises(errors.BadRequest):
            await c.request("DELETE", f"{base}/services/real", params={"dryRun": "Some"})
        with pytest.raises(errors.AlreadyExists):
            await c.request("POST", f"{base}/services", params={"dryRun": "All"},
                            body={"metadata": {"name": "real"}, "spec": {"ports": [{"port": 81}]}})
    run(tmp_path, scenario)


def test_scale_patch_like_kubectl_scale(tmp_path):
    async def scenario(srv):
        c = srv.client
        await c.create(DEPLOY, deployment("sp", 1))
        out = await c.patch(DEPLOY, "sp", {"spec": {"replicas": 4}}, "default", subresource="scale")
        assert out["kind"] == "Scale" and out["spec"]["replicas"] == 4
        assert (await c.get(DEPLOY, "sp", "default"))["spec"]["replicas"] == 4
        with pytest.raises(errors.Invalid):
            await c.patch(DEPLOY, "sp", {"spec": {"replicas": -3}}, "default", subresource="scale")
    run(tmp_path, scenario)


def test_duplicate_service_is_already_exists_not_ip_taken(tmp_path):
    async def scenario(srv):
        svc = {"metadata": {"name": "dup", "namespace": "default"},
               "spec": {"clusterIP": "10.96.3.3", "ports": [{"port": 80}]}}
        await srv.client.create(SVC, svc)
        with pytest.raises(errors.AlreadyExists):
            await srv.client.create(SVC, svc)
        await srv.client.delete(SVC, "dup", "default")
        await srv.client.create(SVC, svc)                 # the IP was not leaked by the failed create
    run(tmp_path, scenario)


def test_field_validation_strict_warn_ignore(tmp_path):
    pytest.importorskip("kubernetes")

    async def scenario(srv):
        typo = {"apiVersion": "apps/v1", "kind": "Deployment", **deployment("typo")}
        typo["spec"]["replicass"] = 3
        path = "/apis/apps/v1/namespaces/default/deployments"
        rev = await srv.store.current_revision()
        code, doc = await raw(srv, "POST", path + "?fieldValidation=Strict", json.dumps(typo).encode())
        assert code == 400 and 'unknown field "spec.replicass"' in doc["message"]
        assert await srv.store.current_revision() == rev
        code, doc = await raw(srv, "POST", path + "?fieldValidation=Bogus", json.dumps(typo).encode())
        assert code == 400
        async with aiohttp.ClientSession() as s:
            async with s.post(srv.url + path, data=json.dumps(typo),
                              headers={"Authorization": f"Bearer {srv.token}",
                                       "Content-Type": "application/json"}) as resp:
                assert resp.status == 201
                assert resp.headers.getall("Warning") == ['299 - "unknown field \\"spec.replicass\\""']
        ok = {"apiVersion": "apps/v1", "kind": "Deployment", **deployment("fine")}
        code, _ = await raw(srv, "POST", path + "?fieldValidation=Strict", json.dumps(ok).encode())
        assert code == 201
    run(tmp_path, scenario)


def test_watch_of_a_gone_client_is_released(tmp_path, monkeypatch):
    from netemu.apiserver import watch as watch_mod
    monkeypatch.setattr(watch_mod, "CLIENT_CHECK_INTERVAL", 0.1)

    async def scenario(srv):
        rv = (await srv.client.list(CM, "default")).resource_version
        async with aiohttp.ClientSession() as s:
            resp = await s.get(f"{srv.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}",
                               headers={"Authorization": f"Bearer {srv.token}"})
            assert resp.status == 200
            for _ in range(50):
                if srv.api.handlers.active_watches:
                    break
                await asyncio.sleep(0.02)
            assert len(srv.api.handlers.active_watches) == 1
            resp.close()                                   # the client disconnects, no event ever came
        for _ in range(100):
            if not srv.api.handlers.active_watches:
                break
            await asyncio.sleep(0.05)
        assert not srv.api.handlers.active_watches
    run(tmp_path, scenario)


def test_legacy_watch_path_of_one_object(tmp_path):
    async def scenario(srv):
        a = await srv.client.create(CM, cm("one"))
        rv = a["metadata"]["resourceVersion"]
        await srv.client.create(CM, cm("other"))
        a["data"] = {"k": "2"}
        await srv.client.update(CM, a)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{srv.url}/api/v1/watch/namespaces/default/configmaps/one?resourceVersion={rv}",
                             headers={"Authorization": f"Bearer {srv.token}"}) as resp:
                line = await asyncio.wait_for(resp.content.readline(), 10)
        event = json.loads(line)
        assert event["type"] == "MODIFIED" and event["object"]["metadata"]["name"] == "one"
    run(tmp_path, scenario)


def test_bootstrap_endpoints_follow_the_listen_address(tmp_path):
    from netemu.apiserver import bootstrap
    slices = kinds.by_resource("discovery.k8s.io", "v1", "endpointslices")
    ep = kinds.by_resource("", "v1", "endpoints")

    async def scenario(srv):
        reg = srv.api.registry
        await bootstrap.bootstrap(reg, "172.18.0.1", 6443)
        es = await srv.client.get(slices, "kubernetes", "default")
        assert es["endpoints"][0]["addresses"] == ["172.18.0.1"] and es["ports"][0]["port"] == 6443
        assert es["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
        await bootstrap.bootstrap(reg, "172.18.0.2", 6443)              # a restart elsewhere
        assert (await srv.client.get(slices, "kubernetes", "default"))["endpoints"][0]["addresses"] == ["172.18.0.2"]
        assert (await srv.client.get(ep, "kubernetes", "default"))["subsets"][0]["addresses"] == [{"ip": "172.18.0.2"}]
        rev = await srv.store.current_revision()
        await bootstrap.bootstrap(reg, "172.18.0.2", 6443)              # nothing changed: no write
        assert await srv.store.current_revision() == rev
    run(tmp_path, scenario)


def test_metrics_count_requests_by_verb_resource_and_code(tmp_path):
    async def scenario(srv):
        await srv.client.create(CM, cm("m"))
        with pytest.raises(errors.AlreadyExists):
            await srv.client.create(CM, cm("m"))
        await srv.client.list(CM, "default")
        code, _ = await raw(srv, "GET", "/metrics", token=False)
        assert code == 403
        code, text = await raw(srv, "GET", "/metrics")
        assert code == 200
        assert ('apiserver_request_total{code="201",group="",resource="configmaps",subresource="",'
                'verb="POST",version="v1"} 1.0') in text
        assert 'code="409"' in text and 'verb="LIST"' in text
        assert "apiserver_request_duration_seconds_bucket" in text
    run(tmp_path, scenario)
