"""What only the etcd backend does: upstream's key layout visible to etcdctl, endpoint failover,
a private etcd server that cleans up after itself, and clear errors when etcd is unreachable."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess

import pytest

from netemu.api import kinds
from netemu.api.errors import ServiceUnavailable
from netemu.store.etcd import EtcdStore, key_range, unb64
from netemu.store.etcd_server import EtcdServer, free_port


def test_key_range_is_a_half_open_prefix_range():
    r = key_range("/registry/pods/default/")
    assert unb64(r["key"]) == b"/registry/pods/default/"
    assert unb64(r["range_end"]) == b"/registry/pods/default0"
    after = key_range("/registry/pods/default/", "/registry/pods/default/a")
    assert unb64(after["key"]) == b"/registry/pods/default/a\x00"
    # a start_after before the prefix does not widen the range
    assert unb64(key_range("/b/", "/a")["key"]) == b"/b/"


@pytest.fixture(scope="module")
def etcd():
    server = EtcdServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.etcd
def test_etcdctl_sees_objects_under_upstream_keys(etcd):
    svc_kind = kinds.by_kind("v1", "Service")
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"clusterIP": "10.96.0.20"}}

    async def main():
        s = EtcdStore(etcd.endpoints)
        try:
            await s.create(svc_kind.key("default", "web"), svc)
        finally:
            await s.close()
    asyncio.run(main())
    if not shutil.which("etcdctl"):
        pytest.skip("etcdctl not installed (Debian package etcd-client)")
    out = subprocess.run(["etcdctl", "--endpoints", etcd.client_url, "get", "/registry/services",
                          "--prefix"], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "ETCDCTL_API": "3"}, check=True).stdout.splitlines()
    assert out[0] == "/registry/services/specs/default/web"
    stored = json.loads(out[1])
    assert stored["spec"] == {"clusterIP": "10.96.0.20"}
    assert "resourceVersion" not in stored["metadata"]     # the store owns it, as upstream


@pytest.mark.etcd
def test_requests_fail_over_to_a_live_endpoint(etcd):
    dead = f"http://127.0.0.1:{free_port()}"

    async def main():
        s = EtcdStore([dead, *etcd.endpoints])
        try:
            made = await s.create("/failover/a", {"kind": "ConfigMap"})
            assert (await s.get("/failover/a")) == made
        finally:
            await s.close()
    asyncio.run(main())


def test_unreachable_etcd_is_service_unavailable():
    async def main():
        s = EtcdStore([f"http://127.0.0.1:{free_port()}"], timeout=5)
        try:
            with pytest.raises(ServiceUnavailable, match="etcd unreachable"):
                await s.get("/registry/pods/default/a")
            with pytest.raises(ServiceUnavailable):
                await s.watch("/registry/", 0).__anext__()
        finally:
            await s.close()
    asyncio.run(main())


@pytest.mark.etcd
def test_close_ends_live_etcd_watches(etcd):
    async def main():
        s = EtcdStore(etcd.endpoints)
        w = s.watch("/closing/", 0)
        pending = asyncio.ensure_future(w.__anext__())
        await asyncio.sleep(0.2)
        await s.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, 10)
    asyncio.run(main())


@pytest.mark.etcd
def test_server_stops_by_pid_and_removes_its_data_dir():
    server = EtcdServer().start()
    pid, data = server.proc.pid, server.data_dir
    assert os.path.isdir(data)
    server.stop()
    assert not os.path.exists(data)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()          # twice is harmless


def test_missing_binary_is_a_clear_error():
    from netemu.store.etcd_server import EtcdError
    with pytest.raises(EtcdError, match="not found"):
        EtcdServer(binary="no-such-etcd-binary").start()


@pytest.mark.etcd
def test_restart_on_the_same_data_dir_keeps_the_data(tmp_path):
    data = str(tmp_path / "etcd" / "fresh")      # not there yet: the server makes it

    async def write(endpoints):
        async with EtcdStore(endpoints) as s:
            return await s.create("/registry/namespaces/kept", {"kind": "Namespace"})

    async def read(endpoints):
        async with EtcdStore(endpoints) as s:
            return await s.get("/registry/namespaces/kept")
    with EtcdServer(data) as first:
        made = asyncio.run(write(first.endpoints))
    assert os.path.isdir(data)                 # a caller's data dir is never removed
    with EtcdServer(data) as second:           # new random ports, same member data
        assert asyncio.run(read(second.endpoints)) == made


@pytest.mark.etcd
def test_watch_reports_etcd_going_away_instead_of_hanging():
    server = EtcdServer().start()
    try:
        async def main():
            async with EtcdStore(server.endpoints, timeout=5) as s:
                w = s.watch("/gone/", await s.current_revision())
                pending = asyncio.ensure_future(w.__anext__())
                await asyncio.sleep(0.2)
                await asyncio.get_running_loop().run_in_executor(None, server.stop)
                with pytest.raises(ServiceUnavailable):
                    await asyncio.wait_for(pending, 30)
        asyncio.run(main())
    finally:
        server.stop()


@pytest.mark.etcd
def test_api_server_on_etcd_stores_services_where_etcdctl_finds_them(etcd, tmp_path):
    """The issue's seed: objects created through the API land under upstream's keys."""
    if not shutil.which("etcdctl"):
        pytest.skip("etcdctl not installed (Debian package etcd-client)")
    from netemu.testing.apiserver import api_server
    svc_kind = kinds.by_kind("v1", "Service")
    root = f"/registry/services/specs/e2e{os.getpid()}/"

    async def main():
        store = EtcdStore(etcd.endpoints)
        try:
            async with api_server(tmp_path, store=store) as srv:
                await srv.client.create(kinds.by_kind("v1", "Namespace"),
                                        {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": f"e2e{os.getpid()}"}})
                return await srv.client.create(svc_kind, {
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "web", "namespace": f"e2e{os.getpid()}"},
                    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        finally:
            await store.close()
    made = asyncio.run(main())
    out = subprocess.run(["etcdctl", "--endpoints", etcd.client_url, "get", root, "--prefix"],
                         capture_output=True, text=True, timeout=30, check=True,
                         env={**os.environ, "ETCDCTL_API": "3"}).stdout.splitlines()
    assert out[0] == root + "web"
    stored = json.loads(out[1])
    assert stored["metadata"]["uid"] == made["metadata"]["uid"]
    assert stored["spec"]["clusterIP"] == made["spec"]["clusterIP"]
