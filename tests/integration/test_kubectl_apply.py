"""Server-side apply and managedFields with real kubectl 1.32 against ``netemu apiserver``.

One API server for the module: apply, re-apply a change, a second manager conflicting, the
same with --force-conflicts, fields removed when a manager stops applying them, the Update
entries kubectl create/label/scale leave, the client-side -> server-side apply migration kubectl
performs, dry runs, and bad configurations.
"""

from __future__ import annotations

import json

import pytest

from netemu.testing.apiserver_process import ApiServerProcess

pytestmark = pytest.mark.kubectl

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("ssa") / "state"
    srv = ApiServerProcess(state).start()
    try:
        yield srv
    finally:
        assert srv.stop() == 0, (state / "apiserver.log").read_text()[-2000:]


def apply(srv, tmp_path, text: str, *args: str, check: bool = True):
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(text)
    return srv.kubectl("apply", "--server-side", "-f", str(manifest), *args, check=check)


def get(srv, *what: str) -> dict:
    return json.loads(srv.kubectl("get", *what, "-o", "json", "--show-managed-fields").stdout)


def managers(obj: dict) -> dict[tuple[str, str, str], dict]:
    return {(e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"]
            for e in obj["metadata"]["managedFields"]}


def test_apply_reapply_conflict_force_and_removal(server, tmp_path):
    out = apply(server, tmp_path, DEPLOYMENT.format(name="web")).stdout
    assert out.strip() == "deployment.apps/web serverside-applied"
    dep = get(server, "deploy", "web")
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"          # defaulted after the merge
    owned = managers(dep)[("kubectl", "Apply", "")]
    container = owned["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert 'k:{"containerPort":80,"protocol":"TCP"}' in container["f:ports"]
    assert "f:strategy" not in owned["f:spec"]                         # defaults are nobody's

    changed = DEPLOYMENT.format(name="web").replace("replicas: 2", "replicas: 3").replace("1.27", "1.28")
    apply(server, tmp_path, changed)
    dep = get(server, "deploy", "web")
    assert dep["spec"]["replicas"] == 3 and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert dep["metadata"]["generation"] == 2

    other = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 5\n")
    refused = apply(server, tmp_path, other, "--field-manager=autoscaler", check=False)
    assert refused.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas' in refused.stderr
    assert "--force-conflicts" in refused.stderr                      # kubectl's advice: a real 409
    assert get(server, "deploy", "web")["spec"]["replicas"] == 3

    apply(server, tmp_path, other, "--field-manager=autoscaler", "--force-conflicts")
    dep = get(server, "deploy", "web")
    assert dep["spec"]["replicas"] == 5
    owners = managers(dep)
    assert owners[("autoscaler", "Apply", "")] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners[("kubectl", "Apply", "")]["f:spec"]

    # kubectl stops applying replicas (autoscaler keeps it), the labels and the port: gone
    trimmed = (DEPLOYMENT.format(name="web").replace("  labels:\n    app: web\n", "", 1)
               .replace("  replicas: 2\n", "").replace("        ports:\n        - containerPort: 80\n", ""))
    apply(server, tmp_path, trimmed)
    dep = get(server, "deploy", "web")
    assert "labels" not in dep["metadata"] and dep["spec"]["replicas"] == 5
    assert "ports" not in dep["spec"]["template"]["spec"]["containers"][0]


def test_update_operations_record_their_managers(server, tmp_path):
    server.kubectl("create", "deployment", "redis", "--image=redis")
    server.kubectl("scale", "deployment", "redis", "--replicas=3")
    server.kubectl("label", "deployment", "redis", "tier=cache")
    owners = managers(get(server, "deploy", "redis"))
    assert set(owners) == {("kubectl-create", "Update", ""), ("kubectl", "Update", "scale"),
                           ("kubectl-label", "Update", "")}
    created = owners[("kubectl-create", "Update", "")]
    assert created["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}
    assert "f:dnsPolicy" in created["f:spec"]["f:template"]["f:spec"]        # defaults it created
    assert "f:replicas" not in created["f:spec"]                              # scale took it
    assert owners[("kubectl", "Update", "scale")] == {"f:spec": {"f:replicas": {}}}
    assert owners[("kubectl-label", "Update", "")] == {"f:metadata": {"f:labels": {"f:tier": {}}}}
    shown = server.kubectl("get", "deploy", "redis", "-o", "yaml", "--show-managed-fields").stdout
    assert "manager: kubectl-create" in shown and "operation: Update" in shown
    assert "managedFields" not in server.kubectl("get", "deploy", "redis", "-o", "yaml").stdout


def test_client_side_then_server_side_apply(server, tmp_path):
    manifest = tmp_path / "csa.yaml"
    manifest.write_text(DEPLOYMENT.format(name="csa"))
    server.kubectl("apply", "-f", str(manifest))
    assert ("kubectl-client-side-apply", "Update", "") in managers(get(server, "deploy", "csa"))
    apply(server, tmp_path, DEPLOYMENT.format(name="csa").replace("replicas: 2", "replicas: 4"))
    dep = get(server, "deploy", "csa")
    assert dep["spec"]["replicas"] == 4
    assert ("kubectl", "Apply", "") in managers(dep)            # kubectl migrated the ownership


def test_configmap_and_service_apply_and_dry_run(server, tmp_path):
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n  b: '2'\n"
    out = apply(server, tmp_path, cm, "--dry-run=server").stdout
    assert "(server dry run)" in out
    assert server.kubectl("get", "cm", "settings", check=False).returncode != 0
    apply(server, tmp_path, cm)
    apply(server, tmp_path, cm.replace("  b: '2'\n", ""))
    assert get(server, "cm", "settings")["data"] == {"a": "1"}

    svc = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n"
           "  - {name: http, port: 80}\n  - {name: dns, port: 53, protocol: UDP}\n")
    apply(server, tmp_path, svc)
    apply(server, tmp_path, svc.replace("  - {name: dns, port: 53, protocol: UDP}\n", ""))
    got = get(server, "svc", "web")
    assert [p["port"] for p in got["spec"]["ports"]] == [80] and got["spec"]["clusterIP"]
    ports = managers(got)[("kubectl", "Apply", "")]["f:spec"]["f:ports"]
    assert list(ports) == ['k:{"port":80,"protocol":"TCP"}']


def test_bad_configurations_are_refused_and_change_nothing(server, tmp_path):
    no_name = DEPLOYMENT.format(name="bad").replace("      - name: web\n        image", "      - image")
    out = apply(server, tmp_path, no_name, check=False)
    assert out.returncode != 0
    assert 'omits key field "name"' in out.stderr or "name: Required value" in out.stderr
    twice = DEPLOYMENT.format(name="bad").replace(
        "      - name: web\n", "      - name: web\n        image: a\n      - name: web\n")
    out = apply(server, tmp_path, twice, check=False)
    assert out.returncode != 0 and "duplicate entries for key [name=\"web\"]" in out.stderr
    assert server.kubectl("get", "deploy", "bad", check=False).returncode != 0


def apply_scale(srv, name: str, replicas: int, manager: str, force: bool = False) -> tuple[int, dict]:
    """Server-side apply of an autoscaling/v1 Scale to deployments/NAME/scale (what client-go's
    ApplyScale sends; kubectl's own apply cannot name the Scale kind): (status, body)."""
    import ssl
    import urllib.error
    import urllib.request
    config = f"apiVersion: autoscaling/v1\nkind: Scale\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n"
    query = f"fieldManager={manager}" + ("&force=true" if force else "")
    request = urllib.request.Request(
        f"https://127.0.0.1:{srv.port}/apis/apps/v1/namespaces/default/deployments/{name}/scale?{query}",
        data=config.encode(), method="PATCH", headers={
            "Content-Type": "application/apply-patch+yaml",
            "Authorization": "Bearer " + (srv.state_dir / "admin.token").read_text().strip()})
    context = ssl.create_default_context(cafile=str(srv.state_dir / "ca.crt"))
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_apply_to_the_scale_subresource_owns_the_parents_replicas(server, tmp_path):
    """As upstream's ScaleHandler: the owners of the Deployment's .spec.replicas are the Scale's
    (a different value conflicts with them, naming them); a forced apply takes the field, which
    then belongs to the applier with subresource scale; the same value is shared, no conflict."""
    apply(server, tmp_path, DEPLOYMENT.format(name="scaled"))
    status, refused = apply_scale(server, "scaled", 5, "hpa")
    assert status == 409 and refused["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas'), refused
    assert get(server, "deploy", "scaled")["spec"]["replicas"] == 2
    status, same = apply_scale(server, "scaled", 2, "watcher")
    assert status == 200 and same["spec"]["replicas"] == 2
    status, scaled = apply_scale(server, "scaled", 5, "hpa", force=True)
    assert status == 200 and scaled["kind"] == "Scale" and scaled["spec"]["replicas"] == 5
    dep = get(server, "deploy", "scaled")
    owners = managers(dep)
    assert dep["spec"]["replicas"] == 5
    assert owners[("hpa", "Apply", "scale")] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners[("kubectl", "Apply", "")]["f:spec"]      # taken from kubectl
    assert ("watcher", "Apply", "scale") not in owners                        # and from the sharer
    shown = server.kubectl("get", "deploy", "scaled", "--subresource=scale", "-o", "json").stdout
    assert json.loads(shown)["spec"]["replicas"] == 5
    again = apply(server, tmp_path, DEPLOYMENT.format(name="scaled"), check=False)   # kubectl's 2 now conflicts
    assert again.returncode != 0 and 'conflict with "hpa" with subresource "scale"' in again.stderr
