"""The controllers' shared machinery: work queue, expectations, write overlay."""

import asyncio

from netemu.controllers.runtime import Expectations, WorkQueue, WriteOverlay, split_key


def test_queue_dedups_and_never_runs_a_key_twice_at_once():
    async def main():
        q = WorkQueue()
        q.add("a"), q.add("a"), q.add("b")
        assert await q.get() == "a"
        q.add("a")                     # while "a" is being processed: remembered, not queued
        assert await q.get() == "b"
        q.done("b", True)
        assert q._queue.empty()
        q.done("a", True)              # finished: the dirty "a" comes back once
        assert await q.get() == "a"
        q.done("a", True)
        assert q._queue.empty()
    asyncio.run(main())


def test_queue_retries_failures_with_backoff_and_delayed_adds():
    async def main():
        q = WorkQueue(base_delay=0.01)
        q.add("k")
        key = await q.get()
        q.done(key, False)             # failed: back after the backoff
        assert await asyncio.wait_for(q.get(), 1) == "k"
        q.done("k", True)
        q.add_after("later", 0.05)
        q.add_after("later", 10)       # the earliest request wins
        assert await asyncio.wait_for(q.get(), 1) == "later"
        q.close()
    asyncio.run(main())


def test_expectations_hold_until_observed_or_expired():
    e = Expectations(ttl=30)
    e.expect_create("rs", "p1")
    e.expect_delete("rs", "p0")
    assert not e.satisfied("rs")
    e.observed_create("rs", "p1")
    assert not e.satisfied("rs")
    e.observed_delete("rs", "p0")
    assert e.satisfied("rs")
    stale = Expectations(ttl=-1)
    stale.expect_create("rs", "p9")
    assert stale.satisfied("rs")


def _obj(name, rv):
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": str(rv)}}


def test_overlay_hides_a_stale_cache_until_it_catches_up():
    o = WriteOverlay()
    o.wrote(_obj("a", 5))
    o.deleted(_obj("b", 3))
    merged = {m["metadata"]["name"]: m for m in o.merge([_obj("a", 4), _obj("b", 3)], "ns")}
    assert merged["a"]["metadata"]["resourceVersion"] == "5" and "b" not in merged
    merged = {m["metadata"]["name"]: m for m in o.merge([_obj("a", 7)], "ns")}
    assert merged["a"]["metadata"]["resourceVersion"] == "7"
    assert o._written == {}            # both caught up: nothing overlaid any more
    assert split_key("ns/n") == ("ns", "n") and split_key("node") == (None, "node")
