"""Per-kind hooks of the registry: what one kind's writes do beyond the object model's strategy.

Some kinds keep state next to the store that must move in step with every write: a Service's
ClusterIPs and NodePorts are taken before it is written and given back when the write fails or
the Service goes. Upstream gives such a kind its own REST storage wrapping the generic store
(pkg/registry/core/service/storage: the allocators around genericregistry.Store); here the one
generic ``Registry`` calls a ``KindHooks`` object registered for the kind, so the registry
names no kind and a new kind with such state adds a class and one table entry.
"""

from __future__ import annotations

from typing import Callable

from netemu.api.kinds import ResourceType
from netemu.api.meta import Obj


class KindHooks:
    """The no-op hooks; a kind overrides what it needs. The registry calls:

    - ``start`` once, before serving (rebuild in-memory state from the store);
    - ``on_create`` when the object is prepared and known to be new (a duplicate is a 409
      before anything is taken): may change ``obj`` in place; returns the undo for a write
      that then fails (or None);
    - ``on_update`` before each conditional write: returns ``commit(ok)``, called after the
      write with whether it was stored (or None);
    - ``on_delete`` after the object is removed from the store;
    - ``on_terminating`` after a DELETE left the object in place, marked for deletion
      (finalizers hold it);
    - ``attach`` once, with the registry (for hooks that write through it).
    """

    def attach(self, registry) -> None:
        return None

    def on_terminating(self, obj: Obj) -> None:
        return None

    async def start(self) -> None:
        return None

    async def on_create(self, rt: ResourceType, obj: Obj) -> Callable[[], None] | None:
        return None

    async def on_update(self, rt: ResourceType, old: Obj, new: Obj) -> Callable[[bool], None] | None:
        return None

    def on_delete(self, obj: Obj) -> None:
        return None
