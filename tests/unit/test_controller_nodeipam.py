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
