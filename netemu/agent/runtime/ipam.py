"""Per-node pod IP allocation from the node's podCIDR, persisted across agent restarts.

Like the host-local CNI plugin: skip the network address, the gateway (.1) and broadcast; hand
out the next free address after the last one handed out (round robin), so an IP that was just
released is not reused at once (stale conntrack entries for it would hit the new pod).
The state file is rewritten atomically (write + rename) on every change, so a crash never
leaves a half-written file and a restarted agent never hands out an IP that is in use.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass


class IPAMExhausted(RuntimeError):
    """No free address left in the podCIDR."""


def usable(cidr: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    """First and last allocatable host integers: after the gateway (.1), before broadcast."""
    first = int(cidr.network_address) + 2
    last = int(cidr.broadcast_address) - (1 if cidr.version == 4 else 0)
    return first, last


def next_free(cidr, used: set[str], last: str | None) -> str:
    """The next address after ``last`` (wrapping) that is not in ``used``. Pure."""
    first, final = usable(cidr)
    if final < first:
        raise IPAMExhausted(f"{cidr} has no allocatable address")
    size = final - first + 1
    start = first
    if last is not None:
        value = int(ipaddress.ip_address(last))
        if first <= value <= final:
            start = value + 1 if value < final else first
    for step in range(size):
        candidate = first + (start - first + step) % size
        text = str(ipaddress.ip_address(candidate))
        if text not in used:
            return text
    raise IPAMExhausted(f"all {size} addresses of {cidr} are in use")


@dataclass
class Allocation:
    """One address in use: the pod it belongs to and its sandbox's namespace."""

    uid: str
    netns: str = ""
    pod: str = ""  # "namespace/name", for people reading the file


class PodIPAM:
    """Allocations of one node's podCIDR; ``path`` None keeps them in memory only."""

    def __init__(self, cidr: str, path: str | None = None):
        self.cidr = ipaddress.ip_network(cidr)
        self.path = path
        self.allocations: dict[str, Allocation] = {}
        self.last: str | None = None
        if path and os.path.exists(path):
            self._load()

    def _load(self) -> None:
        with open(self.path) as f:
            data = json.load(f)
        self.last = data.get("last")
        for ip, rec in (data.get("allocations") or {}).items():
            if ipaddress.ip_address(ip) in self.cidr:  # a changed podCIDR drops stale entries
                self.allocations[ip] = Allocation(**rec)

    def _save(self) -> None:
        if not self.path:
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = f"{self.path}.tmp{os.getpid()}"
        data = {"cidr": str(self.cidr), "last": self.last,
                "allocations": {ip: vars(a) for ip, a in sorted(self.allocations.items())}}
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.path)

    def ip_of(self, uid: str) -> str | None:
        for ip, alloc in self.allocations.items():
            if alloc.uid == uid:
                return ip
        return None

    def allocate(self, uid: str, netns: str = "", pod: str = "") -> str:
        """The pod's address: its existing one (idempotent), else the next free one."""
        existing = self.ip_of(uid)
        if existing:
            return existing
        ip = next_free(self.cidr, set(self.allocations), self.last)
        self.allocations[ip] = Allocation(uid=uid, netns=netns, pod=pod)
        self.last = ip
        self._save()
        return ip

    def release(self, uid: str) -> str | None:
        """Free the pod's address (no-op when it has none); returns the address freed."""
        ip = self.ip_of(uid)
        if ip is not None:
            del self.allocations[ip]
            self._save()
        return ip

    @property
    def gateway(self) -> str:
        return str(self.cidr.network_address + 1)
