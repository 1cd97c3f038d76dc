"""Watch fan-out at scale: shared decoding, bounded per-watcher queues, stalled clients cut off.

A client that stops reading must not make the API server hold memory: its queue is bounded,
it is cut off with 410 (or disconnected when it does not even take that), and its store
subscription is released. Watchers that keep reading are not affected meanwhile.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from netemu.api import errors, kinds
from netemu.apiserver import watch
from netemu.testing.apiserver import api_server
from netemu.store.base import ADDED, MODIFIED, WatchEvent
from netemu.store.sqlite import SqliteStore

CM = kinds.by_resource("", "v1", "configmaps")
PODS = kinds.by_resource("", "v1", "pods")


class _Source:
    """A store watch stand-in: yields the given events, then waits forever; records aclose()."""

    def __init__(self, events):
        self.events, self.closed = list(events), False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.events:
            return self.events.pop(0)
        await asyncio.Event().wait()

    async def aclose(self):
        self.closed = True


def _event(rev: int, node: str = "n1") -> WatchEvent:
    obj = {"metadata": {"name": f"p{rev}", "namespace": "default", "resourceVersion": str(rev)},
           "spec": {"nodeName": node}}
    return WatchEvent(ADDED, f"/registry/pods/default/p{rev}", obj, rev)


def test_pump_cuts_off_a_watcher_whose_queue_stays_full():
    async def main():
        queue: asyncio.Queue = asyncio.Queue(maxsize=3)
        source = _Source(_event(r) for r in range(1, 20))
        aborted = []
        params = watch.WatchParams(slow_timeout=0.05)
        await asyncio.wait_for(watch._pump(source, queue, params, watch._PumpState(0),
                                           lambda: aborted.append(True)), 5)
        assert source.closed                         # the store subscription is released
        assert queue.qsize() == 1                    # the queued events are dropped ...
        err = queue.get_nowait()
        assert isinstance(err, watch.TooSlow) and isinstance(err, errors.Gone)   # ... for a 410
        assert err.status()["code"] == 410
        assert aborted == [True]                     # nobody took the 410 either: disconnect
    asyncio.run(main())


def test_pump_filters_before_queueing_and_tracks_the_revision():
    async def main():
        queue: asyncio.Queue = asyncio.Queue(maxsize=2)
        events = [_event(r, "n1" if r % 5 == 0 else "n2") for r in range(1, 11)]
        params = watch.WatchParams(match=lambda o: o["spec"]["nodeName"] == "n1", slow_timeout=0.05)
        state = watch._PumpState(0)
        pump = asyncio.ensure_future(watch._pump(_Source(events), queue, params, state, lambda: None))
        await asyncio.sleep(0.02)
        # 10 events, 2 match: a queue of 2 holds them without anyone reading, no cut-off.
        assert [queue.get_nowait()[2] for _ in range(2)] == [5, 10]
        assert state.last_rv == 10 and not pump.done()
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
    asyncio.run(main())


def test_shared_watchers_get_one_decoded_event_and_plain_watchers_their_own(tmp_path):
    async def main():
        store = SqliteStore(str(tmp_path / "s.db"))
        try:
            w1 = store.watch("/registry/pods/", 0, shared=True)
            w2 = store.watch("/registry/pods/", 0, shared=True)
            w3 = store.watch("/registry/pods/", 0)
            first = [asyncio.ensure_future(w.__anext__()) for w in (w1, w2, w3)]
            await asyncio.sleep(0.05)                # subscribed, history read (empty)
            await store.create("/registry/pods/default/a", {"metadata": {"name": "a"}})
            e1, e2, e3 = await asyncio.wait_for(asyncio.gather(*first), 5)
            assert e1 is e2 and e1.object["metadata"]["resourceVersion"] == e3.object["metadata"]["resourceVersion"]
            assert e3.object is not e1.object and e3.object == e1.object
            for w in (w1, w2, w3):
                await w.aclose()
        finally:
            await store.close()
    asyncio.run(main())


def test_watch_lines_do_not_modify_the_shared_object():
    rt = CM
    obj = {"metadata": {"name": "x", "namespace": "default", "resourceVersion": "7"}}
    line = watch._Encoded().line(rt, MODIFIED, obj)
    assert b'"kind": "ConfigMap"' in line
    assert obj == {"metadata": {"name": "x", "namespace": "default", "resourceVersion": "7"}}


def _stalled_socket(url: str, token: str, path: str) -> socket.socket:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return sock


def test_a_client_that_stops_reading_is_cut_off_and_released(tmp_path, monkeypatch):
    monkeypatch.setattr(watch, "WATCH_QUEUE", 4)
    monkeypatch.setattr(watch, "SLOW_WATCHER_TIMEOUT", 0.3)

    async def main():
        async with api_server(tmp_path) as srv:
            rv = (await srv.client.list(CM, "default")).resource_version
            got: list[str] = []

            async def reader():
                async for kind, obj in srv.client.watch(CM, "default", resource_version=rv):
                    got.append(obj["metadata"]["name"])
                    if len(got) == 12:
                        return
            live = asyncio.ensure_future(reader())
            path = f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
            stalled = await asyncio.to_thread(_stalled_socket, srv.url, srv.token, path)
            try:
                await asyncio.sleep(0.2)
                assert srv.store.watcher_count == 2
                big = "x" * 1_000_000                 # fills the stalled socket's buffers fast
                for i in range(12):
                    await srv.client.create(CM, {"metadata": {"name": f"cm{i}"}, "data": {"k": big}})
                await asyncio.wait_for(live, 20)     # the reading watcher got everything
                assert got == [f"cm{i}" for i in range(12)]
                for _ in range(100):                 # the stalled one is gone, subscription too
                    if len(srv.api.handlers.active_watches) == 0 and srv.store.watcher_count == 0:
                        break
                    await asyncio.sleep(0.1)
                assert len(srv.api.handlers.active_watches) == 0
                assert srv.store.watcher_count == 0
            finally:
                stalled.close()
    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.parametrize("nodes", [3])
def test_field_selected_pod_watches_see_only_their_node(tmp_path, nodes):
    async def main():
        async with api_server(tmp_path) as srv:
            c = srv.client
            rv = (await c.list(PODS, "default")).resource_version
            seen: dict[str, list[str]] = {f"n{i}": [] for i in range(nodes)}

            async def follow(node: str):
                async for kind, obj in c.watch(PODS, "default", resource_version=rv,
                                               field_selector=f"spec.nodeName={node}"):
                    seen[node].append(obj["metadata"]["name"])
                    if len(seen[node]) == 2:
                        return
            tasks = [asyncio.ensure_future(follow(n)) for n in seen]
            await asyncio.sleep(0.2)
            for i in range(2 * nodes):
                await c.create(PODS, {"metadata": {"name": f"p{i}"},
                                      "spec": {"nodeName": f"n{i % nodes}",
                                               "containers": [{"name": "c", "image": "nginx"}]}})
            await asyncio.wait_for(asyncio.gather(*tasks), 20)
            assert seen == {f"n{i}": [f"p{i}", f"p{i + nodes}"] for i in range(nodes)}
    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_burst_of_concurrent_creates_reaches_the_watcher_whole(tmp_path):
    """Every event of a burst larger than one write batch (WRITE_BATCH) is sent: the 65th of
    each burst used to be taken off the queue and never written (seen as 1 pod of 300 that the
    scheduler never scheduled, after the ReplicaSet controller created pods concurrently)."""
    async def main():
        async with api_server(tmp_path) as srv:
            seen: set[str] = set()

            async def watcher():
                async for _kind, obj in srv.client.watch(CM, "default", label_selector="burst=yes"):
                    seen.add(obj["metadata"]["name"])
            task = asyncio.ensure_future(watcher())
            await asyncio.sleep(0.2)
            n = 3 * watch.WRITE_BATCH + 7
            await asyncio.gather(*(srv.client.create(CM, {"metadata": {"name": f"c{i}", "labels": {"burst": "yes"}}},
                                                     "default") for i in range(n)))
            for _ in range(100):
                if len(seen) == n:
                    break
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert sorted(seen) == sorted(f"c{i}" for i in range(n))
    asyncio.run(main())
