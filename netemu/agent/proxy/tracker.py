"""Change trackers between the informers and the proxier (upstream servicechangetracker.go and
endpointschangetracker.go + endpointslicecache.go).

Informer events arrive one object at a time and far more often than the kernel should be
reprogrammed. A tracker remembers, per Service, the state last applied and the state pending,
computed as ServicePortInfo / EndpointInfo through the shared object model. An update that does
not change the computed state (a status-only write, a resourceVersion bump, an annotation we do
not read) cancels out and requests no sync. ``apply()`` folds the pending changes into the maps
the builder reads and reports what changed: the Services to re-render in a partial sync, the UDP
ClusterIPs and UDP endpoints that went away (their conntrack entries must be deleted or UDP
clients keep talking to a dead pod), and the UDP Services that gained their first endpoint.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, NamedTuple

from netemu.agent.proxy.model import (
    SERVICE_NAME_LABEL,
    EndpointInfo,
    NodeInfo,
    ServiceName,
    ServicePortInfo,
    ServicePortName,
    SliceEndpoints,
    merge_slice_endpoints,
    service_ports,
    slice_endpoints,
)

log = logging.getLogger(__name__)

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"

ServicePortMap = dict[ServicePortName, ServicePortInfo]
EndpointsMap = dict[ServicePortName, tuple[EndpointInfo, ...]]


def _service_name(obj: Mapping[str, Any] | None) -> ServiceName | None:
    meta = (obj or {}).get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping) or not meta.get("name"):
        return None
    return ServiceName(meta.get("namespace") or "default", meta["name"])


@dataclass
class UpdateServiceMapResult:
    """What ServiceChangeTracker.apply() changed (upstream UpdateServiceMapResult)."""

    updated_services: set[ServiceName] = field(default_factory=set)
    deleted_udp_cluster_ips: set[str] = field(default_factory=set)
    # UDP NodePorts that went away (Service or port deleted, nodePort changed): their flows
    # DNATed to the old endpoints would otherwise live on while clients keep sending
    deleted_udp_node_ports: set[int] = field(default_factory=set)
    # the ports each updated Service has now (and had before): lets a mode find a changed
    # Service's entries without scanning the whole map
    service_ports: dict = field(default_factory=dict)


@dataclass
class UpdateEndpointsMapResult:
    """What EndpointsChangeTracker.apply() changed (upstream UpdateEndpointsMapResult)."""

    updated_services: set[ServiceName] = field(default_factory=set)
    # (service port, endpoint that went away or stopped serving) for UDP ports
    deleted_udp_endpoints: list[tuple[ServicePortName, EndpointInfo]] = field(default_factory=list)
    newly_active_udp_services: list[ServicePortName] = field(default_factory=list)
    last_change_trigger_times: dict[ServiceName, list[float]] = field(default_factory=dict)


class ServiceChangeTracker:
    """Pending Service changes as {previous, current} ServicePortMaps per Service."""

    def __init__(self, node: NodeInfo | None = None):
        self.node = node
        self._lock = threading.Lock()
        self._items: dict[ServiceName, tuple[ServicePortMap, ServicePortMap]] = {}
        self.problems: deque[str] = deque(maxlen=200)  # recent reasons, for logs and tests

    def _ports(self, service: Mapping[str, Any] | None) -> ServicePortMap:
        if service is None:
            return {}
        try:
            return service_ports(service, self.node, problems=self.problems)
        except Exception as exc:  # malformed beyond what the model expects: skip, keep running
            msg = f"Service {_service_name(service)} skipped: {exc!r}"
            log.warning("%s", msg)
            self.problems.append(msg)
            return {}

    def update(self, previous: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> bool:
        """Record add (None, svc), update (old, new) or delete (svc, None); True if a sync is due.

        As upstream, the first ``previous`` seen for a Service since the last apply() is kept,
        and a change that ends where it started is dropped.
        """
        name = _service_name(current) or _service_name(previous)
        if name is None:
            self.problems.append("Service event without metadata.name ignored")
            log.warning("Service event without metadata.name ignored")
            return self.pending_count() > 0
        with self._lock:
            if name in self._items:
                before = self._items[name][0]
            else:
                before = self._ports(previous)
            after = self._ports(current)
            if before == after:
                self._items.pop(name, None)
            else:
                self._items[name] = (before, after)
            return len(self._items) > 0

    def pending_count(self) -> int:
        with self._lock:
            return len(self._items)

    def apply(self, service_map: ServicePortMap) -> UpdateServiceMapResult:
        """Fold pending changes into ``service_map`` (in place) and report them; clears pending."""
        result = UpdateServiceMapResult()
        with self._lock:
            items, self._items = self._items, {}
        for name, (previous, current) in items.items():
            result.updated_services.add(name)
            result.service_ports[name] = set(previous) | set(current)
            service_map.update(current)
            for spn in previous.keys() - current.keys():
                info = service_map.pop(spn, None)
                if info is not None and info.protocol == "UDP":
                    result.deleted_udp_cluster_ips.add(info.cluster_ip)
                    if info.node_port:
                        result.deleted_udp_node_ports.add(info.node_port)
            # a port that survived with another ClusterIP or NodePort leaves the old one stale too
            for spn in previous.keys() & current.keys():
                old, new = previous[spn], current[spn]
                if old.protocol != "UDP":
                    continue
                if old.cluster_ip != new.cluster_ip:
                    result.deleted_udp_cluster_ips.add(old.cluster_ip)
                if old.node_port and old.node_port != new.node_port:
                    result.deleted_udp_node_ports.add(old.node_port)
        return result


def _slice_key(sl: Mapping[str, Any]) -> tuple[ServiceName, str] | None:
    meta = sl.get("metadata") if isinstance(sl, Mapping) else None
    if not isinstance(meta, Mapping) or not meta.get("name"):
        return None
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service:
        return None
    return ServiceName(meta.get("namespace") or "default", service), meta["name"]


def _trigger_time(sl: Mapping[str, Any]) -> float | None:
    raw = ((sl.get("metadata") or {}).get("annotations") or {}).get(TRIGGER_TIME_ANNOTATION)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    except ValueError:
        log.debug("unparsable %s %r", TRIGGER_TIME_ANNOTATION, raw)
        return None


class _ServiceSlices(NamedTuple):
    """One Service's slices as the tracker holds them: the objects by name, each one's parsed
    endpoints (parsed once, when that slice changes), and their merge."""

    slices: dict[str, Mapping[str, Any]]
    shares: dict[str, SliceEndpoints]
    endpoints: EndpointsMap | None   # None while pending: merged when applied
    memos: dict[str, dict]        # per slice: its endpoints' parses, reused by its next version


_NO_SLICES = _ServiceSlices({}, {}, {}, {})


class EndpointsChangeTracker:
    """Pending EndpointSlice changes per Service (upstream endpointSliceCache + tracker).

    Keeps the applied slices and the pending slices of each Service; a Service's change is
    pending while a slice's parsed endpoints differ from the applied ones (upstream's
    esInfoChanged), and the Service's endpoints are merged from its slices when a sync applies
    it; one whose merge did not change (an endpoint moved between slices) is not reported. An
    event parses only the slice it carries (upstream parses each slice once too): with 1000
    endpoints in 10 slices, re-parsing every slice of the Service per event was 2 ms of a node's
    CPU per pod change, and merging them per event another 0.1 ms.
    """

    def __init__(self, node: NodeInfo | str | None = None):
        self.node = node
        self._lock = threading.Lock()
        self._applied: dict[ServiceName, _ServiceSlices] = {}
        self._pending: dict[ServiceName, _ServiceSlices] = {}
        self._trigger_times: dict[ServiceName, list[float]] = {}
        self.problems: deque[str] = deque(maxlen=200)  # recent reasons, for logs and tests

    def _share(self, sl: Mapping[str, Any], reuse: dict | None, memo: dict) -> SliceEndpoints:
        try:
            return slice_endpoints(sl, self.node, problems=self.problems, reuse=reuse, memo=memo)
        except Exception as exc:  # malformed beyond what the model expects: skip the slice
            msg = f"EndpointSlice {(sl.get('metadata') or {}).get('name')} skipped: {exc!r}"
            log.warning("%s", msg)
            self.problems.append(msg)
            return {}

    def update(self, previous: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> bool:
        """Record a slice add/update (current set) or delete (current None); True if sync due."""
        obj = current if current is not None else previous
        key = _slice_key(obj) if obj is not None else None
        if key is None:
            msg = "EndpointSlice without metadata.name or kubernetes.io/service-name label ignored"
            log.warning("%s", msg)
            self.problems.append(msg)
            return self.pending_count() > 0
        service, slice_name = key
        with self._lock:
            applied = self._applied.get(service, _NO_SLICES)
            base = self._pending.get(service, applied)
            slices, shares, memos = dict(base.slices), dict(base.shares), dict(base.memos)
            if current is None:
                slices.pop(slice_name, None)
                shares.pop(slice_name, None)
                memos.pop(slice_name, None)
            else:
                memo: dict = {}
                share = self._share(current, base.memos.get(slice_name), memo)
                slices[slice_name], shares[slice_name], memos[slice_name] = current, share, memo
                when = _trigger_time(current)
                if when is not None:
                    self._trigger_times.setdefault(service, []).append(when)
            if shares == applied.shares:        # mostly the very same parsed objects: cheap
                self._pending.pop(service, None)
                self._applied[service] = _ServiceSlices(slices, shares, applied.endpoints, memos)  # newest objects
                self._trigger_times.pop(service, None)
            else:                               # merged once per sync, in apply(), not per event
                self._pending[service] = _ServiceSlices(slices, shares, None, memos)
            return len(self._pending) > 0

    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    def apply(self, endpoints_map: EndpointsMap) -> UpdateEndpointsMapResult:
        """Fold pending slices into ``endpoints_map`` (in place) and report; clears pending."""
        result = UpdateEndpointsMapResult()
        with self._lock:
            pending, self._pending = self._pending, {}
            triggers, self._trigger_times = self._trigger_times, {}
            changes = []
            for service, state in pending.items():
                old = self._applied.get(service, _NO_SLICES).endpoints
                state = state._replace(endpoints=merge_slice_endpoints(state.shares[n] for n in sorted(state.shares)))
                if state.endpoints != old:      # else an endpoint only moved between slices
                    changes.append((service, old, state.endpoints))
                if state.slices:
                    self._applied[service] = state
                else:
                    self._applied.pop(service, None)
        for service, old, new in changes:
            result.updated_services.add(service)
            for spn in old.keys() - new.keys():
                endpoints_map.pop(spn, None)
            endpoints_map.update(new)
            _detect_stale_udp(old, new, result)
            if service in triggers:
                result.last_change_trigger_times[service] = triggers[service]
        return result


def _detect_stale_udp(old: EndpointsMap, new: EndpointsMap, result: UpdateEndpointsMapResult) -> None:
    """Upstream detectStaleConntrackEntries: UDP endpoints gone or no longer serving, and UDP
    ports that went from no serving endpoint to some (a cached REJECT/blackhole must go)."""
    for spn, eps in old.items():
        if spn.protocol != "UDP":
            continue
        still = {(e.endpoint, e.serving) for e in new.get(spn, ())}
        for ep in eps:
            if ep.serving and (ep.endpoint, ep.serving) not in still:
                result.deleted_udp_endpoints.append((spn, ep))
    for spn, eps in new.items():
        if spn.protocol != "UDP":
            continue
        if any(e.serving for e in eps) and not any(e.serving for e in old.get(spn, ())):
            result.newly_active_udp_services.append(spn)
