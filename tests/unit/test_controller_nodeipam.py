"""Node IPAM's sync when its cache lags behind its own earlier write."""

import asyncio
from types import SimpleNamespace

from netemu.api.errors import Invalid
from netemu.controllers.nodeipam import NodeIpamController


class _Cache:
    def __init__(self, nodes):
        self.nodes = nodes

    def get(self, key):
        return self.nodes.get(key)

    def list(self):
        return list(self.nodes.values())


class _Client:
    """The API: the node already got 10.244.0.0/24 from an earlier sync; podCIDR is immutable."""

    def __init__(self, stored):
        self.stored = stored
        self.patches = []

    async def patch(self, rt, name, body):
        self.patches.append(body)
        raise Invalid('Node "n1" is invalid: spec.podCIDR: Forbidden: may not change podCIDR')

    async def get(self, rt, name):
        return self.stored


def _controller(cache_node, stored_node):
    settings = SimpleNamespace(cluster_cidr="10.244.0.0/16", node_cidr_mask_size=24)
    ctl = NodeIpamController(_Client(stored_node), {"Node": _Cache({"n1": cache_node})}, settings, None)
    from netemu.controllers.nodeipam import CIDRAllocator
    ctl.allocator = CIDRAllocator(settings.cluster_cidr, settings.node_cidr_mask_size)
    return ctl


def test_a_stale_cache_takes_the_nodes_real_cidr_instead_of_failing():
    stale = {"metadata": {"name": "n1"}, "spec": {}}
    stored = {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.7.0/24"}}
    ctl = _controller(stale, stored)
    asyncio.run(ctl.sync("n1"))
    assert ctl.allocator.used == {"10.244.7.0/24"}       # the tried CIDR went back, the real one is held


def test_invalid_for_another_reason_still_raises():
    stale = {"metadata": {"name": "n1"}, "spec": {}}
    ctl = _controller(stale, {"metadata": {"name": "n1"}, "spec": {}})
    try:
        asyncio.run(ctl.sync("n1"))
    except Invalid:
        pass
    else:
        raise AssertionError("expected Invalid")
    assert ctl.allocator.used == set()


class _Timeout(_Client):
    """The PATCH's answer never comes (client timeout), whether or not the server applied it."""

    def __init__(self, stored, applied: bool, readable: bool = True):
        super().__init__(stored)
        self.applied, self.readable = applied, readable

    async def patch(self, rt, name, body):
        self.patches.append(body)
        if self.applied:
            self.stored = {"metadata": {"name": name}, "spec": dict(body["spec"])}
        raise asyncio.TimeoutError()

    async def get(self, rt, name):
        if not self.readable:
            raise ConnectionError("api unreachable")
        return self.stored


def _timing_out(applied: bool, readable: bool = True):
    ctl = _controller({"metadata": {"name": "n1"}, "spec": {}}, None)
    ctl.client = _Timeout({"metadata": {"name": "n1"}, "spec": {}}, applied, readable)
    try:
        asyncio.run(ctl.sync("n1"))
    except asyncio.TimeoutError:
        pass
    else:
        raise AssertionError("expected the timeout to be raised (the sync is retried)")
    return ctl


def test_a_timed_out_write_that_was_applied_keeps_its_cidr():
    """Else the next node gets the same CIDR (two nodes on 10.244.0.0/24 at 200 nodes)."""
    ctl = _timing_out(applied=True)
    assert ctl.allocator.used == {"10.244.0.0/24"}
    assert ctl.allocator.allocate() == "10.244.1.0/24"


def test_a_timed_out_write_that_was_not_applied_gives_its_cidr_back():
    assert _timing_out(applied=False).allocator.used == set()


def test_a_timed_out_write_of_unknown_outcome_keeps_its_cidr_reserved():
    assert _timing_out(applied=False, readable=False).allocator.used == {"10.244.0.0/24"}


class _SlowApi:
    """Every PATCH waits until ``release`` is set: counts how many are in flight at once."""

    def __init__(self):
        self.in_flight = self.most = 0
        self.release = asyncio.Event()
        self.given: dict[str, str] = {}

    async def patch(self, rt, name, body):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await self.release.wait()
        self.in_flight -= 1
        self.given[name] = body["spec"]["podCIDR"]


def test_a_burst_of_registering_nodes_gets_its_cidrs_concurrently_and_distinct():
    """Upstream's range allocator writes with cidrUpdateWorkers = 30 goroutines: a burst of
    40 new nodes has 30 PATCHes in flight at once (not 1), and no CIDR is given twice."""
    nodes = {f"n{i}": {"metadata": {"name": f"n{i}"}, "spec": {}} for i in range(40)}
    api = _SlowApi()
    settings = SimpleNamespace(cluster_cidr="10.244.0.0/16", node_cidr_mask_size=24)
    ctl = NodeIpamController(api, {"Node": _Cache(nodes)}, settings, None)
    ctl.setup = lambda: None
    from netemu.controllers.nodeipam import CIDRAllocator
    ctl.allocator = CIDRAllocator(settings.cluster_cidr, settings.node_cidr_mask_size)

    async def burst():
        workers = [asyncio.ensure_future(ctl._worker()) for _ in range(ctl.workers)]
        for name in nodes:
            ctl.queue.add(name)
        for _ in range(100):
            await asyncio.sleep(0)
        most_before_release = api.most
        api.release.set()
        for _ in range(200):
            if len(api.given) == len(nodes):
                break
            await asyncio.sleep(0)
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return most_before_release

    assert asyncio.run(burst()) == 30
    assert len(api.given) == 40 and len(set(api.given.values())) == 40
