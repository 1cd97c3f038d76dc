"""Namespace controller: a Terminating namespace is emptied until the API server removes it.

The API server deletes a namespace's content when the namespace is deleted (inline, like
upstream's namespace deleter) and removes the namespace once nothing is left. Things can still
appear afterwards (a controller's create racing the delete) or take time (pods stopping); this
loop keeps deleting whatever is left every second until the namespace is gone.
"""

from __future__ import annotations

from netemu.api import errors
from netemu.api.kinds import RESOURCES
from netemu.controllers.kube import Obj, is_deleting, name_of
from netemu.controllers.runtime import Controller, rt

RETRY = 1.0


def deletable_kinds() -> list:
    return [r for r in RESOURCES if r.namespaced and "delete" in r.verbs and "list" in r.verbs]


class NamespaceController(Controller):
    name = "namespace"
    kinds = ("Namespace",)

    def setup(self) -> None:
        self.cache("Namespace").add_handler(self._changed, lambda o, n: self._changed(n))

    def _changed(self, ns: Obj) -> None:
        if is_deleting(ns):
            self.enqueue_obj(ns)

    async def resync_all(self) -> None:
        for ns in self.cache("Namespace").list():
            self._changed(ns)

    async def sync(self, key: str) -> None:
        try:
            ns = await self.client.get(rt("Namespace"), key)
        except errors.NotFound:
            return
        if not is_deleting(ns):
            return
        left = 0
        for resource in deletable_kinds():
            try:
                items = (await self.client.list(resource, key)).items
            except errors.StatusError:
                continue
            for item in items:
                left += 1
                if is_deleting(item):
                    continue
                try:
                    await self.client.delete(resource, name_of(item), key, propagation_policy="Background")
                except (errors.NotFound, errors.Conflict):
                    pass
        # re-delete the namespace: the API server removes it when it finds it empty
        try:
            await self.client.delete(rt("Namespace"), key)
        except errors.NotFound:
            return
        self.queue.add_after(key, RETRY)
