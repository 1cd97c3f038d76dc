"""The kubelet against a real in-process API server, with a fake runtime (no root): the Node
registers NotReady, becomes Ready once it has a podCIDR, renews its Lease, runs a bound pod and
writes its status, learns routes to other nodes, serves logs through pods/log, and finishes a
graceful delete; API errors do not stop it."""

import asyncio
import os
import socket

import aiohttp

from netemu.agent.kubelet import kubelet as kl
from netemu.agent.kubelet.logserver import LogServer
from netemu.agent.kubelet.worker import log_path
from netemu.apiserver import podlog
from netemu.testing.apiserver import api_server
from tests.unit.test_kubelet_worker import FakeRuntime, until


class NodeRuntime(FakeRuntime):
    def __init__(self):
        super().__init__()
        self.cidr, self.route_sets, self.orphan_checks = None, [], []

    async def setup_node(self, pod_cidr):
        self.cidr = pod_cidr

    async def remove_orphans(self, live):
        self.orphan_checks.append(set(live))
        return []

    async def set_routes(self, routes):
        self.route_sets.append(dict(routes))

    async def start_container(self, pod, container, restart_count):
        path = log_path(self.log_dir, pod, container["name"], restart_count)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a") as f:
            f.write(f"hello from {container['name']}\nline two\n")
        return await super().start_container(pod, container, restart_count)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod(name, node="w1", **spec):
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "agnhost"}], **spec}}


def test_kubelet_end_to_end_with_fake_runtime(tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setattr(podlog, "KUBELET_PORT", port)

    async def main():
        async with api_server(tmp_path) as srv:
            api = srv.client
            runtime = NodeRuntime()
            runtime.log_dir = str(tmp_path / "logs")
            config = kl.KubeletConfig("w1", "127.0.0.1", heartbeat_interval=0.2, log_dir=str(tmp_path / "logs"))
            kubelet = kl.Kubelet(api, runtime, config)
            logs = LogServer(kubelet.find_pod, kubelet.restart_count, config.log_dir, "127.0.0.1", port)
            await logs.start()
            stop = asyncio.Event()
            task = asyncio.ensure_future(kubelet.run(stop))
            try:
                await until(lambda: kubelet.node is not None)
                node = await api.get(kl.NODE, "w1")
                assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "127.0.0.1"}
                for _ in range(600):
                    leases = (await api.list(kl.LEASE, "kube-node-lease")).items
                    if leases:
                        break
                    await asyncio.sleep(0.05)
                lease = leases[0]
                assert lease["metadata"]["name"] == lease["spec"]["holderIdentity"] == "w1"
                # node IPAM's job, done by hand here (no controllers)
                await api.patch(kl.NODE, "w1", {"spec": {"podCIDR": "10.244.1.0/24"}})
                await api.create(kl.NODE, {"metadata": {"name": "w2"}, "spec": {"podCIDR": "10.244.2.0/24"},
                                           "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.2"}]}})
                await until(lambda: kubelet.ready)
                assert runtime.cidr == "10.244.1.0/24"
                node = await api.get(kl.NODE, "w1")
                ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"][0]
                assert ready["status"] == "True"
                await until(lambda: runtime.route_sets and runtime.route_sets[-1] == {"10.244.2.0/24": "127.0.0.2"})
                renew = lease["spec"]["renewTime"]
                for _ in range(600):                                  # the Lease keeps being renewed
                    if (await api.get(kl.LEASE, "w1", "kube-node-lease"))["spec"]["renewTime"] != renew:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("lease not renewed")

                await api.create(kl.POD, pod("other", node="w2"))
                await api.create(kl.POD, pod("web"))

                async def running():
                    p = await api.get(kl.POD, "web", "default")
                    return (p.get("status") or {}).get("phase") == "Running" and p["status"].get("podIP")
                for _ in range(600):
                    if await running():
                        break
                    await asyncio.sleep(0.05)
                web = await api.get(kl.POD, "web", "default")
                assert web["status"]["podIP"] == "10.244.1.7" and web["status"]["hostIP"] == "127.0.0.1"
                assert [c["type"] for c in web["status"]["conditions"] if c["status"] == "True"] == [
                    "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
                # the lifecycle controller marks the pod not Ready (node cut off): the kubelet restores it
                conds = [dict(c, status="False") if c["type"] == "Ready" else c for c in web["status"]["conditions"]]
                await api.patch(kl.POD, "web", {"status": {"conditions": conds}}, "default", subresource="status")
                for _ in range(600):
                    p = await api.get(kl.POD, "web", "default")
                    if [c["status"] for c in p["status"]["conditions"] if c["type"] == "Ready"] == ["True"]:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("overwritten status not restored")
                rv = p["metadata"]["resourceVersion"]
                await asyncio.sleep(0.5)                             # and no write loop follows
                assert (await api.get(kl.POD, "web", "default"))["metadata"]["resourceVersion"] == rv
                events = (await api.list(kl.by_kind("v1", "Event"), "default")).items
                started = [e for e in events if e["reason"] == "Started" and e["involvedObject"]["name"] == "web"]
                assert started and started[0]["source"] == {"component": "kubelet", "host": "w1"}
                other = await api.get(kl.POD, "other", "default")
                assert not other.get("status", {}).get("podIP")          # another node's pod is not ours

                async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {srv.token}"}) as s:
                    async with s.get(srv.url + "/api/v1/namespaces/default/pods/web/log?tailLines=1") as r:
                        assert r.status == 200 and await r.text() == "line two\n"
                    async with s.get(srv.url + "/api/v1/namespaces/default/pods/web/log?container=nope") as r:
                        assert r.status == 400
                    async with s.get(srv.url + "/api/v1/namespaces/default/pods/other/log") as r:
                        assert r.status == 500 and "127.0.0.2" in await r.text()

                await api.delete(kl.POD, "web", "default")
                for _ in range(600):
                    if not any(p["metadata"]["name"] == "web" for p in (await api.list(kl.POD, "default")).items):
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("graceful delete not finished by the kubelet")
                assert runtime.removed and runtime.started[0][1].signals
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
                await logs.close()
    asyncio.run(asyncio.wait_for(main(), 180))


class FlakyNetwork(NodeRuntime):
    def __init__(self):
        super().__init__()
        self.failures = 1

    async def setup_node(self, pod_cidr):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("br_netfilter is not available")
        await super().setup_node(pod_cidr)


def test_network_setup_failure_keeps_node_not_ready_with_reason_then_recovers(tmp_path):
    async def main():
        async with api_server(tmp_path) as srv:
            api = srv.client
            runtime = FlakyNetwork()
            kubelet = kl.Kubelet(api, runtime, kl.KubeletConfig("w1", "127.0.0.1", heartbeat_interval=0.2,
                                                                log_dir=str(tmp_path / "logs")))
            stop = asyncio.Event()
            task = asyncio.ensure_future(kubelet.run(stop))
            try:
                await until(lambda: kubelet.node is not None)
                await api.patch(kl.NODE, "w1", {"spec": {"podCIDR": "10.244.1.0/24"}})
                messages = []
                for _ in range(600):
                    node = await api.get(kl.NODE, "w1")
                    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"][0]
                    messages.append((ready["status"], ready.get("message", "")))
                    if ready["status"] == "True":
                        break
                    await asyncio.sleep(0.05)
                assert ("False", "container runtime network not ready: br_netfilter is not available") in messages
                assert messages[-1][0] == "True" and runtime.cidr == "10.244.1.0/24"
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
    asyncio.run(asyncio.wait_for(main(), 180))
