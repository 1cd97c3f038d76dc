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


def _user_kubeconfig(server: ApiServerProcess, tmp_path, user: str, groups: tuple[str, ...]) -> str:
    """A kubeconfig with a client certificate signed by the cluster CA (CN=user, O=groups)."""
    from netemu.apiserver import certs
    from netemu.client import kubeconfig
    access = kubeconfig.load(server.kubeconfig)
    cert, key = certs.issue_client(server.state_dir, user, groups)
    path = tmp_path / f"{user}.kubeconfig"
    kubeconfig.write(path, kubeconfig.render(access.server, ca_data=access.ca_data, client_cert=cert,
                                             client_key=key, user=user))
    return str(path)


def test_can_i_create_token_and_a_service_account_forbidden_until_bound(server, tmp_path):
    k = server.kubectl
    assert k("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == "kubernetes-admin"
    assert k("auth", "can-i", "*", "*").stdout.strip() == "yes"
    k("create", "serviceaccount", "bot")
    token = k("create", "token", "bot", "--duration", "15m").stdout.strip()
    assert token.count(".") == 2
    from netemu.client import kubeconfig
    access = kubeconfig.load(server.kubeconfig)
    bot_config = tmp_path / "bot.kubeconfig"
    kubeconfig.write(bot_config, kubeconfig.render(access.server, token, ca_data=access.ca_data, user="bot"))
    as_bot = ["--kubeconfig", str(bot_config)]
    denied = k(*as_bot, "get", "pods", check=False)
    assert denied.returncode == 1
    assert ('Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:default:bot" cannot '
            'list resource "pods" in API group "" in the namespace "default"') in denied.stderr
    sa = "system:serviceaccount:default:bot"
    assert k("auth", "can-i", "list", "pods", "--as", sa, check=False).stdout.strip() == "no"
    k("create", "rolebinding", "bot-view", "--clusterrole=view", "--serviceaccount=default:bot")
    assert k("auth", "can-i", "list", "pods", "--as", sa).stdout.strip() == "yes"
    assert k("auth", "can-i", "create", "pods", "--as", sa, check=False).stdout.strip() == "no"
    assert k("auth", "can-i", "list", "pods", "-n", "kube-system", "--as", sa, check=False).returncode == 1
    allowed = k(*as_bot, "get", "pods")
    assert allowed.returncode == 0
    listing = k("auth", "can-i", "--list", "--as", sa).stdout
    assert "pods" in listing and "[get list watch]" in listing


def test_client_certificate_users_and_groups(server, tmp_path):
    jane = _user_kubeconfig(server, tmp_path, "jane", ("devs",))
    env_k = lambda *a, **kw: server.kubectl(*a, kubeconfig=jane, **kw)  # noqa: E731
    assert env_k("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == "jane"
    denied = env_k("get", "deployments", check=False)
    assert 'User "jane" cannot list resource "deployments" in API group "apps" in the namespace "default"' \
        in denied.stderr
    server.kubectl("create", "clusterrolebinding", "devs-edit", "--clusterrole=edit", "--group=devs")
    assert env_k("auth", "can-i", "create", "deployments").stdout.strip() == "yes"
    env_k("create", "deployment", "web", "--image=nginx")
    assert env_k("auth", "can-i", "create", "rolebindings", check=False).stdout.strip() == "no"
    admin = _user_kubeconfig(server, tmp_path, "root", ("system:masters",))
    assert server.kubectl("auth", "can-i", "*", "*", kubeconfig=admin).stdout.strip() == "yes"


def test_explain_reads_the_openapi_v3_schemas(server):
    out = server.kubectl("explain", "pod.spec.containers.ports").stdout
    assert "FIELD: ports <[]ContainerPort>" in out and "containerPort\t<integer> -required-" in out
    out = server.kubectl("explain", "deployment.spec.strategy").stdout
    assert "GROUP:      apps" in out and "Type of deployment." in out
    out = server.kubectl("explain", "ingress.spec.rules.http.paths.pathType").stdout
    assert "pathType" in out
    unknown = server.kubectl("explain", "pod.spec.nosuchfield", check=False)
    assert unknown.returncode == 1 and 'field "nosuchfield" does not exist' in unknown.stderr
