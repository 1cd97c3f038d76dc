"""Deterministic names for what a pod sandbox creates in the kernel.

Why deterministic: after an agent restart (or from ``netemu exec``/``netemu cleanup``) the names
must be recomputable from the pod alone. Interface names are at most 15 characters.
"""

from __future__ import annotations

POD_NETNS_PREFIX = "nep-"
VETH_PREFIX = "veth"


def _hex(uid: str) -> str:
    digits = uid.replace("-", "").lower()
    if len(digits) < 11 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"pod uid {uid!r} is not a UUID")
    return digits


def pod_netns(uid: str) -> str:
    """``nep-`` + the first 11 hex digits of the pod uid (15 characters: fits every tool)."""
    return POD_NETNS_PREFIX + _hex(uid)[:11]


def pod_netns_of(pod: dict) -> str:
    """``pod_netns`` of a Pod object (its metadata.uid): what ``netemu exec``, the demo and the
    tests look for under /run/netns. ValueError when the pod has no UUID yet."""
    return pod_netns((pod.get("metadata") or {}).get("uid") or "")


def host_veth(uid: str) -> str:
    """The node-side end of the pod's veth: ``veth`` + 8 hex digits of the uid."""
    return VETH_PREFIX + _hex(uid)[:8]


def pod_hostname(pod: dict) -> str:
    """What the pod's containers see as their hostname: spec.hostname, else the pod name
    (the kubelet's rule, truncated to 63 characters)."""
    spec = pod.get("spec") or {}
    name = spec.get("hostname") or (pod.get("metadata") or {}).get("name") or ""
    return name[:63].rstrip("-.")
