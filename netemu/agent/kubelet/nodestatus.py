"""The kubelet's Node and Lease objects, and the flags that shape them (pure).

Registration writes what upstream's kubelet writes (pkg/kubelet/kubelet_node_status.go):
addresses InternalIP + Hostname, capacity = allocatable (no system reservations here), the
well-known labels (kubernetes.io/hostname, os, arch), taints from --register-with-taints, and the
Ready condition plus the pressure conditions a scheduler and `kubectl describe` expect. The Lease in
kube-node-lease is the heartbeat the node lifecycle controller watches.
"""

from __future__ import annotations

import platform
import re

from netemu.agent.kubelet.conditions import rfc3339, rfc3339_micro, set_condition
from netemu.api.meta import Obj

LEASE_NAMESPACE = "kube-node-lease"
DEFAULT_CAPACITY = {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "20Gi"}
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    out = []
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"bad {what} {item!r}: expected KEY=VALUE")
        out.append((key.strip(), value.strip()))
    return out


def parse_capacity(text: str) -> dict[str, str]:
    """"cpu=2,memory=4Gi,pods=110" over the defaults; each value must be a quantity."""
    cap = dict(DEFAULT_CAPACITY)
    for key, value in _pairs(text, "capacity"):
        if not _QUANTITY.match(value):
            raise ValueError(f"bad capacity {key}={value!r}: not a quantity (e.g. 2, 500m, 4Gi)")
        cap[key] = value
    return cap


def parse_labels(text: str) -> dict[str, str]:
    labels = {}
    for key, value in _pairs(text, "label"):
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise ValueError(f"bad label {key}={value!r}: not a valid label key/value")
        labels[key] = value
    return labels


def parse_taints(text: str) -> list[Obj]:
    """"key=value:Effect" or "key:Effect", comma-separated (kubelet --register-with-taints)."""
    taints = []
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        head, sep, effect = item.rpartition(":")
        if not sep or effect not in TAINT_EFFECTS:
            raise ValueError(f"bad taint {item!r}: expected KEY[=VALUE]:EFFECT, EFFECT one of {', '.join(TAINT_EFFECTS)}")
        key, _, value = head.partition("=")
        if not key or not _LABEL_KEY.match(key):
            raise ValueError(f"bad taint {item!r}: invalid key")
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        taints.append(taint)
    return taints


def node_labels(name: str, extra: dict[str, str]) -> dict[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **extra}


def node_conditions(previous: list[Obj], ready: bool, now: float, message: str = "") -> list[Obj]:
    """Ready plus the three pressure conditions, heartbeat stamped ``now``; transition times
    move only when a status changes (so `kubectl describe` shows real transitions)."""
    stamp = rfc3339(now)
    conds = previous or []
    for ctype, reason, msg in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                               ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                               ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available")):
        conds = set_condition(conds, {"type": ctype, "status": "False", "reason": reason, "message": msg,
                                      "lastHeartbeatTime": stamp}, stamp)
    ready_cond = ({"type": "Ready", "status": "True", "reason": "KubeletReady",
                   "message": message or "kubelet is posting ready status"} if ready else
                  {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                   "message": message or "container runtime network not ready"})
    return set_condition(conds, dict(ready_cond, lastHeartbeatTime=stamp), stamp)


def node_status(node_ip: str, name: str, capacity: dict[str, str], conditions: list[Obj]) -> Obj:
    return {"addresses": [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": name}],
            "capacity": dict(capacity), "allocatable": dict(capacity), "conditions": conditions,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"kubeletVersion": "v1.32.0-netemu", "kubeProxyVersion": "v1.32.0-netemu",
                         "operatingSystem": "linux", "architecture": node_labels(name, {})["kubernetes.io/arch"],
                         "containerRuntimeVersion": "netemu://1", "osImage": "netemu", "kernelVersion": platform.release(),
                         "machineID": "", "systemUUID": "", "bootID": ""}}


def node_object(name: str, node_ip: str, capacity: dict[str, str], labels: dict[str, str],
                taints: list[Obj], now: float) -> Obj:
    """The Node a kubelet registers: NotReady until its network is set up."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": node_labels(name, labels)},
            "spec": {"taints": list(taints)} if taints else {},
            "status": node_status(node_ip, name, capacity, node_conditions([], False, now))}


def lease_object(node: str, node_uid: str, now: float, duration: int = 40) -> Obj:
    """The heartbeat Lease, owned by the Node so it goes when the Node is deleted."""
    owners = [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}] if node_uid else []
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node, "namespace": LEASE_NAMESPACE, "ownerReferences": owners},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": duration, "renewTime": rfc3339_micro(now)}}
