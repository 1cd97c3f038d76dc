"""The API client: URL building, kubeconfig round trip, Status errors, informer behaviour."""

from __future__ import annotations

import asyncio

import pytest

from netemu.api import errors, kinds
from netemu.testing.apiserver import api_server
from netemu.client import ApiClient, Informer, kubeconfig, paths
from netemu.client.errors import from_status

CM = kinds.by_resource("", "v1", "configmaps")
PODS = kinds.by_resource("", "v1", "pods")
NODES = kinds.by_resource("", "v1", "nodes")
DEPLOY = kinds.by_resource("apps", "v1", "deployments")


def test_paths():
    assert paths.resource_path(PODS) == "/api/v1/pods"
    assert paths.resource_path(PODS, "ns") == "/api/v1/namespaces/ns/pods"
    assert paths.resource_path(PODS, "ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert paths.resource_path(NODES, "ignored", "n1") == "/api/v1/nodes/n1"
    assert paths.resource_path(DEPLOY, "d", "web", "scale") == "/apis/apps/v1/namespaces/d/deployments/web/scale"
    assert paths.query_string({"a": None, "b": "", "watch": True, "limit": 5}) == "?watch=true&limit=5"
    with pytest.raises(ValueError):
        paths.resource_path(PODS, "ns", None, "status")


def test_kubeconfig_round_trip(tmp_path):
    path = tmp_path / "kc"
    kubeconfig.write(path, kubeconfig.render("https://127.0.0.1:6443", "tok", ca_data=b"PEM"))
    access = kubeconfig.load(path)
    assert (access.server, access.token, access.ca_data) == ("https://127.0.0.1:6443", "tok", b"PEM")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ValueError):
        kubeconfig.load(path, context="other")


def test_status_errors_come_back_as_their_classes():
    assert isinstance(from_status(409, {"kind": "Status", "reason": "AlreadyExists", "code": 409}), errors.AlreadyExists)
    assert isinstance(from_status(409, {"kind": "Status", "reason": "Conflict", "code": 409}), errors.Conflict)
    assert isinstance(from_status(410, {"kind": "Status", "reason": "Expired", "code": 410}), errors.Gone)
    err = from_status(422, {"kind": "Status", "reason": "Invalid", "code": 422, "message": "bad",
                            "details": {"causes": [{"field": "metadata.name"}]}})
    assert isinstance(err, errors.Invalid) and err.details["causes"][0]["field"] == "metadata.name"
    assert isinstance(from_status(502, None, "gateway"), errors.InternalError)
    assert isinstance(from_status(404, None, "nope"), errors.NotFound)


def cm(name, **labels):
    return {"metadata": {"name": name, "namespace": "default", "labels": labels}, "data": {}}


def test_informer_cache_and_handlers(tmp_path):
    async def scenario():
        async with api_server(tmp_path) as srv:
            seen: list[tuple[str, str]] = []
            await srv.client.create(CM, cm("pre"))
            inf = Informer(srv.client, CM, "default")
            inf.add_handler(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                            on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
                            on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
            stop = asyncio.Event()
            task = asyncio.ensure_future(inf.run(stop))
            await asyncio.wait_for(inf.wait_synced(), 10)
            assert inf.get("pre", "default") is not None
            obj = await srv.client.create(CM, cm("new"))
            obj["data"] = {"x": "1"}
            await srv.client.update(CM, obj)
            await srv.client.delete(CM, "pre", "default")
            for _ in range(100):
                if len(seen) >= 4:
                    break
                await asyncio.sleep(0.05)
            assert seen == [("add", "pre"), ("add", "new"), ("update", "new"), ("delete", "pre")]
            assert [o["metadata"]["name"] for o in inf.list()] == ["new"]
            assert inf.get("new", "default")["data"] == {"x": "1"}
            stop.set()
            await asyncio.wait_for(task, 10)
    asyncio.run(scenario())


def test_informer_relists_after_gone_and_reports_missed_deletes(tmp_path):
    async def scenario():
        async with api_server(tmp_path) as srv:
            for name in ("a", "b"):
                await srv.client.create(CM, cm(name))
            inf = Informer(srv.client, CM, "default")
            stop = asyncio.Event()
            task = asyncio.ensure_future(inf.run(stop))
            await asyncio.wait_for(inf.wait_synced(), 10)
            stop.set()
            await asyncio.wait_for(task, 10)
            deleted: list[str] = []
            added: list[str] = []
            inf.add_handler(on_add=lambda o: added.append(o["metadata"]["name"]),
                            on_delete=lambda o: deleted.append(o["metadata"]["name"]))
            added.clear()                      # add_handler replays the cache
            # while it is stopped: a delete, a create, and the history compacted away
            await srv.client.delete(CM, "a", "default")
            await srv.client.create(CM, cm("c"))
            await srv.store.compact(await srv.store.current_revision())
            stop = asyncio.Event()
            task = asyncio.ensure_future(inf.run(stop))
            for _ in range(100):
                if deleted and added:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, 10)
            assert deleted == ["a"] and added == ["c"]
            assert sorted(k[1] for k in inf.cache) == ["b", "c"]
    asyncio.run(scenario())


def test_client_against_https_kubeconfig_server(tmp_path):
    """The real server process path: TLS with the state dir's CA, token from the kubeconfig."""
    from netemu.controlplane.server import ServerConfig, serve

    async def scenario():
        stop = asyncio.Event()
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        config = ServerConfig("127.0.0.1", 0, f"sqlite:{tmp_path / 'db'}", tmp_path, controllers=False)
        task = asyncio.ensure_future(serve(config, stop, ready.set_result))
        running = await asyncio.wait_for(ready, 20)
        try:
            assert running.url.startswith("https://")
            async with ApiClient.from_kubeconfig(str(running.kubeconfig)) as api:
                created = await api.create(CM, cm("tls"))
                assert created["metadata"]["name"] == "tls"
            ca = kubeconfig.load(running.kubeconfig).ca_data
            async with ApiClient(running.url, "wrong-token", ca_data=ca) as bad:
                with pytest.raises(errors.Unauthorized):
                    await bad.list(NODES)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
    asyncio.run(scenario())


def test_many_open_watches_do_not_block_requests(tmp_path):
    """HTTP/1.1 has no multiplexing: 120 watches hold 120 connections, and a get must still go."""
    async def scenario():
        async with api_server(tmp_path) as srv:
            rv = (await srv.client.list(CM, "default")).resource_version
            opened = []

            async def hold():
                async for _ in srv.client.watch(CM, "default", resource_version=rv, timeout_seconds=30):
                    return
            for _ in range(120):
                opened.append(asyncio.ensure_future(hold()))
            await asyncio.sleep(0.5)
            ns = await asyncio.wait_for(srv.client.get(kinds.by_resource("", "v1", "namespaces"), "default"), 10)
            assert ns["metadata"]["name"] == "default"
            await srv.client.create(CM, cm("release"))
            await asyncio.wait_for(asyncio.gather(*opened), 20)
    asyncio.run(scenario())


def test_client_certificate_loads_from_memory_and_leaves_no_file(tmp_path, monkeypatch):
    """A kubeconfig's client-certificate-data/client-key-data reach ssl through memfds: the pair
    loads (a wrong key is refused by ssl), and no temporary file or directory is made for it."""
    import ssl
    import tempfile

    from netemu.apiserver import certs
    from netemu.client import rest

    certs.ensure(tmp_path, "127.0.0.1")
    cert, key = certs.issue_client(tmp_path, "alice", ["team"])
    _, other_key = certs.issue_client(tmp_path, "bob")
    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(real_mkdtemp(*a, **k)) or made[-1])
    rest._load_client_cert(ssl.create_default_context(), cert, key)
    with pytest.raises(ssl.SSLError):
        rest._load_client_cert(ssl.create_default_context(), cert, other_key)
    assert made == []
