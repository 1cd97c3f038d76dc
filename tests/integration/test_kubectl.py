"""Real kubectl 1.32 against a real ``netemu apiserver`` process (SQLite and etcd stores).

The workflow a person runs: apply an upstream-style manifest, look at it with -o wide and
jsonpath, re-apply an edit (a patch), scale, label, watch a change, delete, and a wrong token.
"""

from __future__ import annotations

import ipaddress
import json
import os
import queue
import subprocess
import threading

import pytest

from netemu.testing.apiserver_process import ApiServerProcess

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
"""


@pytest.fixture
def server(tmp_path):
    srv = ApiServerProcess(tmp_path / "state").start()
    try:
        yield srv
    finally:
        assert srv.stop() == 0, (tmp_path / "state" / "apiserver.log").read_text()[-2000:]


@pytest.fixture
def etcd_server(tmp_path):
    from netemu.store.etcd_server import EtcdServer
    with EtcdServer() as etcd:
        srv = ApiServerProcess(tmp_path / "state", store_url="etcd:" + ",".join(etcd.endpoints)).start()
        try:
            yield srv
        finally:
            assert srv.stop() == 0, (tmp_path / "state" / "apiserver.log").read_text()[-2000:]


class LineReader:
    """Lines of a subprocess's stdout through a thread, so waiting for one has a timeout."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.put(line.strip())

    def next(self, timeout: float) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output from kubectl --watch in time") from None


def kubectl_workflow(srv: ApiServerProcess, tmp_path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(MANIFEST)
    out = srv.kubectl("apply", "-f", str(manifest)).stdout
    assert "deployment.apps/web created" in out and "service/web created" in out
    assert "configmap/web-config created" in out

    wide = srv.kubectl("get", "deploy,svc", "-o", "wide").stdout
    assert "NAME                  READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES       SELECTOR" in wide
    assert "deployment.apps/web   0/2" in wide and "nginx:1.27" in wide
    assert "TYPE        CLUSTER-IP" in wide and "service/web" in wide and "80/TCP" in wide

    ip = srv.kubectl("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")

    manifest.write_text(MANIFEST.replace("replicas: 2", "replicas: 3"))
    out = srv.kubectl("apply", "-f", str(manifest)).stdout
    assert "deployment.apps/web configured" in out and "service/web unchanged" in out
    assert srv.kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "3"

    assert "scaled" in srv.kubectl("scale", "deploy", "web", "--replicas=5").stdout
    assert srv.kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "5"

    srv.kubectl("label", "deploy", "web", "tier=frontend")
    assert srv.kubectl("get", "deploy", "-l", "tier=frontend", "-o", "name").stdout.split() == ["deployment.apps/web"]

    env = {**os.environ, "KUBECONFIG": str(srv.kubeconfig), "HOME": str(srv.state_dir)}
    watcher = subprocess.Popen(["kubectl", "get", "configmaps", "--watch", "-o", "name"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = LineReader(watcher)
        assert lines.next(20) == "configmap/web-config"
        watched = tmp_path / "watched.yaml"
        watched.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: b\n")
        srv.kubectl("apply", "-f", str(watched))
        srv.kubectl("label", "configmap", "web-config", "seen=yes")
        seen = [lines.next(20), lines.next(20)]
        assert seen == ["configmap/watched", "configmap/web-config"]
    finally:
        watcher.terminate()
        watcher.wait(10)

    out = srv.kubectl("delete", "-f", str(manifest)).stdout
    assert 'deployment.apps "web" deleted' in out and 'service "web" deleted' in out
    left = srv.kubectl("get", "deploy,svc,cm", "-o", "name").stdout.split()
    assert "deployment.apps/web" not in left and "service/web" not in left and "configmap/web-config" not in left
    assert "service/kubernetes" in left


@pytest.mark.kubectl
def test_kubectl_workflow_sqlite(server, tmp_path):
    kubectl_workflow(server, tmp_path)


@pytest.mark.kubectl
@pytest.mark.etcd
def test_kubectl_workflow_etcd(etcd_server, tmp_path):
    kubectl_workflow(etcd_server, tmp_path)


@pytest.mark.kubectl
def test_wrong_token_is_unauthorized(server, tmp_path):
    bad = tmp_path / "bad-kubeconfig"
    token = (server.state_dir / "admin.token").read_text().strip()
    bad.write_text(server.kubeconfig.read_text().replace(token, "not-the-token"))
    result = server.kubectl("get", "nodes", kubeconfig=bad, check=False)
    assert result.returncode != 0
    assert "Unauthorized" in result.stderr or "must be logged in" in result.stderr
    assert server.kubectl("get", "nodes").returncode == 0


@pytest.mark.kubectl
def test_kubectl_bad_input(server, tmp_path):
    bad_name = tmp_path / "bad.yaml"
    bad_name.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n")
    result = server.kubectl("apply", "-f", str(bad_name), check=False)
    assert result.returncode != 0 and "is invalid" in result.stderr
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("apiVersion: v1\nkind: Widget\nmetadata:\n  name: w\n")
    # kubectl's own validation refuses it first (we publish no OpenAPI schemas, so it cannot
    # check a kind the server does not serve); without it, discovery has no such kind.
    assert server.kubectl("apply", "-f", str(unknown), check=False).returncode != 0
    result = server.kubectl("apply", "--validate=false", "-f", str(unknown), check=False)
    assert result.returncode != 0 and 'no matches for kind "Widget" in version "v1"' in result.stderr
    assert server.kubectl("get", "configmaps", "-o", "name").stdout.split() == []


def leaves(obj, path=""):
    """(path, value) of every non-empty leaf: what the server must have kept."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, f"{path}[{i}]")
    elif obj not in (None, ""):
        yield path, obj


@pytest.mark.kubectl
def test_kubectl_create_generators_send_protobuf(server):
    """kubectl's typed clients send protobuf bodies; each stored object must hold everything
    ``--dry-run=client -o json`` shows kubectl meant to send (the server adds defaults)."""
    commands = [
        ["create", "deployment", "gen", "--image=nginx:1.27", "--port=80", "--replicas=3"],
        ["create", "service", "nodeport", "gen", "--tcp=80:8080", "--node-port=30080"],
        ["create", "configmap", "gen", "--from-literal=a=b"],
        ["create", "secret", "generic", "gen", "--from-literal=password=s3cret"],
        ["create", "namespace", "gen"],
        ["create", "serviceaccount", "gen"],
        ["create", "role", "gen", "--verb=get", "--resource=pods"],
    ]
    for args in commands:
        want = json.loads(server.kubectl(*args, "--dry-run=client", "-o", "json").stdout)
        got = dict(leaves(json.loads(server.kubectl(*args, "-o", "json").stdout)))
        missing = {p: v for p, v in leaves(want) if got.get(p) != v and p != "/metadata/creationTimestamp"}
        assert not missing, (args, missing)
    assert server.kubectl("get", "deploy", "gen", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    assert server.kubectl("get", "svc", "gen", "-o", "jsonpath={.spec.ports[0].nodePort}").stdout == "30080"


@pytest.mark.kubectl
def test_kubectl_patch_switches_session_affinity_off_and_on(server, tmp_path):
    """Issue 19 as a user typed it: the patch must not be refused with "sessionAffinityConfig:
    Forbidden: must not be set when session affinity is None" (upstream's defaulting clears it)."""
    svc = tmp_path / "svc.yaml"
    svc.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: sticky\nspec:\n  selector:\n"
                   "    app: sticky\n  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n"
                   "    clientIP:\n      timeoutSeconds: 10\n  ports:\n  - port: 80\n")
    server.kubectl("apply", "-f", str(svc))
    server.kubectl("patch", "svc", "sticky", "-p", '{"spec":{"sessionAffinity":"None"}}')
    spec = json.loads(server.kubectl("get", "svc", "sticky", "-o", "json").stdout)["spec"]
    assert spec["sessionAffinity"] == "None" and "sessionAffinityConfig" not in spec
    server.kubectl("patch", "svc", "sticky", "-p", '{"spec":{"sessionAffinity":"ClientIP"}}')
    spec = json.loads(server.kubectl("get", "svc", "sticky", "-o", "json").stdout)["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
