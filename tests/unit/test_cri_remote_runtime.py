"""The kubelet <-> runtime protocol (netemu/agent/cri.py) without a kernel: the runtime's real
socket server (RuntimeService.handle_client) in front of stand-in containers, and the kubelet's
RemoteRuntime as the client. What a kubelet restart and a runtime death look like from the
kubelet: running containers are adopted by a new kubelet, an exit reaches the handle, a start
error keeps its reason, and every running container reports 137 when the runtime goes away."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from netemu.agent import cri
from netemu.agent.kubelet.remote_runtime import LOST, RemoteRuntime
from netemu.agent.runtime.builtin import ContainerStartError
from netemu.agent.runtime.server import Running, RuntimeService

POD = {"metadata": {"uid": "u1", "name": "p", "namespace": "default"}, "spec": {"containers": [{"name": "c"}]}}


class FakeContainer:
    def __init__(self):
        self.done = asyncio.get_running_loop().create_future()
        self.started_at = 1.0

    async def wait(self) -> int:
        return await asyncio.shield(self.done)

    def kill(self) -> None:
        if not self.done.done():
            self.done.set_result(137)

    async def stop(self, grace: float) -> int:
        if not self.done.done():
            self.done.set_result(0)
        return await self.wait()


class FakeService(RuntimeService):
    """The real dispatch, stand-in sandboxes and containers."""

    async def RunPodSandbox(self, pod):  # noqa: N802
        return {"ip": "10.244.0.9", "hostname": pod["metadata"]["name"]}

    async def SetPodEtc(self, pod, files):  # noqa: N802
        self.etc = files
        return {}

    async def StartContainer(self, pod, container, attempt, env=None, mounts=None):  # noqa: N802
        self.extras = (env, mounts)
        if container["name"] == "bad":
            raise ContainerStartError("ImageNotSupported", "no such image", 128)
        self._ids += 1
        cid = f"c{self._ids}"
        info = cri.ContainerInfo(cid, pod["metadata"]["uid"], container["name"], attempt, "running", 1.0)
        self.containers[cid] = Running(info, FakeContainer())
        asyncio.ensure_future(self._watch(cid))
        return {"id": cid, "started_at": 1.0}


@pytest.fixture
def sock(tmp_path):
    path = f"/tmp/cri-test-{os.getpid()}-{id(tmp_path)}.sock"
    yield path
    if os.path.exists(path):
        os.unlink(path)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_start_exit_error_and_adoption_by_a_new_kubelet(sock, tmp_path):
    async def main():
        service = FakeService(str(tmp_path), "10.0.0.1", "n1")
        server = await asyncio.start_unix_server(service.handle_client, sock)
        kubelet = RemoteRuntime(sock, reconnect_timeout=5)
        assert await kubelet.create_sandbox(POD) == "10.244.0.9"
        assert "10.244.0.9\tp" in service.etc["hosts"] and "nameserver" in service.etc["resolv.conf"]
        first = await kubelet.start_container(POD, {"name": "c"}, 0)
        assert service.extras == ({}, [])

        async def extras(pod, container):                       # the kubelet's projector hook
            return {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, [("/state/volumes/u1/serviceaccount", "/sa")]
        kubelet.pod_extras = extras
        await kubelet.start_container(POD, {"name": "c2"}, 0)
        assert service.extras == ({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, [["/state/volumes/u1/serviceaccount", "/sa"]])
        with pytest.raises(ContainerStartError) as bad:
            await kubelet.start_container(POD, {"name": "bad"}, 0)
        assert (bad.value.reason, bad.value.exit_code) == ("ImageNotSupported", 128)
        await kubelet.close()                                   # the kubelet dies; c keeps running
        assert service.containers[first.id].info.state == "running"
        second = RemoteRuntime(sock, reconnect_timeout=5)
        await second.connect()
        handle, info = second.adopt(POD, "c")
        assert handle.id == first.id and info.attempt == 0 and info.state == "running"
        assert second.adopt(POD, "c") is None                  # adopted once
        handle.signal(signal.SIGTERM)                            # StopContainer TERM -> exit 0
        assert await handle.wait() == 0
        await second.close()
        server.close()
    run(main())


def test_an_exit_while_the_kubelet_was_away_is_found_as_exited(sock, tmp_path):
    async def main():
        service = FakeService(str(tmp_path), "10.0.0.1", "n1")
        server = await asyncio.start_unix_server(service.handle_client, sock)
        kubelet = RemoteRuntime(sock, reconnect_timeout=5)
        h = await kubelet.start_container(POD, {"name": "c"}, 3)
        await kubelet.close()
        service.containers[h.id].handle.done.set_result(2)
        await asyncio.sleep(0.05)
        again = RemoteRuntime(sock, reconnect_timeout=5)
        await again.connect()
        handle, info = again.adopt(POD, "c")
        assert handle is None and (info.state, info.exit_code, info.attempt) == ("exited", 2, 3)
        await again.close()
        server.close()
    run(main())


def test_the_runtime_going_away_ends_every_running_container_with_137(sock, tmp_path):
    async def main():
        service = FakeService(str(tmp_path), "10.0.0.1", "n1")
        server = await asyncio.start_unix_server(service.handle_client, sock)
        kubelet = RemoteRuntime(sock, reconnect_timeout=0.5)
        handles = [await kubelet.start_container(POD, {"name": "c"}, i) for i in range(3)]
        server.close()
        for writer in list(service.clients):
            writer.close()
        assert [await asyncio.wait_for(h.wait(), 5) for h in handles] == [LOST] * 3
        with pytest.raises(cri.RuntimeUnavailable):
            await kubelet.create_sandbox(POD)                    # nobody listens any more
        await kubelet.close()
    run(main())
