"""The scheduler loop against in-memory informer caches and a recording client (no server)."""

import asyncio

from netemu.controllers.options import Settings
from netemu.controllers.runtime import Informers
from netemu.controllers.scheduler.loop import SCORES_ANNOTATION, Scheduler
from tests.unit.test_scheduler import node, pod


class RecordingClient:
    def __init__(self):
        self.bindings, self.status_patches = [], []

    async def request(self, method, path, *, body=None, **kw):
        self.bindings.append((body["metadata"]["name"], body["target"]["name"], body["metadata"]["annotations"]))
        return {}

    async def patch(self, rt, name, patch, namespace=None, **kw):
        self.status_patches.append((name, patch))
        return {}


class Events:
    def __init__(self):
        self.seen = []

    def event(self, obj, etype, reason, message, component=None):
        self.seen.append((obj["metadata"]["name"], reason, message))


def _with_uid(p):
    p["metadata"]["uid"] = "uid-" + p["metadata"]["name"]
    p["metadata"]["resourceVersion"] = "1"
    return p


def test_assumed_pods_count_and_unschedulable_pods_retry_on_node_add():
    async def main():
        client, events = RecordingClient(), Events()
        informers = Informers(client)
        sched = Scheduler(client, informers, Settings(), events)
        sched.setup()
        await informers["Node"].apply_event("ADDED", node("n1"))
        pods = [_with_uid(pod(f"p{i}")) for i in range(3)]
        for p in pods:
            await informers["Pod"].apply_event("ADDED", p)
        for p in pods:  # the bindings have not come back through the watch yet
            await sched.sync(f"default/{p['metadata']['name']}")
        await asyncio.gather(*list(sched._background))
        assert [(b[0], b[1]) for b in client.bindings] == [("p0", "n1"), ("p1", "n1")]
        assert SCORES_ANNOTATION in client.bindings[0][2]
        assert ("p0", "Scheduled", "Successfully assigned default/p0 to n1") in events.seen
        assert sched.unschedulable == {"default/p2"}
        (name, patch), = client.status_patches
        cond = patch["status"]["conditions"][0]
        assert name == "p2" and cond["reason"] == "Unschedulable" and "1 Insufficient cpu" in cond["message"]
        assert any(r == "FailedScheduling" for _, r, _ in events.seen)
        while not sched.queue._queue.empty():  # the adds queued the pods; they were synced above
            sched.queue.done(await sched.queue.get(), True)
        # a new node: the unschedulable pod goes back to the queue and lands there
        await informers["Node"].apply_event("ADDED", node("n2"))
        assert sched.unschedulable == set()
        assert await asyncio.wait_for(sched.queue.get(), 1) == "default/p2"
        assert sched.queue._queue.empty()
        await sched.sync("default/p2")
        await asyncio.gather(*list(sched._background))
        assert client.bindings[-1][:2] == ("p2", "n2")
    asyncio.run(main())


def test_failed_binding_forgets_the_assumption():
    class Refusing(RecordingClient):
        async def request(self, method, path, *, body=None, **kw):
            from netemu.api import errors
            raise errors.Conflict("pod is being deleted")

    async def main():
        client, events = Refusing(), Events()
        informers = Informers(client)
        sched = Scheduler(client, informers, Settings(), events)
        sched.setup()
        await informers["Node"].apply_event("ADDED", node("n1"))
        await informers["Pod"].apply_event("ADDED", _with_uid(pod("p0")))
        await sched.sync("default/p0")
        assert "default/p0" in sched.assumed
        await asyncio.gather(*list(sched._background))
        assert sched.assumed == {} and sched.snapshot().by_name["n1"].pods == []
        assert not any(r == "Scheduled" for _, r, _ in events.seen)
    asyncio.run(main())
