"""The loop behind EndpointSlices and Endpoints: Service and Pod changes in, slices out.

A pod change enqueues the Services whose selector matches its old or new labels; a slice
changed or deleted by someone else enqueues its Service, so the controller puts it right.
"""

from __future__ import annotations

import time

from netemu.api import errors
from netemu.controllers import endpointslice as eps
from netemu.controllers.endpoints import desired_endpoints_object
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
        self.hinted: set[str] = set()  # Services whose slices carry topology hints
        self.endpoints_written = WriteOverlay()
        self.cache("Service").add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n), self.enqueue_obj)
        self.cache("Pod").add_handler(self._pod, lambda o, n: self._pod(n, o), self._pod)
        self.cache("EndpointSlice").add_handler(None, lambda o, n: self._slice(n), self._slice)
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
        for svc in self.cache("Service").list(ns_of(pod)):
            selector = (svc.get("spec") or {}).get("selector")
            if map_selector_matches(selector, labels_of(pod)) or (
                    old is not None and map_selector_matches(selector, labels_of(old))):
                self.enqueue_obj(svc)

    def _slice(self, slice_obj: Obj) -> None:
        svc = labels_of(slice_obj).get(eps.SERVICE_NAME_LABEL)
        if svc and labels_of(slice_obj).get(eps.MANAGED_BY_LABEL) == eps.MANAGED_BY:
            self.queue.add(f"{ns_of(slice_obj)}/{svc}")

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
            self.slices_written.wrote(await self.client.create(es, s, ns))
        for s in changes.update:
            self.slices_written.wrote(await self.client.update(es, s))
        for s in changes.delete:
            await self._delete_slice(s)
        await self._sync_endpoints(svc, pods, trigger)

    async def _delete_slice(self, s: Obj) -> None:
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
