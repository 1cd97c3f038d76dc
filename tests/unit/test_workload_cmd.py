"""``netemu apply/get/delete``: the real command line against an in-process API server.

The server runs on its own event loop in a thread (the commands run ``asyncio.run`` themselves,
as they do for a user), over a fresh store in the test's tmp dir; a kubeconfig for it is
written there and passed with --kubeconfig, so nothing of a real cluster is read or touched.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import yaml

from netemu.testing.apiserver import api_server
from netemu.cli.main import main
from netemu.client import kubeconfig

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: agnhost
        image: registry.k8s.io/e2e-test-images/agnhost:2.47
        args: [netexec, --http-port=8080]
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


@pytest.fixture
def cluster(tmp_path):
    """(kubeconfig path, run(coro) on the server's loop) for one fresh API server."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    box: dict = {}

    async def serve():
        async with api_server(tmp_path) as srv:
            box["srv"] = srv
            ready.set()
            await stop.wait()

    def thread_main():
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    assert ready.wait(30), "in-process API server did not start"
    if "error" in box:
        raise box["error"]
    srv = box["srv"]
    path = tmp_path / "kubeconfig"
    kubeconfig.write(path, kubeconfig.render(srv.url, srv.token))

    def on_server(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)
    try:
        yield str(path), srv, on_server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def netemu(capsys, kubeconfig_path, *argv):
    code = main([argv[0], "--kubeconfig", kubeconfig_path, *argv[1:]])
    out, err = capsys.readouterr()
    return code, out, err


def test_apply_creates_then_unchanged_then_configured(cluster, tmp_path, capsys):
    kc, srv, on_server = cluster
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    code, out, err = netemu(capsys, kc, "apply", "-f", str(manifest))
    assert code == 0, err
    assert out.splitlines() == ["deployment.apps/web created", "service/web created"]

    code, out, _ = netemu(capsys, kc, "apply", "-f", str(manifest))
    assert out.splitlines() == ["deployment.apps/web unchanged", "service/web unchanged"]

    manifest.write_text(DEPLOYMENT.replace("replicas: 3", "replicas: 5"))
    code, out, _ = netemu(capsys, kc, "apply", "-f", str(manifest))
    assert out.splitlines() == ["deployment.apps/web configured", "service/web unchanged"]
    from netemu.api.kinds import by_kind
    dep = on_server(srv.client.get(by_kind("apps/v1", "Deployment"), "web", "default"))
    assert dep["spec"]["replicas"] == 5
    # the container defaults the server added survive the merge (containers merge by name)
    assert dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"]
    svc = on_server(srv.client.get(by_kind("v1", "Service"), "web", "default"))
    assert svc["spec"]["clusterIP"]


def test_apply_directory_and_stdin(cluster, tmp_path, capsys, monkeypatch):
    kc, _, _ = cluster
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n")
    (d / "b.json").write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "b", "namespace": "kube-system"}}))
    (d / "notes.txt").write_text("not a manifest")
    code, out, err = netemu(capsys, kc, "apply", "-f", str(d))
    assert code == 0, err
    assert out.splitlines() == ["configmap/a created", "configmap/b created"]

    import io
    monkeypatch.setattr("sys.stdin", io.StringIO(
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n"))
    code, out, _ = netemu(capsys, kc, "apply", "-f", "-")
    assert out.strip() == "configmap/c created"

    code, out, _ = netemu(capsys, kc, "get", "cm", "b", "-n", "kube-system", "-o", "json")
    assert json.loads(out)["metadata"]["namespace"] == "kube-system"


def test_apply_bad_input_writes_nothing(cluster, tmp_path, capsys):
    kc, _, _ = cluster
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n---\n"
                   "apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n")
    code, out, err = netemu(capsys, kc, "apply", "-f", str(bad))
    assert code == 2 and "Widget" in err and out == ""
    code, _, err = netemu(capsys, kc, "get", "configmap", "first")
    assert code == 1 and "NotFound" in err          # the good first document was not applied

    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
    code, _, err = netemu(capsys, kc, "apply", "-f", str(bad))
    assert code == 2 and "metadata.name" in err
    bad.write_text("kind: [unclosed\n")
    code, _, err = netemu(capsys, kc, "apply", "-f", str(bad))
    assert code == 2 and "bad.yaml: invalid YAML at line 2" in err
    code, _, err = netemu(capsys, kc, "apply", "-f", str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such file" in err


def test_apply_invalid_object_is_the_servers_error(cluster, tmp_path, capsys):
    kc, _, _ = cluster
    bad = tmp_path / "svc.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                   "spec: {ports: [{port: 70000}]}\n")
    code, _, err = netemu(capsys, kc, "apply", "-f", str(bad))
    assert code == 1 and err.startswith("Error from server (Invalid)")


def test_get_table_wide_all_namespaces_and_formats(cluster, tmp_path, capsys):
    kc, _, _ = cluster
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    assert netemu(capsys, kc, "apply", "-f", str(manifest))[0] == 0

    code, out, _ = netemu(capsys, kc, "get", "svc")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == ["kubernetes", "web"]
    web = lines[2].split()
    assert web[1] == "ClusterIP" and web[4] == "80/TCP"

    code, out, _ = netemu(capsys, kc, "get", "deployments.apps", "web", "-o", "wide")
    header = out.splitlines()[0].split()
    assert header[:2] == ["NAME", "READY"] and "SELECTOR" in header and "IMAGES" in header

    code, out, _ = netemu(capsys, kc, "get", "services", "-A")
    assert out.splitlines()[0].split()[0] == "NAMESPACE"
    assert any(line.split()[:2] == ["default", "web"] for line in out.splitlines())

    code, out, _ = netemu(capsys, kc, "get", "deploy", "-o", "yaml")
    doc = yaml.safe_load(out)
    assert doc["kind"] == "List" and [i["metadata"]["name"] for i in doc["items"]] == ["web"]
    code, out, _ = netemu(capsys, kc, "get", "Service", "-o", "name")
    assert out.split() == ["service/kubernetes", "service/web"]

    code, out, err = netemu(capsys, kc, "get", "pods")
    assert code == 0 and out == "" and "No resources found in default namespace." in err
    code, out, err = netemu(capsys, kc, "get", "widgets")
    assert code == 2 and "widgets" in err


def test_delete_by_name_and_by_file(cluster, tmp_path, capsys):
    kc, _, _ = cluster
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    assert netemu(capsys, kc, "apply", "-f", str(manifest))[0] == 0

    code, out, _ = netemu(capsys, kc, "delete", "svc", "web")
    assert code == 0 and out.strip() == 'service "web" deleted'
    code, out, err = netemu(capsys, kc, "delete", "-f", str(manifest))
    assert code == 1
    assert out.strip() == 'deployment.apps "web" deleted'
    assert "NotFound" in err and "web" in err              # the Service was gone already
    code, _, _ = netemu(capsys, kc, "delete", "-f", str(manifest), "--ignore-not-found")
    assert code == 0
    code, _, err = netemu(capsys, kc, "delete", "svc")
    assert code == 2 and "KIND NAME" in err


def test_no_kubeconfig_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    code = main(["get", "pods", "--state-dir", str(tmp_path)])
    assert code == 2
    assert "no kubeconfig" in capsys.readouterr().err


def test_logs_needs_a_valid_container_of_a_multi_container_pod(cluster, tmp_path, capsys):
    kc, _, _ = cluster
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: two}\nspec:\n  containers:\n"
                   "  - {name: a, image: nginx}\n  - {name: b, image: nginx}\n")
    assert netemu(capsys, kc, "apply", "-f", str(pod))[0] == 0
    code, _, err = netemu(capsys, kc, "logs", "two")
    assert code == 2 and "choose one of: ['a', 'b']" in err
    code, _, err = netemu(capsys, kc, "logs", "two", "-c", "z")
    assert code == 2 and "container z is not valid" in err
    code, _, err = netemu(capsys, kc, "logs", "missing")
    assert code == 1 and "NotFound" in err


def test_exec_pod_without_a_sandbox_here(cluster, tmp_path, capsys):
    kc, _, _ = cluster
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: lonely}\nspec:\n  containers:\n"
                   "  - {name: a, image: nginx}\n")
    assert netemu(capsys, kc, "apply", "-f", str(pod))[0] == 0
    code, _, err = netemu(capsys, kc, "exec", "lonely", "--", "true")
    assert code == 2 and "no sandbox" in err and "/run/netns/nep-" in err
    code, _, err = netemu(capsys, kc, "exec", "lonely", "-c", "zz", "--", "true")
    assert code == 2 and "container zz" in err
    code, _, err = netemu(capsys, kc, "exec", "nobody", "--", "true")
    assert code == 2 and "not found" in err
    # options typed after the pod are read the same way
    code = main(["exec", "lonely", "--kubeconfig", kc, "-c", "zz", "--", "true"])
    assert code == 2 and "container zz" in capsys.readouterr().err
    code = main(["exec", "lonely", "--kubeconfig", kc, "--bogus", "--", "true"])
    assert code == 2 and "--bogus" in capsys.readouterr().err


def test_get_several_kinds_at_once(cluster, tmp_path, capsys):
    kc, _, _ = cluster
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    assert netemu(capsys, kc, "apply", "-f", str(manifest))[0] == 0
    code, out, _ = netemu(capsys, kc, "get", "deploy,svc")
    sections = out.split("\n\n")
    assert len(sections) == 2
    assert sections[0].splitlines()[1].split()[0] == "deployment.apps/web"
    assert [line.split()[0] for line in sections[1].splitlines()[1:]] == ["service/kubernetes", "service/web"]
    code, out, _ = netemu(capsys, kc, "get", "deploy,svc", "-o", "name")
    assert out.split() == ["deployment.apps/web", "service/kubernetes", "service/web"]
    code, out, _ = netemu(capsys, kc, "get", "deploy,svc", "-o", "json")
    assert [i["kind"] for i in json.loads(out)["items"]] == ["Deployment", "Service", "Service"]
    code, _, err = netemu(capsys, kc, "get", "deploy,widgets")
    assert code == 2 and "widgets" in err
