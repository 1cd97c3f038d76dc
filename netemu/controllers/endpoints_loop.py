"""The loop behind EndpointSlices and Endpoints: Service and Pod changes in, slices out.

A pod change that can change its endpoint enqueues the Services whose selector matches its old
or new labels, after the batch period (upstream's --endpointslice-updates-batch-period: pod
changes within it join one sync); a slice changed or deleted by someone else enqueues its
Service after at least a second, so the controller puts it right (endpoint_triggers.py).
"""

from __future__ import annotations

import time

from netemu.api import errors
from netemu.controllers import endpointslice as eps
from netemu.controllers.endpoints import desired_endpoints_object
from netemu.controllers import endpoint_triggers as triggers
from netemu.controllers import hints
from netemu.controllers.kube import Obj, condition, labels_of, map_selector_matches, name_of, ns_of, rfc3339
from netemu.controllers.replicaset import random_suffix
from netemu.controllers.runtime import Controller, WriteOverlay, rt, split_key


class EndpointSliceController(Controller):
    name = "endpointslice"
    service_account = "endpointslice-controller"
    other_accounts = {"endpoints_client": "endpoint-controller"}   # Endpoints are upstream's other controller
    kinds = ("Service", "Pod", "Node", "EndpointSlice", "Endpoints")

    def setup(self) -> None:
        self.slices_written = WriteOverlay()
        self.tracker = triggers.SliceTracker()
        self.hinted: set[str] = set()  # Services whose slices carry topology hints
        self.endpoints_written = WriteOverlay()
        self.cache("Service").add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n), self.enqueue_obj)
        self.cache("Pod").add_handler(self._pod, lambda o, n: self._pod(n, o), self._pod)
        self.cache("EndpointSlice").add_handler(self._slice, lambda o, n: self._slice_changed(o, n),
                                                self._slice_deleted)
        self.cache("Node").add_handler(self._node, lambda o, n: self._node_changed(o, n), self._node)

    def _node(self, node: Obj) -> None:
        """Zones and CPU of nodes decide topology hints (and endpoint zones): recheck Services
        that use hints or zones; a heartbeat alone changes neither."""
        for svc in self.cache("Service").list():
            if hints.topology_mode_auto(svc) or (svc.get("spec") or {}).get("trafficDistribution"):
                self.enqueue_obj(svc)

    def _node_changed(self, old: Obj, new: Obj) -> None:
        def shape(n: Obj) -> tuple:
            return (labels_of(n).get(eps.ZONE_LABEL), ((n.get("status") or {}).get("allocatable") or {}).get("cpu"),
                    (condition(n, "Ready") or {}).get("status"))
        if shape(old) != shape(new):
            self._node(new)

    def _pod(self, pod: Obj, old: Obj | None = None) -> None:
        """Upstream's addPod/updatePod/deletePod: the Services to sync, after the batch period."""
        def services_for(labels: dict[str, str]) -> list[str]:
            return [f"{ns_of(svc)}/{name_of(svc)}" for svc in self.cache("Service").list(ns_of(pod))
                    if map_selector_matches((svc.get("spec") or {}).get("selector"), labels)]
        period = self.settings.endpointslice_updates_batch_period
        for key in triggers.services_to_update(old, pod, services_for):
            if period > 0:
                self.queue.add_after(key, period)
            else:
                self.queue.add(key)

    def _slice(self, slice_obj: Obj) -> None:
        if self._managed(slice_obj) and self.tracker.should_sync(slice_obj):
            self._slice_service(slice_obj)

    def _slice_changed(self, old: Obj, new: Obj) -> None:
        """Upstream's onEndpointSliceUpdate: a Service label moved (both Services), managed-by
        changed, or a version this controller did not write."""
        service = eps.SERVICE_NAME_LABEL
        if labels_of(old).get(service) != labels_of(new).get(service):
            self._slice_service(new)
            self._slice_service(old)
        elif labels_of(old).get(eps.MANAGED_BY_LABEL) != labels_of(new).get(eps.MANAGED_BY_LABEL) or (
                self._managed(new) and self.tracker.should_sync(new)):
            self._slice_service(new)

    def _slice_deleted(self, slice_obj: Obj) -> None:
        if self._managed(slice_obj) and not self.tracker.handle_deletion(slice_obj):
            self._slice_service(slice_obj)

    @staticmethod
    def _managed(slice_obj: Obj) -> bool:
        return labels_of(slice_obj).get(eps.MANAGED_BY_LABEL) == eps.MANAGED_BY

    def _slice_service(self, slice_obj: Obj) -> None:
        svc = labels_of(slice_obj).get(eps.SERVICE_NAME_LABEL)
        if svc:
            delay = max(triggers.SLICE_CHANGE_MIN_SYNC_DELAY, self.settings.endpointslice_updates_batch_period)
            self.queue.add_after(f"{ns_of(slice_obj)}/{svc}", delay)

    async def resync_all(self) -> None:
        for svc in self.cache("Service").list():
            self.enqueue_obj(svc)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.cache("Service").get(name, ns)
        slices = self.slices_written.merge(self.cache("EndpointSlice").list(ns), ns or "")
        if svc is None or not eps.service_is_managed(svc):
            await self._remove(ns, name, slices, endpoints_too=svc is None)
            return
        pods = self.cache("Pod").list(ns)
        nodes = {name_of(n): n for n in self.cache("Node").list()}
        trigger = rfc3339(time.time())
        changes = eps.reconcile(svc, pods, nodes, slices, lambda: f"{name}-{random_suffix()}", trigger,
                                max_per_slice=self.settings.max_endpoints_per_slice,
                                had_hints=key in self.hinted)
        (self.hinted.add if changes.hinted else self.hinted.discard)(key)
        for etype, reason, message in changes.events:
            self.recorder.event(svc, etype, reason, message, component="endpoint-slice-controller")
        es = rt("EndpointSlice")
        for s in changes.create:
            self._wrote(await self.client.create(es, s, ns))
        for s in changes.update:
            self._wrote(await self.client.update(es, s))
        for s in changes.delete:
            await self._delete_slice(s)
        await self._sync_endpoints(svc, pods, trigger)

    def _wrote(self, written: Obj) -> None:
        self.slices_written.wrote(written)
        self.tracker.wrote(written)

    async def _delete_slice(self, s: Obj) -> None:
        self.tracker.deleted(s)
        try:
            await self.client.delete(rt("EndpointSlice"), name_of(s), ns_of(s))
        except errors.NotFound:
            pass
        self.slices_written.deleted(s)

    async def _remove(self, ns: str | None, name: str, slices: list[Obj], endpoints_too: bool) -> None:
        """A Service gone (or without selector): its managed slices go; the Endpoints object
        goes with a deleted Service (a selector-less Service's Endpoints belong to the user)."""
        for s in slices:
            if labels_of(s).get(eps.SERVICE_NAME_LABEL) == name and \
                    labels_of(s).get(eps.MANAGED_BY_LABEL) == eps.MANAGED_BY:
                await self._delete_slice(s)
        if endpoints_too and self.cache("Endpoints").get(name, ns) is not None:
            try:
                await self.endpoints_client.delete(rt("Endpoints"), name, ns)
            except errors.NotFound:
                pass

    async def _sync_endpoints(self, svc: Obj, pods: list[Obj], trigger: str) -> None:
        ns = ns_of(svc)
        current = next((e for e in self.endpoints_written.merge(self.cache("Endpoints").list(ns), ns)
                        if name_of(e) == name_of(svc)), None)
        new = desired_endpoints_object(svc, pods, current, trigger)
        if new is None:
            return
        if current is None:
            try:
                written = await self.endpoints_client.create(rt("Endpoints"), new, ns)
            except errors.AlreadyExists:
                self.queue.add_after(f"{ns}/{name_of(svc)}", 0.2)
                return
        else:
            written = await self.endpoints_client.update(rt("Endpoints"), new)
        self.endpoints_written.wrote(written)
