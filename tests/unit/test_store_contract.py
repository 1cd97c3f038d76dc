"""The store contract (netemu/store/base.py), one suite run against every backend.

The etcd runs start Debian's etcd on loopback once per module (marked ``etcd``: skipped with the
reason when the binary is missing); each test then works under its own random key root, and
asserts on revisions relative to its own writes, because etcd's revision is server-global.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from netemu.api.errors import AlreadyExists, BadRequest, Conflict, Gone, NotFound
from netemu.store.base import ADDED, DELETED, MODIFIED
from netemu.store.sqlite import SqliteStore
from tests.unit.test_store_harness import Backend, nothing_more, take, unique_root

PODS = "/registry/pods/"


def pod(name: str, ns: str = "default", **extra) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, **extra}


@pytest.fixture(scope="module")
def etcd_server():
    from netemu.store.etcd_server import EtcdServer
    server = EtcdServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def backend(request, tmp_path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", lambda **kw: SqliteStore(str(tmp_path / "state.db"), **kw))
    from netemu.store.etcd import EtcdStore
    server = request.getfixturevalue("etcd_server")
    return Backend("etcd", lambda **kw: EtcdStore(server.endpoints, **kw), root=unique_root())


def rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


def test_every_write_bumps_one_global_revision(backend):
    async def body(s, k):
        a = await s.create(k(PODS + "default/a"), pod("a"))
        b = await s.create(k("/registry/services/specs/default/b"), {"kind": "Service"})
        assert rv(b) == rv(a) + 1
        assert await s.current_revision() == rv(b)
        got = await s.get(k(PODS + "default/a"))
        assert got == a and got["metadata"]["name"] == "a"
        a2 = await s.update(k(PODS + "default/a"), {**got, "spec": {"x": 1}})
        assert rv(a2) == rv(b) + 1 and a2["spec"] == {"x": 1}
        gone = await s.delete(k(PODS + "default/a"))
        assert gone == a2                     # the last value, at its own revision
        assert await s.current_revision() == rv(a2) + 1
    backend.run(body)


def test_resource_version_is_set_by_the_store_not_trusted_from_input(backend):
    async def body(s, k):
        obj = pod("a")
        obj["metadata"]["resourceVersion"] = "999999"
        made = await s.create(k(PODS + "default/a"), obj)
        assert rv(made) == await s.current_revision() and rv(made) != 999999
        assert obj["metadata"]["resourceVersion"] == "999999"   # caller's dict untouched
        made["metadata"]["labels"] = {"mutated": "yes"}          # returned dicts are copies
        assert "labels" not in (await s.get(k(PODS + "default/a")))["metadata"]
    backend.run(body)


def test_create_existing_key_is_already_exists_and_changes_nothing(backend):
    async def body(s, k):
        first = await s.create(k(PODS + "default/a"), pod("a", spec={"v": 1}))
        with pytest.raises(AlreadyExists):
            await s.create(k(PODS + "default/a"), pod("a", spec={"v": 2}))
        assert await s.get(k(PODS + "default/a")) == first
        assert await s.current_revision() == rv(first)
    backend.run(body)


def test_conditional_update_and_delete(backend):
    async def body(s, k):
        key = k(PODS + "default/a")
        v1 = await s.create(key, pod("a", spec={"v": 1}))
        v2 = await s.update(key, pod("a", spec={"v": 2}), expected_revision=rv(v1))
        with pytest.raises(Conflict):
            await s.update(key, pod("a", spec={"v": 3}), expected_revision=rv(v1))
        with pytest.raises(Conflict):
            await s.delete(key, expected_revision=rv(v1))
        assert await s.get(key) == v2
        assert await s.current_revision() == rv(v2)
        with pytest.raises(NotFound):
            await s.update(k(PODS + "default/missing"), pod("missing"))
        with pytest.raises(NotFound):
            await s.update(k(PODS + "default/missing"), pod("missing"), expected_revision=rv(v2))
        with pytest.raises(NotFound):
            await s.delete(k(PODS + "default/missing"))
        assert (await s.delete(key, expected_revision=rv(v2))) == v2
        with pytest.raises(NotFound):
            await s.get(key)
        with pytest.raises(NotFound):
            await s.delete(key)
    backend.run(body)


def test_bad_input_is_rejected_and_stores_nothing(backend):
    async def body(s, k):
        before = await s.current_revision()
        for bad_key in ("", "relative/key", None, 5):
            with pytest.raises(BadRequest):
                await s.create(bad_key, pod("a"))
        with pytest.raises(BadRequest):
            await s.create(k(PODS + "default/a"), ["not", "an", "object"])
        with pytest.raises(BadRequest):
            await s.create(k(PODS + "default/a"), {"metadata": {"name": object()}})
        with pytest.raises(BadRequest):
            await s.list(k(PODS), limit=0)
        with pytest.raises(BadRequest):
            await s.list(k(PODS), start_after=5)
        with pytest.raises(BadRequest):
            await s.list(k(PODS), revision="3")
        with pytest.raises(BadRequest):
            await s.watch(k(PODS), "3").__anext__()
        with pytest.raises(BadRequest):
            await s.compact(-1)
        with pytest.raises(BadRequest):
            await s.list(k(PODS), revision=before + 1000)      # the future
        with pytest.raises(BadRequest):
            await s.compact(before + 1000)
        await s.create(k(PODS + "default/ok"), pod("ok"))
        with pytest.raises(BadRequest):
            await s.update(k(PODS + "default/ok"), pod("ok", spec={"v": 2}), expected_revision="1")
        with pytest.raises(BadRequest):
            await s.delete(k(PODS + "default/ok"), expected_revision=True)
        assert (await s.get(k(PODS + "default/ok")))["metadata"]["resourceVersion"] == str(before + 1)
        assert await s.current_revision() == before + 1
        assert [o["metadata"]["name"] for o in (await s.list(k(PODS))).items] == ["ok"]
    backend.run(body)


def test_watch_replays_history_then_goes_live(backend):
    async def body(s, k):
        a = await s.create(k(PODS + "default/a"), pod("a"))
        await s.create(k(PODS + "default/b"), pod("b"))
        await s.update(k(PODS + "default/a"), pod("a", spec={"v": 2}))
        w = s.watch(k(PODS), rv(a))          # everything after a's creation
        hist = await take(w, 2)
        assert [(e.type, e.key) for e in hist] == [(ADDED, k(PODS + "default/b")),
                                                  (MODIFIED, k(PODS + "default/a"))]
        assert hist[1].prev_object["metadata"]["resourceVersion"] == str(rv(a))
        c = await s.create(k(PODS + "default/c"), pod("c"))
        (live,) = await take(w, 1)
        assert (live.type, live.revision, live.object) == (ADDED, rv(c), c)
        revs = [e.revision for e in hist] + [live.revision]
        assert revs == sorted(revs) and len(set(revs)) == 3
        await w.aclose()
    backend.run(body)


def test_watch_from_current_revision_sees_only_new_writes(backend):
    async def body(s, k):
        await s.create(k(PODS + "default/a"), pod("a"))
        w = s.watch(k(PODS), await s.current_revision())
        assert await nothing_more(w)
        w = s.watch(k(PODS), await s.current_revision())
        b = await s.create(k(PODS + "default/b"), pod("b"))
        (ev,) = await take(w, 1)
        assert ev.object == b
        await w.aclose()
    backend.run(body)


def test_delete_event_carries_last_value_at_delete_revision(backend):
    async def body(s, k):
        key = k(PODS + "default/a")
        start = await s.current_revision()
        w = s.watch(k(PODS), start)
        v1 = await s.create(key, pod("a", spec={"v": 1}))
        await s.delete(key)
        added, deleted = await take(w, 2)
        assert added.type == ADDED and deleted.type == DELETED
        assert deleted.revision == rv(v1) + 1
        assert deleted.object["spec"] == {"v": 1}
        assert rv(deleted.object) == deleted.revision
        assert deleted.prev_object == v1
        await w.aclose()
    backend.run(body)


def test_prefix_isolation_between_similar_namespaces(backend):
    async def body(s, k):
        start = await s.current_revision()
        w = s.watch(k(PODS + "default/"), start)
        await s.create(k(PODS + "default2/x"), pod("x", "default2"))
        await s.create(k(PODS + "defaul/y"), pod("y", "defaul"))
        mine = await s.create(k(PODS + "default/z"), pod("z"))
        (ev,) = await take(w, 1)
        assert ev.object == mine
        listed = await s.list(k(PODS + "default/"))
        assert [o["metadata"]["name"] for o in listed.items] == ["z"]
        everything = await s.list(k(PODS))
        assert [o["metadata"]["name"] for o in everything.items] == ["y", "z", "x"]  # key order
        await w.aclose()
    backend.run(body)


def test_compaction_makes_old_watches_and_lists_gone(backend):
    async def body(s, k):
        revs = []
        for i in range(6):
            revs.append(rv(await s.create(k(PODS + f"default/p{i}"), pod(f"p{i}"))))
        c = revs[3]
        await s.compact(c)
        with pytest.raises(Gone):
            await s.watch(k(PODS), c - 2).__anext__()
        with pytest.raises(Gone):
            await s.list(k(PODS), revision=c - 1)
        # etcd semantics: the state at the compacted revision stays readable
        w = s.watch(k(PODS), c - 1)
        assert [e.revision for e in await take(w, 3)] == revs[3:]
        await w.aclose()
        at_c = await s.list(k(PODS), revision=c)
        assert [o["metadata"]["name"] for o in at_c.items] == ["p0", "p1", "p2", "p3"]
        await s.compact(c - 1)                 # compacting the past again is harmless
    backend.run(body)


def test_paged_list_is_consistent_at_one_revision(backend):
    async def body(s, k):
        for i in range(10):
            await s.create(k(PODS + f"default/p{i}"), pod(f"p{i}", spec={"v": 0}))
        first = await s.list(k(PODS), limit=3)
        assert first.more and len(first.items) == 3 and first.next_key == k(PODS + "default/p2")
        # the world moves on between pages
        await s.delete(k(PODS + "default/p4"))
        await s.update(k(PODS + "default/p5"), pod("p5", spec={"v": 1}))
        await s.create(k(PODS + "default/p45"), pod("p45"))
        await s.delete(k(PODS + "default/p9"))
        items, page = list(first.items), first
        while page.more:
            page = await s.list(k(PODS), limit=3, start_after=page.next_key, revision=first.revision)
            assert page.revision == first.revision
            items.extend(page.items)
        assert [o["metadata"]["name"] for o in items] == [f"p{i}" for i in range(10)]
        assert all(o["spec"] == {"v": 0} for o in items)
        now = await s.list(k(PODS))
        assert [o["metadata"]["name"] for o in now.items] == \
            ["p0", "p1", "p2", "p3", "p45", "p5", "p6", "p7", "p8"]
        assert now.revision == await s.current_revision() and not now.more
    backend.run(body)


def test_list_at_every_past_revision_matches_a_model(backend):
    """Random writes; every (revision, page size) list equals the model's snapshot."""
    async def body(s, k):
        rnd = random.Random(7)
        model: dict[str, dict] = {}
        snapshots = {}
        for _ in range(40):
            name = f"p{rnd.randrange(8)}"
            key = k(PODS + f"default/{name}")
            if key in model and rnd.random() < 0.4:
                await s.delete(key)
                del model[key]
            elif key in model:
                model[key] = await s.update(key, pod(name, spec={"r": rnd.random()}))
            else:
                model[key] = await s.create(key, pod(name))
            snapshots[await s.current_revision()] = sorted(model.items())
        for revision, snap in snapshots.items():
            for limit in (1, 3, None):
                got, page = [], None
                while page is None or page.more:
                    page = await s.list(k(PODS), limit=limit, revision=revision,
                                        start_after=page.next_key if page else None)
                    got.extend(page.items)
                assert got == [obj for _, obj in snap], (revision, limit)
    backend.run(body)


def test_hundred_concurrent_watchers_each_see_every_event_in_order(backend):
    async def body(s, k):
        start = await s.current_revision()
        watchers = [s.watch(k(PODS), start) for _ in range(120)]
        # start them all (subscribe) before writing, so half replay history and half go live
        firsts = [asyncio.ensure_future(w.__anext__()) for w in watchers[:60]]
        expected = []
        for i in range(25):
            expected.append(rv(await s.create(k(PODS + f"default/p{i}"), pod(f"p{i}"))))

        async def collect(i, w):
            got = [(await firsts[i]).revision] if i < 60 else []
            got += [e.revision for e in await take(w, 25 - len(got))]
            await w.aclose()
            return got
        results = await asyncio.gather(*(collect(i, w) for i, w in enumerate(watchers)))
        assert all(r == expected for r in results)
    backend.run(body)


def test_concurrent_conditional_updates_exactly_one_wins(backend):
    async def body(s, k):
        key = k(PODS + "default/a")
        base = await s.create(key, pod("a"))
        tries = [s.update(key, pod("a", spec={"who": i}), expected_revision=rv(base)) for i in range(20)]
        results = await asyncio.gather(*tries, return_exceptions=True)
        wins = [r for r in results if isinstance(r, dict)]
        assert len(wins) == 1
        assert all(isinstance(r, Conflict) for r in results if not isinstance(r, dict))
        assert await s.get(key) == wins[0]
    backend.run(body)


def test_concurrent_creates_get_distinct_revisions(backend):
    async def body(s, k):
        start = await s.current_revision()
        made = await asyncio.gather(*(s.create(k(PODS + f"default/p{i}"), pod(f"p{i}"))
                                      for i in range(50)))
        revs = sorted(rv(m) for m in made)
        assert revs == list(range(start + 1, start + 51))
    backend.run(body)


def test_history_is_bounded_and_compacted_automatically(backend):
    async def body(s, k):
        start = await s.current_revision()
        for i in range(40):
            await s.create(k(PODS + f"default/p{i}"), pod(f"p{i}"))
        head = await s.current_revision()
        with pytest.raises(Gone):
            await s.watch(k(PODS), start).__anext__()
        with pytest.raises(Gone):
            await s.list(k(PODS), revision=start + 1)
        # the newest `history` revisions are always there
        w = s.watch(k(PODS), head - 8)
        assert [e.revision for e in await take(w, 8)] == list(range(head - 7, head + 1))
        await w.aclose()
        assert len((await s.list(k(PODS), revision=head - 7)).items) == 33
    backend.run(body, history=8)
