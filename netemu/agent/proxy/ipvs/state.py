"""What the IPVS mode puts in a kernel, as plain values: virtual servers, real servers, and the whole
desired state of one node (``Plan``).

The same types describe what the planner wants and what the applier reads back from the kernel,
so the diff between the two is a comparison of values. A virtual server is identified by its
``VSKey`` (protocol, address, port: what ``ipvsadm -t/-u/--sctp-service VIP:PORT`` names); its
scheduler, flags and persistence timeout may change in place. A real server is identified by
(address, port) within its virtual server; its weight may change in place (0: draining).

Flags are the kernel's IP_VS_SVC_F_* bits as upstream's util/ipvs names them. The kernel reports
every service as "hashed" (0x2); upstream strips that bit when it reads, and so do we.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

FLAG_PERSISTENT = 0x1      # ClientIP affinity: the same client goes to the same real server
FLAG_HASHED = 0x2          # set by the kernel on every service; never ours to compare
FLAG_SOURCE_HASH = 0x10    # IP_VS_SVC_F_SCHED2: the mh scheduler hashes the source port too

PROTOCOLS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": socket.IPPROTO_SCTP}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}

DEFAULT_SCHEDULER = "rr"   # upstream defaultScheduler
DUMMY_DEVICE = "kube-ipvs0"  # upstream defaultDummyDevice


class VSKey(NamedTuple):
    """A virtual server's identity: protocol ("TCP"/"UDP"/"SCTP"), address, port."""

    protocol: str
    address: str
    port: int

    def __str__(self) -> str:   # upstream VirtualServer.String(): "ip:port/PROTO"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class VirtualServer:
    key: VSKey
    scheduler: str = DEFAULT_SCHEDULER
    flags: int = 0
    timeout: int = 0           # persistence timeout in seconds (with FLAG_PERSISTENT)


class RealServer(NamedTuple):
    """A destination of a virtual server; the connection counts only when read from a kernel."""

    address: str
    port: int
    weight: int = 1
    active: int = 0
    inactive: int = 0

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.address, self.port

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass
class Plan:
    """One node's whole desired IPVS-mode state (a full sync's target, and what render prints).

    ``services``/``reals``: virtual servers and their real servers (weight 1 each: draining is
    the applier's business); ``bind``: the addresses kube-ipvs0 holds (also KUBE-IPVS-IPS);
    ``ipsets``: every set of the mode (by its family's name) with its entries, empty ones too;
    ``iptables``: the fixed chains' ``iptables-restore --noflush`` input; ``no_local``: Services
    with a Local policy and no local endpoint, by policy (upstream's metric)."""

    services: dict[VSKey, VirtualServer] = field(default_factory=dict)
    reals: dict[VSKey, tuple[RealServer, ...]] = field(default_factory=dict)
    bind: frozenset[str] = frozenset()
    ipsets: Mapping[str, frozenset[str]] = field(default_factory=dict)
    iptables: str = ""
    no_local: Mapping[str, int] = field(default_factory=lambda: {"internal": 0, "external": 0})

    def endpoints_of(self, key: VSKey) -> list[str]:
        return [str(r) for r in self.reals.get(key, ())]
