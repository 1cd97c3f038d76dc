"""ClusterIP and NodePort allocation around Service writes (the glue, not the allocator).

The allocator (``netemu.api.allocators.ServiceAllocations``) is pure bookkeeping; this keeps it
in step with the store: rebuilt from stored Services at start (allocations survive restarts),
allocations taken before a write and given back when the write fails, released on delete.
"""

from __future__ import annotations

from typing import Any, Callable

from netemu.api import kinds
from netemu.api.allocators import ServiceAllocations
from netemu.api.kinds import ResourceType
from netemu.store.base import Store

Obj = dict[str, Any]
SERVICES = kinds.by_resource("", "v1", "services")


def allocations_for(service_cidr: str, node_ports: tuple[int, int] = (30000, 32767)) -> ServiceAllocations:
    """Allocations over ``service_cidr`` (its kubernetes and DNS addresses reserved) and the
    NodePort range."""
    from netemu.apiserver.bootstrap import service_ips
    return ServiceAllocations(service_cidr, node_ports, reserved=service_ips(service_cidr))


class ServiceIPs:
    def __init__(self, store: Store, allocations: ServiceAllocations | None = None):
        self.store = store
        self.allocations = allocations if allocations is not None else ServiceAllocations()

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
