"""Which pod and EndpointSlice changes make the EndpointSlice controller sync a Service.

A pod goes through several status writes on its way to Running (scheduled, sandbox, containers
started, Ready); only some of them change its endpoint. Upstream syncs a Service only for those
(k8s.io/endpointslice util/controller_utils.go, GetPodUpdateProjectionKey / podEndpointsChanged /
determineNeededServiceUpdates, ported from kubernetes/kubernetes 008b365), and each sync reads
every pod of the Service: with 1000 pods behind one Service, syncing on every status write is
most of the controller's CPU in a scale-up. The controller's own slice writes come back as watch
events too; upstream's endpointSliceTracker tells them apart so they do not trigger a sync.
"""

from __future__ import annotations

from typing import Callable, Iterable

from netemu.controllers.kube import Obj, key_of, labels_of, meta, pod_is_ready, pod_is_terminal, rv_of

# upstream endpointSliceChangeMinSyncDelay: a slice changed by someone else is put right after
# at least this long (or the batch period, if longer), so a burst of foreign writes syncs once
SLICE_CHANGE_MIN_SYNC_DELAY = 1.0


def _ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or []]
    return ips or ([status["podIP"]] if status.get("podIP") else [])


def _host_and_domain(pod: Obj) -> tuple:
    spec = pod.get("spec") or {}
    return spec.get("hostname"), spec.get("subdomain")


def pod_endpoints_changed(old: Obj, new: Obj) -> tuple[bool, bool]:
    """(the pod's endpoint may have changed, the Services it matches may have changed), as
    upstream's podEndpointsChanged. One addition: a pod turning Succeeded/Failed counts as
    changed (it leaves the slices; upstream relies on its Ready condition turning false too,
    which a pod that was never Ready does not do)."""
    labels_changed = labels_of(old) != labels_of(new) or _host_and_domain(old) != _host_and_domain(new)
    changed = (meta(old).get("deletionTimestamp") != meta(new).get("deletionTimestamp")
               or pod_is_ready(old) != pod_is_ready(new)
               or _ips(old) != _ips(new)
               or pod_is_terminal(old) != pod_is_terminal(new))
    return changed, labels_changed


def services_to_update(old: Obj | None, new: Obj,
                       services_for: Callable[[dict[str, str]], Iterable[str]]) -> set[str]:
    """The Service keys to sync for a pod added (``old`` None) or updated, as upstream's
    GetPodUpdateProjectionKey + GetServicesToUpdate. ``services_for(labels)`` lists the keys of
    the pod's namespace's Services whose selector matches those labels."""
    if old is None:
        return set(services_for(labels_of(new)))
    if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
        return set()                                  # an informer resync, not a change
    changed, labels_changed = pod_endpoints_changed(old, new)
    if not changed and not labels_changed:
        return set()
    now = set(services_for(labels_of(new)))
    if not labels_changed:
        return now
    before = set(services_for(labels_of(old)))
    return now | before if changed else now ^ before


class SliceTracker:
    """The versions of the slices this controller wrote and the ones it deleted (upstream's
    endpointSliceTracker, by resourceVersion where upstream uses generation: netemu bumps no
    generation on slices). An event for a version it wrote, or an older one, needs no sync;
    a newer version means someone else changed the slice."""

    def __init__(self) -> None:
        self._rv: dict[str, int] = {}
        self._deleting: set[str] = set()

    def wrote(self, obj: Obj) -> None:
        self._rv[key_of(obj)] = rv_of(obj)
        self._deleting.discard(key_of(obj))

    def deleted(self, obj: Obj) -> None:
        self._rv.pop(key_of(obj), None)
        self._deleting.add(key_of(obj))

    def should_sync(self, obj: Obj) -> bool:
        mine = self._rv.get(key_of(obj))
        return mine is None or rv_of(obj) > mine

    def handle_deletion(self, obj: Obj) -> bool:
        """True when the delete was this controller's (expected); either way it is forgotten."""
        key = key_of(obj)
        self._rv.pop(key, None)
        if key in self._deleting:
            self._deleting.discard(key)
            return True
        return False
