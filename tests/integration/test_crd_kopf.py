"""CustomResourceDefinitions with real kubectl 1.32 and a real kopf operator against one
``netemu apiserver`` process (no controllers: none is involved) shared by the module.

A CRD applied and established, custom resources validated by its schema (upstream's messages),
defaulted, pruned, listed with their printer columns, read through both served versions,
explained, scaled, applied server-side, guarded by RBAC; a kopf operator (kopf_operator.py,
``kopf run --standalone``) reconciling one within seconds, reacting to an update and handling a
delete through its finalizer, and in peering mode (its kopf.dev peering CRDs); deleting the CRD
deletes its resources. Every kubectl call gets a fresh discovery cache, so no test depends on
kubectl noticing the CRD by itself.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netemu.testing.apiserver_process import ApiServerProcess

pytestmark = pytest.mark.kubectl
HERE = Path(__file__).parent

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: webapps.demo.netemu.io
spec:
  group: demo.netemu.io
  scope: Namespaced
  names: {plural: webapps, singular: webapp, kind: WebApp, shortNames: [wa], categories: [demo]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Image, type: string, jsonPath: .spec.image}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [image]
            properties:
              image: {type: string, description: The container image the app runs.}
              replicas: {type: integer, minimum: 1, maximum: 10, default: 1}
              tier: {type: string, enum: [frontend, backend]}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""

WEBAPP = """\
apiVersion: demo.netemu.io/v1
kind: WebApp
metadata:
  name: {name}
spec:
  image: {image}
{extra}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("crd") / "state"
    srv = ApiServerProcess(state).start()
    caches = itertools.count()

    def kubectl(*args, **kw):
        return srv.kubectl(f"--cache-dir={state}/cache-{next(caches)}", *args, **kw)
    srv.k = kubectl
    try:
        kubectl("apply", "-f", "-", stdin=CRD)
        kubectl("wait", "--for", "condition=established", "crd/webapps.demo.netemu.io", "--timeout=10s")
        yield srv
    finally:
        assert srv.stop() == 0, (state / "apiserver.log").read_text()[-2000:]


def webapp(name: str, image: str = "nginx:1.27", **spec) -> str:
    extra = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in spec.items())
    return WEBAPP.format(name=name, image=image, extra=extra)


def get(server, *what: str) -> dict:
    return json.loads(server.k("get", *what, "-o", "json").stdout)


def test_the_crd_is_established_and_discovered(server):
    crd = get(server, "crd", "webapps.demo.netemu.io")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["listKind"] == "WebAppList"
    resources = server.k("api-resources", "--api-group=demo.netemu.io").stdout
    assert "webapps" in resources and "wa" in resources and "WebApp" in resources
    explained = server.k("explain", "webapp.spec.image").stdout
    assert "The container image the app runs." in explained


def test_custom_resources_are_validated_defaulted_and_listed_with_printer_columns(server):
    k = server.k
    assert k("apply", "-f", "-", stdin=webapp("shop", replicas=2)).stdout.strip() == \
        "webapp.demo.netemu.io/shop created"
    k("apply", "-f", "-", stdin=webapp("blog", image="ghost:5"))
    bad = k("apply", "-f", "-", stdin=webapp("bad", replicas=0), check=False)
    assert bad.returncode == 1
    assert ('The WebApp "bad" is invalid: spec.replicas: Invalid value: 0: spec.replicas in body should be '
            "greater than or equal to 1") in bad.stderr
    enum = k("apply", "-f", "-", stdin=webapp("bad", tier="middle"), check=False)
    assert 'spec.tier: Unsupported value: "middle": supported values: "frontend", "backend"' in enum.stderr
    typo = k("apply", "-f", "-", stdin=webapp("bad", replicass=3), check=False)
    assert 'strict decoding error: unknown field "spec.replicass"' in typo.stderr
    meta_typo = k("apply", "-f", "-", stdin=webapp("bad").replace("  name: bad", "  name: bad\n  labelz: {}"),
                  check=False)
    assert 'unknown field "metadata.labelz"' in meta_typo.stderr
    assert k("get", "wa", "bad", check=False).returncode == 1           # nothing refused was stored
    assert get(server, "wa", "blog")["spec"]["replicas"] == 1           # the schema's default
    table = k("get", "webapps").stdout.splitlines()
    assert table[0].split() == ["NAME", "IMAGE", "REPLICAS", "PHASE", "AGE"]
    shop = next(line.split() for line in table if line.startswith("shop"))
    assert shop[:3] == ["shop", "nginx:1.27", "2"] and shop[-1].endswith("s")
    assert [line.split()[0] for line in k("get", "demo").stdout.splitlines()[1:]] == ["blog", "shop"]  # category
    beta = get(server, "webapps.v1beta1.demo.netemu.io", "shop")
    assert beta["apiVersion"] == "demo.netemu.io/v1beta1" and beta["spec"]["image"] == "nginx:1.27"


def test_status_and_scale_subresources(server):
    k = server.k
    k("apply", "-f", "-", stdin=webapp("scaled", replicas=1))
    k("patch", "wa", "scaled", "--subresource=status", "--type=merge",
      "-p", '{"status": {"phase": "Running", "replicas": 1}, "spec": {"replicas": 9}}')
    obj = get(server, "wa", "scaled")
    assert obj["status"]["phase"] == "Running" and obj["spec"]["replicas"] == 1
    assert obj["metadata"]["generation"] == 1                           # a status write is no spec change
    k("patch", "wa", "scaled", "--type=merge", "-p", '{"spec": {"image": "nginx:1.28"}, "status": {"phase": "X"}}')
    obj = get(server, "wa", "scaled")
    assert obj["status"]["phase"] == "Running" and obj["metadata"]["generation"] == 2
    assert k("scale", "wa", "scaled", "--replicas=3").stdout.strip() == "webapp.demo.netemu.io/scaled scaled"
    assert get(server, "wa", "scaled")["spec"]["replicas"] == 3
    too_many = k("scale", "wa", "scaled", "--replicas=11", check=False)
    assert "spec.replicas in body should be less than or equal to 10" in too_many.stderr
    strategic = k("patch", "wa", "scaled", "-p", '{"spec": {"replicas": 2}}', check=False)
    assert "application/strategic-merge-patch+json is not supported" in strategic.stderr


def test_server_side_apply_and_rbac(server):
    k = server.k
    assert k("apply", "--server-side", "-f", "-", stdin=webapp("ssa", replicas=2)).stdout.strip() == \
        "webapp.demo.netemu.io/ssa serverside-applied"
    managers = {e["manager"] for e in json.loads(k("get", "wa", "ssa", "-o", "json", "--show-managed-fields")
                                                 .stdout)["metadata"]["managedFields"]}
    assert managers == {"kubectl"}
    denied = k("get", "wa", "--as=jane", check=False)
    assert ('webapps.demo.netemu.io is forbidden: User "jane" cannot list resource "webapps" in API group '
            '"demo.netemu.io" in the namespace "default"') in denied.stderr
    k("create", "role", "webapp-reader", "--verb=get,list", "--resource=webapps.demo.netemu.io")
    k("create", "rolebinding", "jane-reads-webapps", "--role=webapp-reader", "--user=jane")
    assert "ssa" in k("get", "wa", "--as=jane").stdout
    assert k("delete", "wa", "ssa", "--as=jane", check=False).returncode == 1


def _wait(what, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    return what()


def test_a_kopf_operator_reconciles_updates_and_finalizes(server, tmp_path):
    """In its own namespace: kopf puts its finalizer on every WebApp it sees, and nothing would
    take it off the others once the operator is gone (as on a real cluster)."""
    k = server.k
    k("create", "namespace", "operated")
    ns = ["-n", "operated"]
    deleted_log = tmp_path / "deleted.log"
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig), "WEBAPP_DELETED_LOG": str(deleted_log)}
    log = tmp_path / "kopf.log"
    with open(log, "wb") as out:
        operator = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--namespace=operated",
                                     str(HERE / "kopf_operator.py")], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        k(*ns, "apply", "-f", "-", stdin=webapp("app", replicas=2))
        status = _wait(lambda: get(server, *ns, "wa", "app").get("status"))
        assert status and status["phase"] == "Running" and status["image"] == "nginx:1.27", log.read_text()
        assert status["conditions"][0]["type"] == "Ready"
        obj = get(server, *ns, "wa", "app")
        assert "kopf.zalando.org/KopfFinalizerMarker" in obj["metadata"]["finalizers"]
        k(*ns, "patch", "wa", "app", "--type=merge", "-p", '{"spec": {"image": "nginx:1.28"}}')
        assert _wait(lambda: get(server, *ns, "wa", "app")["status"].get("image") == "nginx:1.28"), log.read_text()
        assert k(*ns, "get", "wa", "app").stdout.splitlines()[1].split()[:4] == ["app", "nginx:1.28", "2", "Running"]
        k(*ns, "delete", "wa", "app", "--timeout=20s")                # waits until kopf drops its finalizer
        assert deleted_log.read_text().split() == ["app"]
        assert k(*ns, "get", "wa", "app", check=False).returncode == 1
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


PEERING = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.kopf.dev
spec:
  scope: {scope}
  group: kopf.dev
  names: {{kind: {kind}, plural: {plural}, singular: {singular}}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          status: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def test_kopf_in_peering_mode_keeps_its_peer_in_a_namespaced_kopf_peering(server, tmp_path):
    """Without --standalone kopf finds its peering CRDs (kopf.dev, as its docs install them),
    announces itself in the KopfPeering's status (merge patches of a cluster's custom
    resource without a status subresource) and withdraws on exit."""
    k = server.k
    for kind, plural, scope in (("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
                                ("KopfPeering", "kopfpeerings", "Namespaced")):
        k("apply", "-f", "-", stdin=PEERING.format(kind=kind, plural=plural, singular=kind.lower(), scope=scope))
        k("wait", "--for", "condition=established", f"crd/{plural}.kopf.dev", "--timeout=10s")
    k("apply", "-f", "-", stdin="apiVersion: kopf.dev/v1\nkind: ClusterKopfPeering\nmetadata: {name: default}\n")
    cluster_scoped = get(server, "clusterkopfpeering", "default")
    assert "namespace" not in cluster_scoped["metadata"] and cluster_scoped["metadata"]["generation"] == 1
    assert server.k("get", "--raw", "/apis/kopf.dev/v1/namespaces/default/clusterkopfpeerings",
                    check=False).returncode == 1
    k("create", "namespace", "peered")
    k("apply", "-f", "-", stdin="apiVersion: kopf.dev/v1\nkind: KopfPeering\nmetadata: {name: default, "
                                "namespace: peered}\n")
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig), "WEBAPP_DELETED_LOG": str(tmp_path / "deleted")}
    log = tmp_path / "kopf.log"
    with open(log, "wb") as out:
        operator = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--namespace=peered",
                                     str(HERE / "kopf_operator.py")], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        peers = _wait(lambda: get(server, "-n", "peered", "kopfpeering", "default").get("status"))
        assert peers and all(p["lifetime"] == 60 for p in peers.values()), log.read_text()
    finally:
        operator.terminate()
        assert operator.wait(timeout=15) == 0, log.read_text()[-3000:]
    assert not get(server, "-n", "peered", "kopfpeering", "default").get("status")   # withdrawn on exit
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_deleting_the_crd_deletes_its_resources_and_stops_serving_them(server):
    k = server.k
    assert len(get(server, "wa")["items"]) >= 3
    k("delete", "crd", "webapps.demo.netemu.io", "--timeout=20s")
    gone = k("get", "webapps", check=False)
    assert gone.returncode == 1 and 'the server doesn\'t have a resource type "webapps"' in gone.stderr
    k("apply", "-f", "-", stdin=CRD)                                    # back, and empty
    k("wait", "--for", "condition=established", "crd/webapps.demo.netemu.io", "--timeout=10s")
    assert get(server, "wa")["items"] == []
