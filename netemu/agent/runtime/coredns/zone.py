"""The cluster's DNS records: CoreDNS's kubernetes plugin as a pure function of API objects.

Ported from coredns/coredns plugin/kubernetes (kubernetes.go Records/findServices/findPods,
parse.go parseRequest, reverse.go, handler.go ServeDNS) and plugin/backend_lookup.go (A, SRV,
SOA, BackendError), CoreDNS 1.11, schema https://github.com/kubernetes/dns/blob/master/docs/specification.md:

- ``svc.ns.svc.zone`` A: the ClusterIP(s); a headless Service: its ready endpoints' IPs; an
  ExternalName Service: a CNAME to the external name.
- ``host.svc.ns.svc.zone`` A: the endpoint whose hostname (or, without one, its IP with dashes;
  or with ``endpoint_pod_names`` its pod's name) is ``host``.
- ``_port._proto.svc.ns.svc.zone`` SRV (and ``svc.ns.svc.zone`` SRV: every port): priority 0,
  weight 100/N, the port, target ``svc.ns.svc.zone`` (ClusterIP) or ``host.svc.ns.svc.zone``
  (headless), the target's A record in the additional section.
- ``a-b-c-d.ns.pod.zone`` A with ``pods insecure``: a.b.c.d if the namespace exists; ``pods
  verified``: only if a pod of that namespace has that IP; ``pods disabled``: NXDOMAIN.
- PTR in in-addr.arpa: a ClusterIP -> ``svc.ns.svc.zone``, an endpoint IP -> ``host.svc.ns.svc.zone``.
- ``dns-version.zone`` TXT "1.1.0"; the zone's SOA (``ns.dns.zone. hostmaster.zone.``, serial =
  time of the last change) and NS (``ns.dns.zone``: the DNS Service's IP).
- A name that does not exist (unknown Service or namespace, a malformed name) is NXDOMAIN; a
  name that exists without records of the asked type (AAAA of an IPv4 Service, ``ns.svc.zone``,
  the zone apex A) is NODATA: NOERROR, no answer. Both carry the zone's SOA in the authority
  section, as CoreDNS's BackendError writes it.

Only ready endpoints are published (EndpointSlice conditions.ready, which the EndpointSlice
controller sets for every endpoint of a Service with publishNotReadyAddresses).
"""

from __future__ import annotations

import ipaddress
import random
import time
from dataclasses import dataclass, field

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A

from .corefile import Kubernetes

DNS_SCHEMA_VERSION = "1.1.0"
NOT_OURS = object()             # the name is outside every zone: the next plugin's turn


@dataclass(frozen=True)
class Endpoint:
    ip: str
    hostname: str = ""
    pod: str = ""                 # targetRef name when it is a Pod


@dataclass(frozen=True)
class Port:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]
    external_name: str
    ports: tuple[Port, ...]

    @property
    def headless(self) -> bool:
        return self.cluster_ips == ("None",) or not self.cluster_ips


@dataclass
class Reply:
    rcode: int = RCODE.NOERROR
    answer: list = field(default_factory=list)
    authority: list = field(default_factory=list)
    additional: list = field(default_factory=list)


def service_of(obj: dict) -> Service:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    ips = tuple(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    ports = tuple(Port(p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP")
                  for p in spec.get("ports") or [])
    return Service(meta.get("namespace") or "", meta.get("name") or "", spec.get("type") or "ClusterIP",
                   ips, spec.get("externalName") or "", ports)


def slice_of(obj: dict) -> tuple[str, tuple[Endpoint, ...], tuple[Port, ...]] | None:
    """(service name, ready endpoints, ports) of an EndpointSlice (IPv4/IPv6 ones only)."""
    if obj.get("addressType") not in ("IPv4", "IPv6"):
        return None
    svc = ((obj.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
    if not svc:
        return None
    eps = []
    for ep in obj.get("endpoints") or []:
        if (ep.get("conditions") or {}).get("ready") is False:
            continue
        ref = ep.get("targetRef") or {}
        for ip in ep.get("addresses") or []:
            eps.append(Endpoint(ip, ep.get("hostname") or "", ref.get("name", "") if ref.get("kind") == "Pod" else ""))
    ports = tuple(Port(p.get("name") or "", int(p["port"]), p.get("protocol") or "TCP")
                  for p in obj.get("ports") or [] if p.get("port") is not None)
    return svc, tuple(eps), ports


class ClusterZone:
    """What the kubernetes plugin knows, fed by informer events, queried by ``lookup``."""

    def __init__(self, config: Kubernetes, own_ips: tuple[str, ...] = (), clock=time.time):
        self.config = config
        self.own_ips = own_ips          # this DNS pod's IPs (the NS record: the Service selecting it)
        self.clock = clock
        self.services: dict[tuple[str, str], Service] = {}
        self.slices: dict[tuple[str, str], tuple[str, tuple[Endpoint, ...], tuple[Port, ...]]] = {}
        self.namespaces: set[str] = set()
        self.pod_ips: dict[str, set[str]] = {}     # ip -> namespaces (pods verified)
        self.modified = int(clock())

    # -- feeding -------------------------------------------------------------------------------

    def touch(self) -> None:
        self.modified = int(self.clock())

    def set_service(self, obj: dict, deleted: bool = False) -> None:
        svc = service_of(obj)
        key = (svc.namespace, svc.name)
        if deleted:
            self.services.pop(key, None)
        else:
            self.services[key] = svc
        self.touch()

    def set_slice(self, obj: dict, deleted: bool = False) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        parsed = None if deleted else slice_of(obj)
        if parsed is None:
            self.slices.pop(key, None)
        else:
            self.slices[key] = parsed
        self.touch()

    def set_namespace(self, obj: dict, deleted: bool = False) -> None:
        name = (obj.get("metadata") or {}).get("name") or ""
        (self.namespaces.discard if deleted else self.namespaces.add)(name)
        self.touch()

    def set_pod(self, old: dict | None, new: dict | None) -> None:
        for obj, add in ((old, False), (new, True)):
            if not obj:
                continue
            ns = (obj.get("metadata") or {}).get("namespace") or ""
            for ip in [p.get("ip") for p in (obj.get("status") or {}).get("podIPs") or []] or \
                    [(obj.get("status") or {}).get("podIP")]:
                if ip:
                    (self.pod_ips.setdefault(ip, set()).add if add else self.pod_ips.get(ip, set()).discard)(ns)

    # -- reading -------------------------------------------------------------------------------

    def exposed(self, namespace: str) -> bool:
        if self.config.namespaces and namespace not in self.config.namespaces:
            return False
        return namespace in self.namespaces

    def endpoints(self, svc: Service) -> list[tuple[Endpoint, tuple[Port, ...]]]:
        out = []
        for (ns, _), (name, eps, ports) in sorted(self.slices.items()):
            if ns == svc.namespace and name == svc.name:
                out += [(ep, ports or (Port("", -1, ""),)) for ep in eps]
        return out

    def ep_hostname(self, ep: Endpoint) -> str:
        if ep.hostname:
            return ep.hostname
        if self.config.endpoint_pod_names and ep.pod:
            return ep.pod
        return ep.ip.replace(".", "-").replace(":", "-")

    def zone_of(self, qname: str) -> str | None:
        low = qname.lower()
        best = None
        for z in self.config.zones:
            if z == "." or low == z or low.endswith("." + z):
                if best is None or len(z) > len(best):
                    best = z
        return best

    def soa(self, zone: str) -> RR:
        ttl = min(self.config.ttl, 300)
        return RR(zone, QTYPE.SOA, ttl=ttl, rdata=SOA(f"ns.dns.{zone}", f"hostmaster.{zone}",
                                                      (self.modified & 0xFFFFFFFF, 7200, 1800, 86400, self.config.ttl)))

    def lookup(self, qname: str, qtype: int):
        """A Reply, or NOT_OURS when no zone of this plugin holds the name (or a fallthrough
        zone has nothing: the next plugin answers)."""
        zone = self.zone_of(qname)
        if zone is None:
            return NOT_OURS
        reply = self._lookup(qname, qtype, zone)
        if reply is NOT_OURS:
            return NOT_OURS
        if reply.rcode == RCODE.NXDOMAIN and self._falls_through(qname):
            return NOT_OURS
        if reply.rcode == RCODE.NXDOMAIN or (reply.rcode == RCODE.NOERROR and not reply.answer):
            reply.authority = [self.soa(zone)]
        return reply

    def _falls_through(self, qname: str) -> bool:
        fall = self.config.fallthrough
        if fall is None:
            return False
        low = qname.lower()
        return not fall or any(z == "." or low == z or low.endswith("." + z) for z in fall)

    def _lookup(self, qname: str, qtype: int, zone: str):
        if zone.endswith(("in-addr.arpa.", "ip6.arpa.")):
            return self._reverse(qname, qtype)
        low = qname.lower()
        ttl = self.config.ttl
        if low == zone:
            return self._apex(qname, qtype, zone)
        base = low[: -len(zone) - 1]
        if qtype == QTYPE.TXT and base == "dns-version":
            return Reply(answer=[RR(qname, QTYPE.TXT, ttl=28800, rdata=TXT(DNS_SCHEMA_VERSION))])
        if base == "ns.dns":
            ips = self.dns_service_ips()
            rtype, cls = (QTYPE.A, A) if qtype == QTYPE.A else (QTYPE.AAAA, AAAA)
            fam = 4 if qtype == QTYPE.A else 6
            return Reply(answer=[RR(qname, rtype, ttl=ttl, rdata=cls(ip)) for ip in ips
                                 if ipaddress.ip_address(ip).version == fam and qtype in (QTYPE.A, QTYPE.AAAA)])
        found = self.records(base)
        if found is None:
            return Reply(RCODE.NXDOMAIN)
        if qtype == QTYPE.A or qtype == QTYPE.AAAA:
            return Reply(answer=self._addresses(qname, qtype, found, zone))
        if qtype == QTYPE.SRV:
            answer, extra = self._srv(qname, found, zone)
            return Reply(answer=answer, additional=extra)
        if qtype == QTYPE.CNAME:
            return Reply(answer=[RR(qname, QTYPE.CNAME, ttl=ttl, rdata=CNAME(h))
                                 for h, _, _ in found[:1] if _kind(h) == "name"])
        return Reply()                  # the name exists: NODATA for every other type

    def _apex(self, qname: str, qtype: int, zone: str) -> Reply:
        if qtype == QTYPE.SOA:
            return Reply(answer=[self.soa(zone)])
        if qtype == QTYPE.NS:
            ns = f"ns.dns.{zone}"
            return Reply(answer=[RR(qname, QTYPE.NS, ttl=self.config.ttl, rdata=NS(ns))],
                         additional=[RR(ns, QTYPE.A, ttl=self.config.ttl, rdata=A(ip))
                                     for ip in self.dns_service_ips() if "." in ip])
        return Reply()

    def dns_service_ips(self) -> list[str]:
        """The ClusterIP(s) of the Service(s) whose endpoints include this DNS pod (nsAddrs);
        the pod's own IPs when none does yet."""
        mine = set(self.own_ips)
        ips = []
        for svc in self.services.values():
            if not svc.headless and any(ep.ip in mine for ep, _ in self.endpoints(svc)):
                ips += [ip for ip in svc.cluster_ips if ip not in ips]
        return ips or list(self.own_ips)

    def records(self, base: str) -> list[tuple[str, int, str]] | None:
        """(host: IP or name, port, owner name for SRV) of a name below the zone; None: the name
        does not exist (NXDOMAIN); []: it exists without records (NODATA)."""
        if base in ("", "svc", "pod"):
            return []
        segs = base.split(".")
        kind = segs[-1]
        if kind not in ("svc", "pod"):
            return None
        rest = segs[:-1]
        namespace = rest[-1] if rest else ""
        if not self.exposed(namespace) or (kind == "pod" and self.config.pods == "disabled"):
            return None
        if len(rest) == 1:
            return []
        if len(rest) > 4:
            return None
        name = rest[-2]
        endpoint = port = proto = ""
        if len(rest) == 3:
            endpoint = rest[0]
        elif len(rest) == 4:
            port, proto = rest[0].removeprefix("_"), rest[1].removeprefix("_")
        if kind == "pod":
            return self._pod(namespace, name) if len(rest) == 2 else None
        return self._services(namespace, name, endpoint, port, proto)

    def _pod(self, namespace: str, name: str) -> list | None:
        if self.config.pods == "disabled":
            return None
        ip = name.replace("-", ".") if name.count("-") == 3 and "--" not in name else name.replace("-", ":")
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return None
        if self.config.pods == "verified" and namespace not in self.pod_ips.get(ip, ()):
            return None
        return [(ip, 0, "")]

    def _services(self, namespace: str, name: str, endpoint: str, port: str, proto: str) -> list | None:
        svc = self.services.get((namespace, name))
        if svc is None:
            return None
        found: list | None = None
        if svc.type == "ExternalName":
            return None if endpoint else [(svc.external_name.rstrip(".") + ".", 0, "")]
        if svc.headless or endpoint:
            eps = self.endpoints(svc)
            if self.config.ignore_empty_service and not svc.headless and not eps:
                return None
            for ep, ports in eps:
                host = self.ep_hostname(ep)
                if endpoint and endpoint != host.lower():
                    continue
                for p in ports:
                    if _match(port, p.name) and _match(proto, p.protocol):
                        found = (found or []) + [(ep.ip, p.port, f"{host}.{svc.name}.{svc.namespace}")]
            return found
        if self.config.ignore_empty_service and not self.endpoints(svc):
            return None
        for p in svc.ports:
            if _match(port, p.name) and _match(proto, p.protocol):
                found = (found or []) + [(ip, p.port, f"{svc.name}.{svc.namespace}") for ip in svc.cluster_ips]
        return found

    def _addresses(self, qname: str, qtype: int, found: list, zone: str) -> list:
        ttl, out, seen = self.config.ttl, [], set()
        want = 4 if qtype == QTYPE.A else 6
        for host, _, _ in found:
            kind = _kind(host)
            if kind == "name":
                out.append(RR(qname, QTYPE.CNAME, ttl=ttl, rdata=CNAME(host)))
                if host.lower().endswith("." + zone) and host.lower() != qname.lower():
                    inner = self._lookup(host, qtype, zone)
                    if inner is not NOT_OURS:
                        out += inner.answer
            elif kind == want and host not in seen:
                seen.add(host)
                out.append(RR(qname, qtype, ttl=ttl, rdata=A(host) if want == 4 else AAAA(host)))
        return out

    def _srv(self, qname: str, found: list, zone: str) -> tuple[list, list]:
        ttl = self.config.ttl
        usable = [f for f in found if f[1] != -1 and _kind(f[0]) != "name"]
        weight = max(1, int(100 / len(found))) if found else 0      # 100/N, N counting every entry
        answer, extra, seen_srv, seen_addr = [], [], set(), set()
        for host, port, owner in usable:
            target = f"{owner}.svc.{zone}"
            if (target, port) not in seen_srv:
                seen_srv.add((target, port))
                answer.append(RR(qname, QTYPE.SRV, ttl=ttl, rdata=SRV(0, weight, port, target)))
            if (target, host) not in seen_addr:
                seen_addr.add((target, host))
                fam = _kind(host)
                extra.append(RR(target, QTYPE.A if fam == 4 else QTYPE.AAAA, ttl=ttl,
                                rdata=A(host) if fam == 4 else AAAA(host)))
        return answer, extra

    def _reverse(self, qname: str, qtype: int):
        ip = reverse_ip(qname)
        if ip is None or qtype != QTYPE.PTR:
            return Reply(RCODE.NXDOMAIN)
        zone = next((z for z in self.config.zones if not z.endswith(("in-addr.arpa.", "ip6.arpa."))), "cluster.local.")
        names = []
        for svc in self.services.values():
            if ip in svc.cluster_ips:
                names.append(f"{svc.name}.{svc.namespace}.svc.{zone}")
        if not names:
            for svc in self.services.values():
                names += [f"{self.ep_hostname(ep)}.{svc.name}.{svc.namespace}.svc.{zone}"
                          for ep, _ in self.endpoints(svc) if ep.ip == ip]
        if not names:
            return Reply(RCODE.NXDOMAIN)
        return Reply(answer=[RR(qname, QTYPE.PTR, ttl=self.config.ttl, rdata=PTR(n))
                             for n in dict.fromkeys(names)])


def _match(want: str, have: str) -> bool:
    return not want or want.lower() == (have or "").lower()


def _kind(host: str):
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return "name"


def reverse_ip(qname: str) -> str | None:
    """``4.3.2.1.in-addr.arpa.`` -> ``1.2.3.4`` (and ip6.arpa nibbles); None when malformed."""
    low = qname.lower().rstrip(".")
    try:
        if low.endswith(".in-addr.arpa"):
            parts = low[: -len(".in-addr.arpa")].split(".")
            if len(parts) != 4:
                return None
            return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        if low.endswith(".ip6.arpa"):
            nibbles = low[: -len(".ip6.arpa")].split(".")
            if len(nibbles) != 32:
                return None
            return str(ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16)))
    except ValueError:
        return None
    return None


def shuffle_addresses(answer: list, rng=random) -> list:
    """The loadbalance plugin: A/AAAA records in a random order, others where they were."""
    addrs = [rr for rr in answer if rr.rtype in (QTYPE.A, QTYPE.AAAA)]
    if len(addrs) < 2:
        return answer
    rng.shuffle(addrs)
    it = iter(addrs)
    return [next(it) if rr.rtype in (QTYPE.A, QTYPE.AAAA) else rr for rr in answer]
