"""Node IPAM: one podCIDR per node from the cluster CIDR (default 10.244.0.0/16 in /24s),
like kube-controller-manager's range allocator with --allocate-node-cidrs. A node that already
has a podCIDR keeps it (and it is marked used); a full range leaves the node without one and
says so with a CIDRNotAvailable Event, as upstream.

The PATCHes that give nodes their CIDRs go out concurrently, as upstream's range allocator's
``cidrUpdateWorkers = 30`` goroutines (pkg/controller/nodeipam/ipam/cidr_allocator.go, v1.32):
with one worker, a burst of N registering nodes waited N round trips in line (30 nodes: their
podCIDRs arrived over 4.3 s, each node waiting 2.5 s at the median, most of its time to
Ready; docs/benchmarks.md). The allocation itself stays serial: ``sync`` picks the CIDR before
its first ``await``, so two workers on one event loop never take the same one, and the work
queue never runs one node's key twice at once."""

from __future__ import annotations

import ipaddress

from netemu.api.errors import Invalid
from netemu.controllers.events import NORMAL
from netemu.controllers.kube import Obj
from netemu.controllers.runtime import Controller, rt


class CIDRAllocator:
    """Pure: which /mask subnets of the cluster CIDR are taken, and the next free one."""

    def __init__(self, cluster_cidr: str, mask: int):
        self.net = ipaddress.ip_network(cluster_cidr)
        if mask < self.net.prefixlen or mask > self.net.max_prefixlen:
            raise ValueError(f"node CIDR mask /{mask} does not fit in {cluster_cidr}")
        self.mask = mask
        self.used: set[str] = set()

    def occupy(self, cidr: str) -> bool:
        try:
            sub = ipaddress.ip_network(cidr)
        except ValueError:
            return False
        if not sub.subnet_of(self.net):  # type: ignore[arg-type]
            return False
        self.used.add(str(sub))
        return True

    def release(self, cidr: str) -> None:
        self.used.discard(cidr)

    def allocate(self) -> str | None:
        for sub in self.net.subnets(new_prefix=self.mask):
            if str(sub) not in self.used:
                self.used.add(str(sub))
                return str(sub)
        return None


class NodeIpamController(Controller):
    name = "nodeipam"
    service_account = "node-controller"
    kinds = ("Node",)
    workers = 30          # upstream's cidrUpdateWorkers

    def setup(self) -> None:
        self.allocator = CIDRAllocator(self.settings.cluster_cidr, self.settings.node_cidr_mask_size)
        self.cache("Node").add_handler(self._node, lambda o, n: self._node(n), self._deleted)

    def _node(self, node: Obj) -> None:
        cidr = (node.get("spec") or {}).get("podCIDR")
        if cidr:
            self.allocator.occupy(cidr)
        else:
            self.enqueue_obj(node)

    def _deleted(self, node: Obj) -> None:
        cidr = (node.get("spec") or {}).get("podCIDR")
        if cidr:
            self.allocator.release(cidr)

    async def sync(self, key: str) -> None:
        node = self.cache("Node").get(key)
        if node is None or (node.get("spec") or {}).get("podCIDR"):
            return
        for other in self.cache("Node").list():  # every known allocation first (startup order)
            if (other.get("spec") or {}).get("podCIDR"):
                self.allocator.occupy(other["spec"]["podCIDR"])
        cidr = self.allocator.allocate()
        if cidr is None:
            self.recorder.event(node, NORMAL, "CIDRNotAvailable",
                                f"Node {key} status is now: CIDRNotAvailable", component="cidrAllocator")
            return
        try:
            await self.client.patch(rt("Node"), key, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except Invalid:
            # podCIDR is immutable once set: an earlier sync of ours already gave this node one and
            # the cache has not seen it yet. Take the node's real CIDR instead of a second one.
            self.allocator.release(cidr)
            fresh = await self.client.get(rt("Node"), key)
            if not (fresh.get("spec") or {}).get("podCIDR"):
                raise
            self.allocator.occupy(fresh["spec"]["podCIDR"])
        except Exception:
            await self._settle_unknown(key, cidr)
            raise

    async def _settle_unknown(self, key: str, cidr: str) -> None:
        """A write that failed without an answer (a timeout on a loaded box) may still have been
        applied: releasing its CIDR then gave it to a second node (seen at 200 nodes: two nodes
        on 10.244.0.0/24, each routing the other's pods to itself). Ask the node what it got;
        release ours only when it holds none or another, and keep it reserved when the node
        cannot be read either (one /24 leaked beats two nodes on one)."""
        try:
            fresh = await self.client.get(rt("Node"), key)
        except Exception:  # noqa: BLE001 - unknown outcome: keep the CIDR taken
            return
        got = (fresh.get("spec") or {}).get("podCIDR")
        if got != cidr:
            self.allocator.release(cidr)
            if got:
                self.allocator.occupy(got)
