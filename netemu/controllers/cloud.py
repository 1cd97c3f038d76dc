"""Cloud controller (emulated provider): LoadBalancer Services get an IP from a pool.

What a cloud provider's service controller plus an address manager (MetalLB-style) do: a
Service of type LoadBalancer gets the next free pool address (or its spec.loadBalancerIP when
that is in the pool and free) in status.loadBalancer.ingress; the address is released when the
Service is deleted or stops being a LoadBalancer. An empty pool is a Warning Event on the
Service and a retry later, never a crash. The health-check NodePort for externalTrafficPolicy
Local is allocated by the API server with the other ports, as upstream does.
"""

from __future__ import annotations

import ipaddress

from netemu.controllers.events import NORMAL, WARNING
from netemu.controllers.kube import Obj, key_of, name_of, ns_of
from netemu.controllers.runtime import Controller, rt, split_key

COMPONENT = "service-controller"
RETRY_EXHAUSTED = 10.0


def parse_pool(text: str) -> list[str]:
    """"A.B.C.D-A.B.C.E" (inclusive) or a CIDR (network and broadcast addresses left out)."""
    text = text.strip()
    if "-" in text:
        first, last = (ipaddress.ip_address(p.strip()) for p in text.split("-", 1))
        if int(last) < int(first) or first.version != last.version:
            raise ValueError(f"LoadBalancer pool {text!r}: the range ends before it starts")
        return [str(ipaddress.ip_address(i)) for i in range(int(first), int(last) + 1)]
    net = ipaddress.ip_network(text, strict=False)
    return [str(a) for a in (net.hosts() if net.num_addresses > 2 else net)]


def is_lb(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("type") == "LoadBalancer"


def ingress_ips(svc: Obj) -> list[str]:
    lb = (svc.get("status") or {}).get("loadBalancer") or {}
    return [i["ip"] for i in lb.get("ingress") or [] if i.get("ip")]


class Pool:
    """Pure address book: which pool IP belongs to which Service key."""

    def __init__(self, addresses: list[str]):
        self.addresses = addresses
        self.owner: dict[str, str] = {}

    def holding(self, key: str) -> str | None:
        return next((ip for ip, k in self.owner.items() if k == key), None)

    def claim(self, key: str, ip: str) -> bool:
        if ip not in self.addresses or self.owner.get(ip, key) != key:
            return False
        self.owner[ip] = key
        return True

    def allocate(self, key: str, wanted: str | None = None) -> str | None:
        have = self.holding(key)
        if have and (not wanted or wanted == have):
            return have
        if wanted:
            return wanted if self.claim(key, wanted) else None
        for ip in self.addresses:
            if ip not in self.owner:
                self.owner[ip] = key
                return ip
        return None

    def release(self, key: str) -> str | None:
        ip = self.holding(key)
        if ip:
            del self.owner[ip]
        return ip


class LoadBalancerController(Controller):
    name = "cloud-lb"
    service_account = "service-controller"
    kinds = ("Service",)

    def setup(self) -> None:
        self.pool_text = self.settings.lb_pool
        self.pool = Pool(parse_pool(self.pool_text))
        self.cache("Service").add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n), self.enqueue_obj)

    async def resync_all(self) -> None:
        for svc in self.cache("Service").list():  # existing assignments first, so none is given twice
            if is_lb(svc):
                for ip in ingress_ips(svc):
                    self.pool.claim(key_of(svc), ip)
        for svc in self.cache("Service").list():
            self.enqueue_obj(svc)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.cache("Service").get(name, ns)
        if svc is None or not is_lb(svc):
            released = self.pool.release(key)
            if svc is not None and ingress_ips(svc):
                await self._write(svc, [])
                self.recorder.event(svc, NORMAL, "DeletedLoadBalancer", "Deleted load balancer", component=COMPONENT)
            if released:  # an address came free: Services waiting for one try now
                for other in self.cache("Service").list():
                    if is_lb(other) and not ingress_ips(other) and key_of(other) != key:
                        self.enqueue_obj(other)
            return
        current = ingress_ips(svc)
        wanted = (svc.get("spec") or {}).get("loadBalancerIP") or None
        if current and self.pool.claim(key, current[0]) and (not wanted or wanted == current[0]):
            return
        if current:
            self.pool.release(key)
        self.recorder.event(svc, NORMAL, "EnsuringLoadBalancer", "Ensuring load balancer", component=COMPONENT)
        ip = self.pool.allocate(key, wanted)
        if ip is None:
            why = (f"requested IP {wanted} is not in pool {self.pool_text} or is taken" if wanted
                   else f"no available IPs in pool {self.pool_text}")
            self.recorder.event(svc, WARNING, "SyncLoadBalancerFailed",
                                f"Error syncing load balancer: failed to ensure load balancer: {why}",
                                component=COMPONENT)
            self.queue.add_after(key, RETRY_EXHAUSTED)
            return
        await self._write(svc, [{"ip": ip, "ipMode": "VIP"}])
        self.recorder.event(svc, NORMAL, "EnsuredLoadBalancer", "Ensured load balancer", component=COMPONENT)

    async def _write(self, svc: Obj, ingress: list[Obj]) -> None:
        await self.client.patch(rt("Service"), name_of(svc), {"status": {"loadBalancer": {"ingress": ingress or None}}},
                                ns_of(svc), subresource="status")
