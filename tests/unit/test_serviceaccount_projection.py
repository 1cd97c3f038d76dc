"""The kubelet's projected ServiceAccount volume (agent/kubelet/serviceaccount.py) and the
kubernetes Service's environment, without a cluster: a fake API answers TokenRequests."""

from __future__ import annotations

import asyncio
import os

from netemu.agent.kubelet import serviceaccount as sa_
from netemu.api import errors
from netemu.emulator.ready import pod_routes

KUBERNETES = {"metadata": {"name": "kubernetes", "namespace": "default"},
              "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}


class FakeApi:
    def __init__(self, automount=None):
        self.tokens = 0
        self.automount = automount

    async def get(self, kind, name, namespace=None):
        if kind is sa_.SVC:
            return KUBERNETES
        if name == "missing":
            raise errors.NotFound(f'serviceaccounts "{name}" not found')
        sa = {"metadata": {"name": name, "namespace": namespace}}
        if self.automount is not None:
            sa["automountServiceAccountToken"] = self.automount
        return sa

    async def request(self, method, path, body=None):
        assert method == "POST" and path.endswith("/token"), path
        assert body["spec"]["boundObjectRef"]["kind"] == "Pod"
        assert body["spec"]["expirationSeconds"] == sa_.EXPIRATION
        self.tokens += 1
        return {"status": {"token": f"token-{self.tokens}"}}


def pod(uid="u1", sa="default", automount=None, image="python:3.11"):
    spec = {"serviceAccountName": sa, "containers": [{"name": "c", "image": image, "command": ["python3"]}]}
    if automount is not None:
        spec["automountServiceAccountToken"] = automount
    return {"metadata": {"name": "p", "namespace": "team", "uid": uid}, "spec": spec}


def test_kubernetes_service_env_is_upstreams():
    env = sa_.service_env(KUBERNETES)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.96.0.1"
    assert sa_.service_env({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}) == {}


def test_which_containers_get_a_token():
    assert sa_.wants_api({"name": "c", "image": "python:3.11", "command": ["python3"]})
    assert sa_.wants_api({"name": "c", "image": "registry.k8s.io/coredns/coredns:v1.11.1"})
    assert not sa_.wants_api({"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                              "args": ["netexec"]})


def test_projection_writes_token_ca_namespace_and_renews_at_80_percent(tmp_path, monkeypatch):
    api = FakeApi()
    proj = sa_.ServiceAccountProjector(api, b"CA PEM", str(tmp_path))
    p = pod()
    env, binds = asyncio.run(proj.extras(p, p["spec"]["containers"][0]))
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    [(src, dst)] = binds
    assert dst == "/var/run/secrets/kubernetes.io/serviceaccount" and src == proj.pod_dir("u1")
    files = {n: open(os.path.join(src, n), "rb").read() for n in os.listdir(src)}
    assert files == {"token": b"token-1", "ca.crt": b"CA PEM", "namespace": b"team"}
    asyncio.run(proj.renew([p]))                       # fresh: not due
    assert api.tokens == 1
    issued, expires = proj._tokens["u1"]
    monkeypatch.setattr(sa_.time, "time", lambda: issued + 0.81 * (expires - issued))
    asyncio.run(proj.renew([p]))
    assert api.tokens == 2 and open(os.path.join(src, "token")).read() == "token-2"
    proj.forget("u1")
    assert not os.path.exists(os.path.join(str(tmp_path), "u1"))


def test_a_restarted_kubelet_renews_tokens_it_finds_on_disk(tmp_path):
    api = FakeApi()
    p = pod()
    asyncio.run(sa_.ServiceAccountProjector(api, b"", str(tmp_path)).project(p))
    again = sa_.ServiceAccountProjector(api, b"", str(tmp_path))
    asyncio.run(again.renew([p, pod(uid="never-started")]))
    assert api.tokens == 2                            # the adopted pod's, not the other


def test_automount_false_on_pod_or_service_account_gives_no_token(tmp_path):
    for api, p in ((FakeApi(), pod(automount=False)), (FakeApi(automount=False), pod()),
                   (FakeApi(automount=False), pod(uid="u2", automount=True))):
        proj = sa_.ServiceAccountProjector(api, b"", str(tmp_path))
        env, binds = asyncio.run(proj.extras(p, p["spec"]["containers"][0]))
        assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
        assert (binds != []) == bool(p["spec"].get("automountServiceAccountToken")), p
    agnhost = {"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47", "args": ["netexec"]}
    assert asyncio.run(sa_.ServiceAccountProjector(FakeApi(), b"", str(tmp_path)).extras(pod(), agnhost)) == ({}, [])


def test_control_plane_routes_to_each_nodes_pods():
    nodes = [{"spec": {"podCIDR": "10.244.1.0/24"},
              "status": {"addresses": [{"type": "Hostname", "address": "n1"},
                                       {"type": "InternalIP", "address": "172.31.5.2"}]}},
             {"spec": {}, "status": {"addresses": [{"type": "InternalIP", "address": "172.31.5.3"}]}}]
    assert pod_routes(nodes) == {"10.244.1.0/24": "172.31.5.2"}
