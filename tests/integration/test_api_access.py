"""The API a Kubernetes user expects, with real kubectl 1.32 against one ``netemu apiserver``
process (controllers on) shared by the module: namespace lifecycle, and (as issue 15 lands)
RBAC, tokens, reviews and impersonation."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from netemu.testing.apiserver_process import ApiServerProcess

pytestmark = pytest.mark.kubectl

NS_MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: prices
  namespace: shop
data:
  apple: "3"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("api-access") / "state"
    srv = ApiServerProcess(state, controllers=True).start()
    try:
        yield srv
    finally:
        assert srv.stop() == 0, (state / "apiserver.log").read_text()[-2000:]


def _phases(srv: ApiServerProcess, name: str, seen: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        r = srv.kubectl("get", "ns", name, "-o", "jsonpath={.status.phase}", check=False)
        seen.append(r.stdout.strip() if r.returncode == 0 else "gone")
        if seen[-1] == "gone":
            return
        time.sleep(0.2)


def test_delete_f_of_a_namespace_and_its_objects_exits_0_through_terminating(server, tmp_path):
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(NS_MANIFEST)
    server.kubectl("apply", "-f", str(manifest))
    seen: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_phases, args=(server, "shop", seen, stop), daemon=True)
    watcher.start()
    try:
        out = server.kubectl("delete", "-f", str(manifest)).stdout     # waits until they are gone
        assert 'namespace "shop" deleted' in out and 'configmap "prices" deleted' in out
        watcher.join(60)
        assert seen and seen[-1] == "gone" and "Terminating" in seen, seen
    finally:
        stop.set()
    server.kubectl("create", "namespace", "closing")
    server.kubectl("delete", "namespace", "closing", "--wait=false")
    ns = json.loads(server.kubectl("get", "ns", "closing", "-o", "json").stdout)
    assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
    refused = server.kubectl("create", "configmap", "late", "-n", "closing", check=False)
    assert refused.returncode == 1
    assert ('configmaps "late" is forbidden: unable to create new content in namespace closing because '
            "it is being terminated") in refused.stderr
    assert server.kubectl("get", "all", "-n", "shop", "-o", "name").stdout.strip() == ""
