"""ClusterIP and NodePort allocation, like upstream's pkg/registry/core/service/{ipallocator,
portallocator} and the service REST's allocation transaction.

Pure bookkeeping in memory: the API server rebuilds it from the stored Services at start
(``rebuild``), allocates before a write and rolls back if the write fails, and releases on delete.
Random allocation follows upstream's two bands: the low band of a range is kept for addresses
and ports users ask for by value, so dynamic allocation takes from the upper band first and
reaches the low band only when the upper one is full. Reserved values (``10.96.0.1`` for the
``kubernetes`` Service, ``10.96.0.10`` for DNS) are given only to a request that names them.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any, Callable, Iterable

from netemu.api import errors, field, meta
from netemu.api.service_update import needs_cluster_ip, needs_health_check_node_port, should_allocate_node_ports

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORTS = (30000, 32767)
KUBERNETES_IP, DNS_IP = "10.96.0.1", "10.96.0.10"


class AllocationError(Exception):
    """Why a value could not be allocated (worded as upstream's allocator errors)."""


class AlreadyAllocated(AllocationError):
    pass


class NotInRange(AllocationError):
    pass


class RangeFull(AllocationError):
    pass


def _static_band(size: int, divisor: int, cap: int) -> int:
    """Upstream ``calculateRangeOffset``: min(max(16, size/divisor), cap), none for tiny ranges."""
    if size < 16:
        return 0
    return min(max(16, size // divisor), cap)


class RangeAllocator:
    """Offsets 0..size-1 of one range; the values are the wrapper's business."""

    def __init__(self, size: int, *, static_band: int = 0, never_random: Iterable[int] = (),
                 rng: random.Random | None = None):
        self.size = size
        self.static_band = static_band
        self.never_random = frozenset(never_random)
        self.used: set[int] = set()
        self.rng = rng or random.Random()

    def allocate(self, offset: int) -> None:
        if offset in self.used:
            raise AlreadyAllocated("provided {what} is already allocated")
        self.used.add(offset)

    def allocate_next(self) -> int:
        """A random free offset, upper band first, reserved offsets never."""
        for lo, hi in ((self.static_band, self.size), (0, self.static_band)):
            offset = self._scan(lo, hi)
            if offset is not None:
                self.used.add(offset)
                return offset
        raise RangeFull("range is full")

    def _scan(self, lo: int, hi: int) -> int | None:
        """Random start, then the next free offset (upstream's randomScanStrategy)."""
        if hi <= lo:
            return None
        start = self.rng.randrange(lo, hi)
        for i in range(hi - lo):
            offset = lo + (start - lo + i) % (hi - lo)
            if offset not in self.used and offset not in self.never_random:
                return offset
        return None

    def release(self, offset: int) -> None:
        self.used.discard(offset)

    def free(self) -> int:
        return self.size - len(self.used)


class IPAllocator:
    """Addresses of a CIDR, network and broadcast addresses excluded."""

    def __init__(self, cidr: str = DEFAULT_SERVICE_CIDR, *, reserved: Iterable[str] = (KUBERNETES_IP, DNS_IP),
                 rng: random.Random | None = None):
        self.net = ipaddress.ip_network(cidr)
        self.first = int(self.net.network_address) + 1
        size = max(self.net.num_addresses - 2, 0)
        never = [int(ipaddress.ip_address(ip)) - self.first for ip in reserved
                 if ipaddress.ip_address(ip) in self.net]
        self.range = RangeAllocator(size, static_band=_static_band(size, 16, 256), never_random=never, rng=rng)

    def _offset(self, ip: str) -> int:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise NotInRange(f"the provided IP ({ip}) is not a valid IP address") from None
        offset = int(addr) - self.first
        if addr not in self.net or not 0 <= offset < self.range.size:
            raise NotInRange(f"the provided IP ({ip}) is not in the valid range. "
                             f"The range of valid IPs is {self.net}")
        return offset

    def allocate(self, ip: str) -> None:
        try:
            self.range.allocate(self._offset(ip))
        except AlreadyAllocated:
            raise AlreadyAllocated("provided IP is already allocated") from None

    def allocate_next(self) -> str:
        return str(ipaddress.ip_address(self.first + self.range.allocate_next()))

    def release(self, ip: str) -> None:
        try:
            self.range.release(self._offset(ip))
        except NotInRange:
            pass

    def has(self, ip: str) -> bool:
        try:
            return self._offset(ip) in self.range.used
        except NotInRange:
            return False

    def free(self) -> int:
        return self.range.free()


class PortAllocator:
    """Node ports of an inclusive range (30000-32767 by default)."""

    def __init__(self, first: int = DEFAULT_NODE_PORTS[0], last: int = DEFAULT_NODE_PORTS[1], *,
                 rng: random.Random | None = None):
        self.first, self.last = first, last
        size = last - first + 1
        self.range = RangeAllocator(size, static_band=_static_band(size, 32, 128), rng=rng)

    def _offset(self, port: int) -> int:
        if not isinstance(port, int) or not self.first <= port <= self.last:
            raise NotInRange(f"provided port is not in the valid range. The range of valid ports is "
                             f"{self.first}-{self.last}")
        return port - self.first

    def allocate(self, port: int) -> None:
        try:
            self.range.allocate(self._offset(port))
        except AlreadyAllocated:
            raise AlreadyAllocated("provided port is already allocated") from None

    def allocate_next(self) -> int:
        return self.first + self.range.allocate_next()

    def release(self, port: int) -> None:
        try:
            self.range.release(self._offset(port))
        except NotInRange:
            pass

    def has(self, port: int) -> bool:
        try:
            return self._offset(port) in self.range.used
        except NotInRange:
            return False

    def free(self) -> int:
        return self.range.free()


# -- Services ---------------------------------------------------------------------------------

class _Txn:
    """What one create/update took, so a failed validation or store write gives it back."""

    def __init__(self) -> None:
        self.taken: list[tuple[Any, Any]] = []

    def take(self, allocator: Any, value: Any) -> Any:
        allocator.allocate(value)
        self.taken.append((allocator, value))
        return value

    def take_next(self, allocator: Any) -> Any:
        value = allocator.allocate_next()
        self.taken.append((allocator, value))
        return value

    def holds(self, allocator: Any, value: Any) -> bool:
        return (allocator, value) in self.taken

    def undo(self) -> None:
        for allocator, value in reversed(self.taken):
            allocator.release(value)
        self.taken.clear()


def _spec(svc: dict) -> dict:
    spec = svc.get("spec")
    return spec if isinstance(spec, dict) else {}


def _ports(svc: dict) -> list[dict]:
    ports = _spec(svc).get("ports")
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


def _invalid(svc: dict, cause: dict) -> errors.Invalid:
    return errors.invalid("Service", meta.name_of(svc), [cause])


class ServiceAllocations:
    """Cluster IPs and node ports of all Services, applied to the Service being written.

    ``allocate(svc)`` fills ``svc`` in place and returns an undo; ``update(old, new)`` returns
    ``commit(ok)``: ok releases what ``old`` held and ``new`` dropped, not ok gives back what the
    update took; ``release(svc)`` on delete; ``rebuild(services)`` at start.
    """

    def __init__(self, service_cidr: str = DEFAULT_SERVICE_CIDR,
                 node_ports: tuple[int, int] = DEFAULT_NODE_PORTS, *,
                 reserved: Iterable[str] = (KUBERNETES_IP, DNS_IP), rng: random.Random | None = None):
        self._config = (service_cidr, node_ports, tuple(reserved), rng)
        self.ips = IPAllocator(service_cidr, reserved=reserved, rng=rng)
        self.ports = PortAllocator(*node_ports, rng=rng)

    # what a stored Service holds
    @staticmethod
    def held(svc: dict) -> tuple[set[str], set[int]]:
        ips: set[str] = set()
        ports: set[int] = set()
        spec = _spec(svc)
        if needs_cluster_ip(svc):
            for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
                if ip and ip != "None":
                    ips.add(ip)
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            ports |= {p["nodePort"] for p in _ports(svc) if p.get("nodePort")}
        if needs_health_check_node_port(svc) and spec.get("healthCheckNodePort"):
            ports.add(spec["healthCheckNodePort"])
        return ips, ports

    def allocate(self, svc: dict) -> Callable[[], None]:
        txn = _Txn()
        self._apply(svc, txn, set(), set())
        return txn.undo

    def update(self, old: dict, new: dict) -> Callable[[bool], None]:
        old_ips, old_ports = self.held(old)
        txn = _Txn()
        self._apply(new, txn, old_ips, old_ports)
        new_ips, new_ports = self.held(new)

        def commit(ok: bool) -> None:
            if not ok:
                txn.undo()
                return
            for ip in old_ips - new_ips:
                self.ips.release(ip)
            for port in old_ports - new_ports:
                self.ports.release(port)
        return commit

    def release(self, svc: dict) -> None:
        ips, ports = self.held(svc)
        for ip in ips:
            self.ips.release(ip)
        for port in ports:
            self.ports.release(port)

    def rebuild(self, services: Iterable[dict]) -> list[str]:
        """Start over from the stored Services; returns the conflicts found (upstream's repair
        controller reports these as events: two Services holding one IP or port)."""
        cidr, node_ports, reserved, rng = self._config
        self.ips = IPAllocator(cidr, reserved=reserved, rng=rng)
        self.ports = PortAllocator(*node_ports, rng=rng)
        problems = []
        for svc in services:
            ips, ports = self.held(svc)
            for allocator, values in ((self.ips, ips), (self.ports, ports)):
                for value in sorted(values):
                    try:
                        allocator.allocate(value)
                    except AllocationError as e:
                        problems.append(f"{meta.namespaced_name(svc)}: {value}: {e}")
        return problems

    # the allocation steps, each rolling the whole transaction back on error
    def _apply(self, svc: dict, txn: _Txn, keep_ips: set, keep_ports: set) -> None:
        try:
            self._cluster_ip(svc, txn, keep_ips)
            self._node_ports(svc, txn, keep_ports)
            self._health_check_port(svc, txn, keep_ports)
        except BaseException:
            txn.undo()
            raise

    def _cluster_ip(self, svc: dict, txn: _Txn, keep: set) -> None:
        if not needs_cluster_ip(svc):
            return
        spec = svc.setdefault("spec", {})
        ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        if ips and ips[0] == "None":
            return
        if not ips:
            try:
                ip = txn.take_next(self.ips)
            except RangeFull:
                raise errors.InternalError("failed to allocate a serviceIP: range is full") from None
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
            return
        if ips[0] in keep:
            return
        try:
            txn.take(self.ips, ips[0])
        except AllocationError as e:
            raise _invalid(svc, field.invalid("spec.clusterIPs", ips, f"failed to allocate IP {ips[0]}: {e}")) from None

    def _take_port(self, svc: dict, txn: _Txn, keep: set, port: int, path: str, prefix: str = "") -> None:
        if port in keep or txn.holds(self.ports, port):
            return
        try:
            txn.take(self.ports, port)
        except AllocationError as e:
            raise _invalid(svc, field.invalid(path, port, f"{prefix}{e}")) from None

    def _next_port(self, txn: _Txn) -> int:
        try:
            return txn.take_next(self.ports)
        except RangeFull:
            raise errors.InternalError("failed to allocate a nodePort: range is full") from None

    def _node_ports(self, svc: dict, txn: _Txn, keep: set) -> None:
        """Upstream ``initNodePorts``: ports sharing a port number (TCP+UDP) share a node port."""
        if _spec(svc).get("type") not in ("NodePort", "LoadBalancer"):
            return
        should_allocate = should_allocate_node_ports(svc)
        ports = _ports(svc)
        by_port: dict[Any, int] = {}
        for i, p in enumerate(ports):
            path = f"spec.ports[{i}].nodePort"
            requested = p.get("nodePort") or 0
            if not requested and not should_allocate:
                continue
            known = by_port.get(p.get("port"))
            if known is None:
                requested = requested or next((q["nodePort"] for q in ports
                                               if q.get("port") == p.get("port") and q.get("nodePort")), 0)
                if requested:
                    self._take_port(svc, txn, keep, requested, path)
                    p["nodePort"] = requested
                else:
                    p["nodePort"] = self._next_port(txn)
                by_port[p.get("port")] = p["nodePort"]
            elif not requested:
                p["nodePort"] = known
            elif requested != known:
                self._take_port(svc, txn, keep, requested, path)

    def _health_check_port(self, svc: dict, txn: _Txn, keep: set) -> None:
        if not needs_health_check_node_port(svc):
            return
        spec = svc["spec"]
        requested = spec.get("healthCheckNodePort")
        if requested:
            self._take_port(svc, txn, keep, requested, "spec.healthCheckNodePort",
                            f"failed to allocate requested HealthCheck NodePort {requested}: ")
        else:
            spec["healthCheckNodePort"] = self._next_port(txn)
