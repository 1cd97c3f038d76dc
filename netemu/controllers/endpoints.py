"""The legacy core/v1 Endpoints object of a Service (upstream endpoints controller).

Pure: ``desired_endpoints_object`` builds subsets from the same pods the slices use; ready pods
go to ``addresses``, not-ready ones to ``notReadyAddresses``, terminating pods are left out
(unless publishNotReadyAddresses), and subsets with the same ports are merged (RepackSubsets).
"""

from __future__ import annotations

import json
import math

from netemu.controllers.endpointslice import (HEADLESS_LABEL, TRIGGER_TIME, endpoint_ports, in_endpoints,
                                              is_headless, pod_ip, selected_pods)
from netemu.controllers.kube import Obj, is_deleting, labels_of, meta, name_of, ns_of, pod_is_ready, uid_of

MAX_CAPACITY = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"


def subsets_for(service: Obj, pods: list[Obj]) -> list[Obj]:
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[str, Obj] = {}
    for pod in selected_pods(service, pods):
        if not in_endpoints(pod) or (is_deleting(pod) and not publish):
            continue
        ports = endpoint_ports(service, pod)
        if not ports and (service.get("spec") or {}).get("ports"):
            continue
        ports = sorted(ports, key=lambda p: (p["name"], p["port"], p["protocol"]))
        addr: Obj = {"ip": pod_ip(pod),
                     "targetRef": {"kind": "Pod", "namespace": ns_of(pod), "name": name_of(pod), "uid": uid_of(pod)}}
        if (pod.get("spec") or {}).get("nodeName"):
            addr["nodeName"] = pod["spec"]["nodeName"]
        key = json.dumps(ports, sort_keys=True)
        subset = groups.setdefault(key, {"addresses": [], "notReadyAddresses": [], "ports": ports})
        subset["addresses" if publish or pod_is_ready(pod) else "notReadyAddresses"].append(addr)
    out = []
    for key in sorted(groups):
        subset = groups[key]
        for field in ("addresses", "notReadyAddresses"):
            subset[field].sort(key=lambda a: (a["ip"], a["targetRef"]["name"]))
            if not subset[field]:
                del subset[field]
        if not subset["ports"]:
            del subset["ports"]
        out.append(subset)
    return out


def truncate(subsets: list[Obj], limit: int = MAX_CAPACITY) -> tuple[list[Obj], bool]:
    """At most ``limit`` addresses, shared over the subsets in proportion, ready ones kept
    first (upstream truncateEndpoints). Returns (subsets, truncated)."""
    ready = sum(len(s.get("addresses") or []) for s in subsets)
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if ready + not_ready <= limit:
        return subsets, False
    cut_ready = ready > limit
    budget, total = (limit, ready) if cut_ready else (limit - ready, not_ready)
    field = "addresses" if cut_ready else "notReadyAddresses"
    left, out = budget, []
    for i, subset in enumerate(subsets):
        subset = dict(subset)
        share = left if i == len(subsets) - 1 else math.ceil(len(subset.get(field) or []) / total * budget)
        subset[field] = (subset.get(field) or [])[:min(share, left)]
        if cut_ready:
            subset.pop("notReadyAddresses", None)
        left -= len(subset[field])
        out.append({k: v for k, v in subset.items() if v != []})
    return out, True


def desired_endpoints_object(service: Obj, pods: list[Obj], current: Obj | None,
                             trigger_time: str | None) -> Obj | None:
    """The Endpoints to write, or None when ``current`` already says the same."""
    subsets, truncated = truncate(subsets_for(service, pods))
    labels = {k: v for k, v in labels_of(service).items()}
    labels["endpointslice.kubernetes.io/skip-mirror"] = "true"
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    annotations = {k: v for k, v in (meta(current or {}).get("annotations") or {}).items() if k != OVER_CAPACITY}
    if truncated:
        annotations[OVER_CAPACITY] = "truncated"
    if current is not None and (current.get("subsets") or []) == subsets and labels_of(current) == labels \
            and (meta(current).get("annotations") or {}).get(OVER_CAPACITY) == annotations.get(OVER_CAPACITY):
        return None
    new = json.loads(json.dumps(current)) if current else {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name_of(service), "namespace": ns_of(service)}}
    new["subsets"] = subsets
    new["metadata"]["labels"] = labels
    if trigger_time:
        annotations[TRIGGER_TIME] = trigger_time
    new["metadata"]["annotations"] = annotations or None
    return new
