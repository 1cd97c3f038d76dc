"""The legacy core/v1 Endpoints object of a Service (upstream endpoints controller).

Pure: ``desired_endpoints_object`` builds subsets from the same pods the slices use; ready pods
go to ``addresses``, not-ready ones to ``notReadyAddresses``, terminating pods are left out
(unless publishNotReadyAddresses), and subsets with the same ports are merged (RepackSubsets).
"""

from __future__ import annotations

import json

from netemu.controllers.endpointslice import (TRIGGER_TIME, endpoint_ports, in_endpoints, pod_ip,
                                              selected_pods)
from netemu.controllers.kube import Obj, is_deleting, labels_of, meta, name_of, ns_of, pod_is_ready, uid_of


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


def desired_endpoints_object(service: Obj, pods: list[Obj], current: Obj | None,
                             trigger_time: str | None) -> Obj | None:
    """The Endpoints to write, or None when ``current`` already says the same."""
    subsets = subsets_for(service, pods)
    labels = {k: v for k, v in labels_of(service).items()}
    labels["endpointslice.kubernetes.io/skip-mirror"] = "true"
    if current is not None and (current.get("subsets") or []) == subsets and labels_of(current) == labels:
        return None
    new = json.loads(json.dumps(current)) if current else {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name_of(service), "namespace": ns_of(service)}}
    new["subsets"] = subsets
    new["metadata"]["labels"] = labels
    if trigger_time:
        new["metadata"]["annotations"] = dict(meta(new).get("annotations") or {}, **{TRIGGER_TIME: trigger_time})
    return new
