"""EndpointSlices from a Service's selector and its pods (upstream endpointslice reconciler).

Pure core: ``desired_endpoints`` turns pods into endpoints grouped by their resolved port set
(a named targetPort resolves per pod), and ``reconcile`` maps them onto the existing slices with
little churn (an endpoint stays in the slice it is in; new ones fill slices with room; at most
100 per slice; an empty Service keeps one placeholder slice), returning what to create, update
and delete. The loop (endpoints_loop.py) applies it, and the legacy Endpoints object beside it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

from netemu.controllers import hints
from netemu.controllers.kube import (Obj, is_deleting, labels_of, map_selector_matches, meta, name_of, ns_of,
                                     owner_ref, pod_is_ready, pod_is_terminal, uid_of)

MAX_ENDPOINTS = 100
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
ZONE_LABEL = "topology.kubernetes.io/zone"
HEADLESS_LABEL = "service.kubernetes.io/headless"


def selected_pods(service: Obj, pods: list[Obj]) -> list[Obj]:
    selector = (service.get("spec") or {}).get("selector")
    return [p for p in pods if ns_of(p) == ns_of(service) and map_selector_matches(selector, labels_of(p))]


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """podutil.FindPort: a numeric targetPort as is, a named one looked up in the pod's
    containers (same protocol); None when the pod has no such port."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    proto = svc_port.get("protocol") or "TCP"
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                return int(p["containerPort"])
    return None


def endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    out = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        port = find_port(pod, sp)
        if port is None:
            continue
        ep = {"name": sp.get("name", ""), "port": port, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            ep["appProtocol"] = sp["appProtocol"]
        out.append(ep)
    return out


def pod_ip(pod: Obj) -> str | None:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    return status.get("podIP") or (ips[0] if ips else None)


def in_endpoints(pod: Obj) -> bool:
    """upstream ShouldPodBeInEndpoints (terminating pods included, as slices report them)."""
    return pod_ip(pod) is not None and not pod_is_terminal(pod)


def endpoint_for(service: Obj, pod: Obj, nodes: dict[str, Obj]) -> Obj:
    """Upstream ``podToEndpoint`` (k8s.io/endpointslice utils.go): serving is the pod's own
    readiness; ready also requires not terminating, unless publishNotReadyAddresses says
    "ready no matter what" -- which never changes serving."""
    terminating = is_deleting(pod)
    serving = pod_is_ready(pod)
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    ep: Obj = {"addresses": [pod_ip(pod)],
               "conditions": {"ready": publish or (serving and not terminating), "serving": serving,
                              "terminating": terminating},
               "targetRef": {"kind": "Pod", "namespace": ns_of(pod), "name": name_of(pod), "uid": uid_of(pod)}}
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        ep["nodeName"] = spec["nodeName"]
        zone = labels_of(nodes.get(spec["nodeName"]) or {}).get(ZONE_LABEL)
        if zone:
            ep["zone"] = zone
    if spec.get("hostname") and spec.get("subdomain") == name_of(service):
        ep["hostname"] = spec["hostname"]
    return ep


def ports_key(ports: list[Obj]) -> str:
    return hashlib.sha256(json.dumps(sorted(ports, key=lambda p: (p["name"], p["protocol"], p["port"])),
                                     sort_keys=True).encode()).hexdigest()[:16]


def desired_endpoints(service: Obj, pods: list[Obj], nodes: dict[str, Obj]) -> dict[str, tuple[list[Obj], list[Obj]]]:
    """Port-set key -> (ports, endpoints sorted by address)."""
    groups: dict[str, tuple[list[Obj], list[Obj]]] = {}
    for pod in selected_pods(service, pods):
        if not in_endpoints(pod) or ":" in (pod_ip(pod) or ""):  # IPv4 slices only
            continue
        ports = endpoint_ports(service, pod)
        groups.setdefault(ports_key(ports), (ports, []))[1].append(endpoint_for(service, pod, nodes))
    for _, eps in groups.values():
        eps.sort(key=lambda e: (e["addresses"][0], e["targetRef"]["name"]))
    return groups


def managed_slices(service: Obj, slices: list[Obj]) -> list[Obj]:
    return [s for s in slices if ns_of(s) == ns_of(service)
            and labels_of(s).get(SERVICE_NAME_LABEL) == name_of(service)
            and labels_of(s).get(MANAGED_BY_LABEL) == MANAGED_BY]


def is_headless(service: Obj) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def slice_labels(service: Obj) -> dict[str, str]:
    """The Service's labels plus upstream's: service name, managed-by, and the headless marker
    kube-proxy uses to ignore slices of headless Services."""
    labels = {k: v for k, v in labels_of(service).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)}
    labels.update({SERVICE_NAME_LABEL: name_of(service), MANAGED_BY_LABEL: MANAGED_BY})
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels


@dataclass
class SliceChanges:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    hinted: bool = False                                   # topology hints populated (Auto mode)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


def _is_placeholder(s: Obj) -> bool:
    """The empty slice kept for a Service with no endpoints: reused by the first endpoints."""
    return not s.get("endpoints") and s.get("ports") is None


def _ep_id(ep: Obj) -> str:
    return ep["targetRef"].get("uid") or ep["addresses"][0]


def _new_slice(service: Obj, name: str, ports: list[Obj] | None, eps: list[Obj]) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns_of(service), "labels": slice_labels(service),
                         "ownerReferences": [owner_ref(service)]},
            "addressType": "IPv4", "endpoints": eps, "ports": ports}


def reconcile(service: Obj, pods: list[Obj], nodes: dict[str, Obj], slices: list[Obj],
              new_name: Callable[[], str], trigger_time: str | None = None,
              max_per_slice: int = MAX_ENDPOINTS, had_hints: bool = False) -> SliceChanges:
    """What to write so the Service's managed slices hold exactly the desired endpoints."""
    desired = desired_endpoints(service, pods, nodes)
    existing = sorted(managed_slices(service, slices), key=name_of)
    changes = SliceChanges()
    used: set[str] = set()
    results: list[tuple[Obj | None, list[Obj] | None, list[Obj]]] = []  # (old slice, ports, endpoints)
    for key, (ports, eps) in sorted(desired.items()):
        wanted = {_ep_id(e): e for e in eps}
        mine = [s for s in existing if name_of(s) not in used and (
            (ports_key(s.get("ports") or []) == key and (s.get("ports") is not None or not ports))
            or _is_placeholder(s))]
        buckets: list[tuple[Obj | None, list[Obj]]] = []
        for s in mine:  # keep endpoints where they are
            keep = [wanted.pop(_ep_id(e)) for e in s.get("endpoints") or [] if _ep_id(e) in wanted]
            buckets.append((s, keep))
            used.add(name_of(s))
        rest = [e for e in eps if _ep_id(e) in wanted]
        for s, keep in buckets:  # then fill slices that have room, before making new ones
            room = max(0, max_per_slice - len(keep))
            keep.extend(rest[:room])
            rest = rest[room:]
        while rest:
            buckets.append((None, rest[:max_per_slice]))
            rest = rest[max_per_slice:]
        results.extend((s, ports, keep) for s, keep in buckets)
    if not desired:  # upstream placeholder: one empty slice stands for "no endpoints"
        placeholder = next((s for s in existing if not s.get("endpoints")), existing[0] if existing else None)
        results.append((placeholder, None, []))
    changes.hinted, changes.events = hints.apply_hints(
        service, [e for _, _, eps in results for e in eps], list(nodes.values()), had_hints)
    referenced = set()
    for old, ports, eps in results:
        if old is not None:
            referenced.add(name_of(old))
            if not eps and desired:
                changes.delete.append(old)  # emptied slice of a non-empty Service
                continue
        _emit(service, old, ports, sorted(eps, key=lambda e: (e["addresses"][0], e["targetRef"]["name"])),
              changes, new_name, trigger_time)
    changes.delete.extend(s for s in existing if name_of(s) not in referenced)
    return changes


def _emit(service: Obj, old: Obj | None, ports: list[Obj] | None, eps: list[Obj], changes: SliceChanges,
          new_name: Callable[[], str], trigger_time: str | None) -> None:
    if old is None:
        s = _new_slice(service, new_name(), ports, eps)
        if trigger_time:
            s["metadata"]["annotations"] = {TRIGGER_TIME: trigger_time}
        changes.create.append(s)
        return
    same = (old.get("endpoints") or []) == eps and (old.get("ports") or None) == (ports or None) \
        and labels_of(old) == slice_labels(service) and old.get("addressType") == "IPv4"
    if same:
        return
    new = json.loads(json.dumps(old))
    new["endpoints"], new["ports"] = eps, ports
    new["metadata"]["labels"] = slice_labels(service)
    if trigger_time:
        new["metadata"].setdefault("annotations", {})
        new["metadata"]["annotations"] = dict(new["metadata"]["annotations"] or {}, **{TRIGGER_TIME: trigger_time})
    changes.update.append(new)


def service_is_managed(service: Obj) -> bool:
    """Only Services with a selector get controller-managed endpoints (upstream)."""
    return bool((service.get("spec") or {}).get("selector")) and not is_deleting(service)


def service_uid_matches(service: Obj, slice_obj: Obj) -> bool:
    return any(r.get("uid") == uid_of(service) for r in meta(slice_obj).get("ownerReferences") or [])
