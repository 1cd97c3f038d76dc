"""ClusterIP and NodePort allocation around Service writes (the glue, not the allocator).

The allocator (``netemu.api.allocators.ServiceAllocations``) is pure bookkeeping; ``ServiceIPs``,
the registry's hooks for the Service kind, keeps it in step with the store: rebuilt from stored
Services at start (allocations survive restarts), allocations taken before a write and given back
when the write fails, released on delete.
"""

from __future__ import annotations

import ipaddress
from typing import Callable

from netemu.api import kinds
from netemu.api.allocators import ServiceAllocations
from netemu.api.kinds import ResourceType
from netemu.api.meta import Obj
from netemu.apiserver.hooks import KindHooks
from netemu.store.base import Store

SERVICES = kinds.by_resource("", "v1", "services")


def service_ips(service_cidr: str) -> tuple[str, str]:
    """(kubernetes Service IP, DNS IP): the first and the tenth address of the range, as
    upstream and kubeadm choose them (10.96.0.1 and 10.96.0.10 for the default range)."""
    net = ipaddress.ip_network(service_cidr)
    return str(net.network_address + 1), str(net.network_address + 10)


def allocations_for(service_cidr: str, node_ports: tuple[int, int] = (30000, 32767)) -> ServiceAllocations:
    """Allocations over ``service_cidr`` (its kubernetes and DNS addresses reserved) and the
    NodePort range."""
    return ServiceAllocations(service_cidr, node_ports, reserved=service_ips(service_cidr))


class ServiceIPs(KindHooks):
    """The Service kind's hooks: its ClusterIPs and NodePorts."""

    def __init__(self, store: Store, allocations: ServiceAllocations | None = None):
        self.store = store
        self.allocations = allocations if allocations is not None else ServiceAllocations()

    async def start(self) -> None:
        await self.rebuild()

    async def rebuild(self) -> None:
        listed = await self.store.list(SERVICES.list_prefix())
        self.allocations.rebuild(listed.items)

    async def on_create(self, rt: ResourceType, svc: Obj) -> Callable[[], None]:
        """Allocate (in place) what ``svc`` needs; returns the undo for a failed write."""
        return self.allocations.allocate(svc)

    async def on_update(self, rt: ResourceType, old: Obj, new: Obj) -> Callable[[bool], None]:
        """Allocate what the update adds; the returned commit(ok) releases what it dropped
        (ok) or what it took (not ok)."""
        return self.allocations.update(old, new)

    def on_delete(self, svc: Obj) -> None:
        self.allocations.release(svc)
