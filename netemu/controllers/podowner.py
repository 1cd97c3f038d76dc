"""The part every pod-owning controller shares (ReplicaSet, DaemonSet, Job): watch the owner kind and its
pods, hold back while its own creates and deletes are not yet in the cache (expectations), and
create or delete pods with upstream's SuccessfulCreate/FailedCreate/SuccessfulDelete Events."""

from __future__ import annotations

import asyncio

from netemu.api import errors
from netemu.controllers.events import NORMAL, WARNING
from netemu.controllers.kube import Obj, controller_ref, is_deleting, key_of, name_of, ns_of, uid_of
from netemu.controllers.runtime import Controller, Expectations, rt


def raise_first(results: list) -> None:
    """Raise the first exception among gathered results, if any."""
    for r in results:
        if isinstance(r, BaseException):
            raise r


class PodOwner(Controller):
    owner_kind = ""             # "ReplicaSet", "DaemonSet", "Job"
    component = ""              # the Event source

    def setup(self) -> None:
        self.expectations = Expectations()
        self.cache(self.owner_kind).add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n),
                                                lambda obj: self.expectations.forget(key_of(obj)))
        self.cache("Pod").add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    def expectation_name(self, pod: Obj) -> str:
        """What a create is expected under (the pod's name; the DaemonSet keys them by node)."""
        return name_of(pod)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_ref(pod)
        return f"{ns_of(pod)}/{ref['name']}" if ref and ref.get("kind") == self.owner_kind else None

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.observed_create(key, self.expectation_name(pod))
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = self._owner_key(new)
        if key and is_deleting(new) and not is_deleting(old):    # graceful delete: observed when it starts
            self.expectations.observed_delete(key, name_of(new))
        for pod in (old, new):           # a changed controllerRef: the old owner counts again too
            owner = self._owner_key(pod)
            if owner:
                self.queue.add(owner)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.observed_delete(key, name_of(pod))
            self.queue.add(key)

    async def resync_all(self) -> None:
        for obj in self.cache(self.owner_kind).list():
            self.enqueue_obj(obj)

    def owned(self, owner: Obj) -> list[Obj]:
        return [p for p in self.cache("Pod").list(ns_of(owner)) if (controller_ref(p) or {}).get("uid") == uid_of(owner)]

    async def write_pods(self, key: str, owner: Obj, creates: list[tuple[str, Obj]], deletes: list[Obj]) -> None:
        """Create ``(expected name, pod)`` pairs and delete pods, all at once; the first error is raised."""
        results = await asyncio.gather(*(self._create(key, owner, name, pod) for name, pod in creates),
                                       *(self._delete(key, owner, pod) for pod in deletes), return_exceptions=True)
        raise_first(results)

    async def _create(self, key: str, owner: Obj, expected: str, pod: Obj) -> None:
        self.expectations.expect_create(key, expected)
        try:
            made = await self.client.create(rt("Pod"), pod, ns_of(owner))
        except errors.StatusError as exc:
            self.expectations.observed_create(key, expected)
            self.recorder.event(owner, WARNING, "FailedCreate", f"Error creating: {exc}", component=self.component)
            raise
        self.recorder.event(owner, NORMAL, "SuccessfulCreate", f"Created pod: {name_of(made)}",
                            component=self.component)

    async def _delete(self, key: str, owner: Obj, pod: Obj) -> None:
        self.expectations.expect_delete(key, name_of(pod))
        try:
            await self.client.delete(rt("Pod"), name_of(pod), ns_of(pod))
        except errors.NotFound:
            self.expectations.observed_delete(key, name_of(pod))
            return
        self.recorder.event(owner, NORMAL, "SuccessfulDelete", f"Deleted pod: {name_of(pod)}",
                            component=self.component)
