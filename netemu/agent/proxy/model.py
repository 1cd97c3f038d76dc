"""The proxy's object model: the contract every proxy mode (iptables, nftables, ipvs) builds from.

Reference: kubernetes v1.32, pkg/proxy/serviceport.go (BaseServicePortInfo),
pkg/proxy/servicechangetracker.go (serviceToServiceMap), pkg/proxy/endpoint.go
(BaseEndpointInfo), pkg/proxy/endpointslicecache.go (addEndpoints / getEndpointsMap) and
cmd/kube-proxy's informer filter (service-proxy-name and headless labels: seen_by_kube_proxy).

Everything here is a pure function of Kubernetes JSON dicts. Bad input never raises: the
offending Service port or endpoint is skipped, the reason is logged (and appended to
``problems`` when the caller passes a list, so a CLI or test can show it), and the rest is kept
-- a kube-proxy that crashes on one bad object takes every Service on the node down with it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

log = logging.getLogger(__name__)

PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"
# cmd/kube-proxy (kubernetes v1.32 cmd/kube-proxy/app/server.go, ProxyServer.Run) lists and
# watches Services and EndpointSlices only through this selector: an object carrying either
# label, whatever its value (even ""), never reaches the proxier.
PROXY_LABEL_SELECTOR = f"!{SERVICE_PROXY_NAME_LABEL},!{HEADLESS_LABEL}"
ZONE_LABEL = "topology.kubernetes.io/zone"
HINTS_ANNOTATION = "service.kubernetes.io/topology-aware-hints"  # deprecated upstream name
TOPOLOGY_MODE_ANNOTATION = "service.kubernetes.io/topology-mode"
DEFAULT_CLIENT_IP_TIMEOUT = 10800  # v1.DefaultClientIPServiceAffinitySeconds


class ServiceName(NamedTuple):
    """namespace/name of a Service: the unit of change for partial syncs (KEP-3453)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class ServicePortName(NamedTuple):
    """One port of one Service, as upstream's proxy.ServicePortName.

    ``str()`` is upstream's String(): "ns/name:port", or "ns/name" for an unnamed port. The
    protocol is part of the identity but not of the string (it is hashed separately into
    chain names).
    """

    namespace: str
    name: str
    port: str
    protocol: str

    def __str__(self) -> str:
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port}" if self.port else base

    @property
    def service(self) -> ServiceName:
        return ServiceName(self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class ServicePortInfo:
    """What the proxy needs of one Service port (upstream BaseServicePortInfo)."""

    name: ServicePortName
    cluster_ip: str
    port: int
    protocol: str = "TCP"
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_vips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity: str = "None"  # "None" | "ClientIP"
    sticky_max_age_seconds: int = DEFAULT_CLIENT_IP_TIMEOUT
    external_policy_local: bool = False
    internal_policy_local: bool = False
    health_check_node_port: int = 0
    # Informational: upstream >= 1.31 decides topology from the endpoints' hints alone (the
    # EndpointSlice controller only sets hints when the annotation/trafficDistribution asks).
    hints_annotation: str = ""
    traffic_distribution: str = ""

    @property
    def externally_accessible(self) -> bool:
        """Reachable from outside: a NodePort, a load-balancer VIP or an external IP."""
        return self.node_port != 0 or bool(self.load_balancer_vips) or bool(self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        """Some traffic to this port is spread over the whole cluster's endpoints: internal
        traffic under Cluster policy, or any external traffic at all (even with ETP Local the
        pod/node short-circuit of KUBE-EXT goes to the cluster-wide chain)."""
        return not self.internal_policy_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        """Some traffic to this port may only go to this node's endpoints."""
        return self.internal_policy_local or (self.external_policy_local and self.externally_accessible)


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One endpoint of one Service port (upstream BaseEndpointInfo)."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    is_local: bool = False
    zone_hints: frozenset[str] = frozenset()
    node_name: str | None = None
    # "ip:port" (IPv6 bracketed), upstream's String(): hashed into KUBE-SEP- names and used
    # in every endpoint rule, so it is computed once here rather than per rule.
    endpoint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ep = f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"
        object.__setattr__(self, "endpoint", ep)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The node this proxy programs.

    ``ips``: the node's IPs, primary first (upstream's nodeIP is the primary; it decides
    whether loadBalancerSourceRanges must also admit the VIP as a source).
    ``cluster_cidr``: the pod range used to tell pod traffic from the rest (upstream
    --detect-local-mode=ClusterCIDR). None means local-traffic detection is not implemented,
    exactly like upstream without a cluster CIDR: the masquerade-off-cluster rule and the
    ETP=Local pod short-circuit are then left out. ``bridge_interface`` / ``interface_prefix``
    select upstream's BridgeInterface / InterfaceNamePrefix modes instead.
    """

    name: str
    ips: tuple[str, ...] = ()
    cluster_cidr: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    bridge_interface: str | None = None
    interface_prefix: str | None = None
    ip_family: str = "IPv4"

    @property
    def primary_ip(self) -> str | None:
        return self.ips[0] if self.ips else None

    @property
    def detects_local(self) -> bool:
        return bool(self.cluster_cidr or self.bridge_interface or self.interface_prefix)

    def if_local(self) -> tuple[str, ...]:
        """iptables match for traffic that comes from a pod on this node (or cluster)."""
        if self.cluster_cidr:
            return ("-s", self.cluster_cidr)
        if self.bridge_interface:
            return ("-i", self.bridge_interface)
        if self.interface_prefix:
            return ("-i", self.interface_prefix + "+")
        return ()

    def if_not_local(self) -> tuple[str, ...]:
        m = self.if_local()
        return ("!",) + m if m else ()


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """kube-proxy settings that change the rules (upstream KubeProxyConfiguration subset).

    Defaults are upstream's defaults, except ``nfacct`` (the per-rule nfacct counters need
    the xt_nfacct module and counters created first; off unless the applier made them).
    """

    masquerade_bit: int = 14
    masquerade_all: bool = False
    random_fully: bool = True
    localhost_nodeports: bool = True
    nfacct: bool = False
    conntrack_tcp_liberal: bool = False
    nodeport_addresses: tuple[str, ...] = ()  # CIDRs; empty = every local address
    service_cidrs: tuple[str, ...] = ()       # the cluster's Service CIDRs (upstream: its ServiceCIDRs)
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    large_cluster_threshold: int = 1000
    # netemu's knob for experiments (upstream always cleans): False leaves stale UDP conntrack
    # entries of removed endpoints in place, to show what the cleanup is for
    conntrack_cleanup: bool = True

    @property
    def masquerade_mark(self) -> str:
        """The mark as iptables-save prints it ("0x4000" for bit 14): what users diff against."""
        return hex(1 << self.masquerade_bit)


# --------------------------------------------------------------------------- Services


def _problem(problems: list[str] | None, msg: str) -> None:
    """Record why something was skipped: to the caller's list if it collects, else the log."""
    if problems is not None:
        problems.append(msg)
        log.debug("%s", msg)
    else:
        log.warning("%s", msg)


def parse_ip(ip: Any) -> tuple[str, str] | None:
    """(family, canonical text) of an IP string, None if it is not one.

    inet_pton/inet_ntop (C) instead of the ipaddress module: 10k Services x 5 endpoints means
    60k addresses per full parse, and ipaddress spends ~20 us on each.
    """
    if not isinstance(ip, str):
        return None
    text = ip.strip()
    fam = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        canon = socket.inet_ntop(fam, socket.inet_pton(fam, text))
    except (OSError, ValueError):
        return None
    return ("IPv6" if fam == socket.AF_INET6 else "IPv4"), canon


def _ip_family(ip: str) -> str | None:
    parsed = parse_ip(ip)
    return parsed[0] if parsed else None


def _canon_ip(ip: str) -> str:
    parsed = parse_ip(ip)
    if parsed is None:
        raise ValueError(f"not an IP address: {ip!r}")
    return parsed[1]


def _cluster_ip(spec: Mapping[str, Any], family: str) -> str | None:
    """The Service's ClusterIP of our family (upstream GetClusterIPByFamily)."""
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    for ip in ips:
        if isinstance(ip, str) and _ip_family(ip) == family:
            return _canon_ip(ip)
    return None


def label_skip_reason(obj: Mapping[str, Any]) -> str | None:
    """Why kube-proxy's informers filter this Service or EndpointSlice out (PROXY_LABEL_SELECTOR).

    Only what stands in for those informers applies it (the feed asks the API server to; render
    and ``Proxier.load`` filter their inputs): the model itself, like upstream's
    ShouldSkipService, ignores labels, so the deletion the informer reports when a label is
    added -- carrying the labelled object -- still removes the Service's rules."""
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    if not isinstance(labels, Mapping):
        return None
    if SERVICE_PROXY_NAME_LABEL in labels:
        return f"has label {SERVICE_PROXY_NAME_LABEL} (served by another proxy)"
    if HEADLESS_LABEL in labels:
        return f"has label {HEADLESS_LABEL}"
    return None


def seen_by_kube_proxy(objs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The Services or EndpointSlices kube-proxy's label-selected informers would deliver (what
    is not even an object is passed on, for the model to report)."""
    return [o for o in objs if not (isinstance(o, Mapping) and label_skip_reason(o))]


def skip_reason(service: Mapping[str, Any]) -> str | None:
    """Why upstream kube-proxy would not proxy this Service it was told about (ShouldSkipService)."""
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return "type ExternalName (DNS only)"
    cip = spec.get("clusterIP")
    if cip in (None, "", "None"):
        return f"headless (clusterIP={cip!r})"
    return None


def _int_field(value: Any, lo: int, hi: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        return None
    return value


def _source_ranges(spec: Mapping[str, Any], family: str, where: str,
                   problems: list[str] | None) -> tuple[str, ...]:
    """loadBalancerSourceRanges of our family, trimmed and normalised (MapCIDRsByIPFamily)."""
    out = []
    for raw in spec.get("loadBalancerSourceRanges") or ():
        try:
            net = ipaddress.ip_network(str(raw).strip(), strict=False)
        except ValueError:
            _problem(problems, f"{where}: ignoring invalid loadBalancerSourceRange {raw!r}")
            continue
        if ("IPv6" if net.version == 6 else "IPv4") == family:
            out.append(str(net))
    if any(c.endswith("/0") for c in out):
        return ()  # a zero-masked range means "allow any", the same as no ranges (upstream)
    return tuple(out)


def _ips_of_family(values: Iterable[Any], family: str, what: str, where: str,
                   problems: list[str] | None) -> tuple[str, ...]:
    out = []
    for raw in values:
        fam = _ip_family(raw) if isinstance(raw, str) else None
        if fam is None:
            _problem(problems, f"{where}: ignoring invalid {what} {raw!r}")
        elif fam == family:
            out.append(_canon_ip(raw))
    return tuple(out)


def _lb_vips(service: Mapping[str, Any], family: str, where: str,
             problems: list[str] | None) -> tuple[str, ...]:
    """Ingress IPs in VIP mode and of our family (ipMode Proxy LBs are not ours to capture)."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
    ips = [i.get("ip") for i in ingress
           if isinstance(i, Mapping) and i.get("ip") and i.get("ipMode", "VIP") == "VIP"]
    return _ips_of_family(ips, family, "load-balancer ingress IP", where, problems)


def service_ports(service: Mapping[str, Any], node: NodeInfo | None = None, *,
                  problems: list[str] | None = None) -> dict[ServicePortName, ServicePortInfo]:
    """The proxied ports of one Service dict (upstream serviceToServiceMap + newBaseServiceInfo).

    Returns {} for Services upstream ignores (headless, ExternalName, service-proxy-name).
    A bad port (out of range, unknown protocol) is skipped with a reason; the others stay.
    """
    family = node.ip_family if node else "IPv4"
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    ns, name = meta.get("namespace") or "default", meta.get("name")
    where = f"Service {ns}/{name}"
    if not name:
        _problem(problems, "Service without metadata.name skipped")
        return {}
    reason = skip_reason(service)
    if reason:
        log.debug("%s not proxied: %s", where, reason)
        return {}
    cluster_ip = _cluster_ip(spec, family)
    if cluster_ip is None:
        _problem(problems, f"{where} skipped: no valid {family} clusterIP in {spec.get('clusterIP')!r}")
        return {}

    svc_type = spec.get("type") or "ClusterIP"
    external_ips = _ips_of_family(spec.get("externalIPs") or (), family, "externalIP", where, problems)
    # apiservice.ExternallyAccessible: the raw spec counts, whatever the IPs' family
    externally = svc_type in ("NodePort", "LoadBalancer") or (
        svc_type == "ClusterIP" and bool(spec.get("externalIPs")))
    etp_local = externally and spec.get("externalTrafficPolicy") == "Local"
    itp_local = spec.get("internalTrafficPolicy") == "Local"
    affinity = spec.get("sessionAffinity") or "None"
    timeout = DEFAULT_CLIENT_IP_TIMEOUT
    if affinity == "ClientIP":
        raw = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
        if raw is not None:
            timeout = _int_field(raw, 1, 86400) or DEFAULT_CLIENT_IP_TIMEOUT
            if timeout != raw:
                _problem(problems, f"{where}: invalid sessionAffinity timeout {raw!r}, using {timeout}")
    elif affinity != "None":
        _problem(problems, f"{where}: unknown sessionAffinity {affinity!r}, using None")
        affinity = "None"
    hc = 0
    if svc_type == "LoadBalancer" and etp_local:
        hc = _int_field(spec.get("healthCheckNodePort"), 1, 65535) or 0
        if not hc:
            _problem(problems, f"{where}: has no valid healthCheckNodePort")
    annotations = meta.get("annotations") or {}
    common = dict(
        cluster_ip=cluster_ip, external_ips=external_ips,
        load_balancer_vips=_lb_vips(service, family, where, problems),
        load_balancer_source_ranges=_source_ranges(spec, family, where, problems),
        session_affinity=affinity, sticky_max_age_seconds=timeout,
        external_policy_local=etp_local, internal_policy_local=itp_local, health_check_node_port=hc,
        hints_annotation=annotations.get(HINTS_ANNOTATION) or annotations.get(TOPOLOGY_MODE_ANNOTATION) or "",
        traffic_distribution=spec.get("trafficDistribution") or "",
    )
    out: dict[ServicePortName, ServicePortInfo] = {}
    for i, p in enumerate(spec.get("ports") or ()):
        info = _service_port(p, ns, name, where, i, common, problems)
        if info is not None:
            out[info.name] = info
    return out


def _service_port(p: Any, ns: str, name: str, where: str, i: int, common: dict,
                  problems: list[str] | None) -> ServicePortInfo | None:
    if not isinstance(p, Mapping):
        _problem(problems, f"{where}: spec.ports[{i}] is not an object, skipped")
        return None
    proto = p.get("protocol") or "TCP"
    port = _int_field(p.get("port"), 1, 65535)
    node_port = p.get("nodePort") or 0
    if proto not in PROTOCOLS:
        _problem(problems, f"{where}: spec.ports[{i}] has unknown protocol {proto!r}, skipped")
        return None
    if port is None:
        _problem(problems, f"{where}: spec.ports[{i}].port {p.get('port')!r} out of range 1-65535, skipped")
        return None
    if node_port and _int_field(node_port, 1, 65535) is None:
        _problem(problems, f"{where}: spec.ports[{i}].nodePort {node_port!r} out of range, skipped")
        return None
    spn = ServicePortName(ns, name, str(p.get("name") or ""), proto)
    return ServicePortInfo(name=spn, port=port, protocol=proto, node_port=node_port, **common)


def service_port_map(services: Iterable[Mapping[str, Any]], node: NodeInfo | None = None, *,
                     problems: list[str] | None = None) -> dict[ServicePortName, ServicePortInfo]:
    """service_ports() of many Services merged into one map (upstream ServicePortMap)."""
    out: dict[ServicePortName, ServicePortInfo] = {}
    for svc in services:
        out.update(service_ports(svc, node, problems=problems))
    return out


# --------------------------------------------------------------------------- EndpointSlices


def _slice_endpoints(sl: Mapping[str, Any], node_name: str | None, family: str,
                     problems: list[str] | None, reuse: Mapping | None = None,
                     memo: dict | None = None) -> dict[ServicePortName, dict[str, EndpointInfo]]:
    """Endpoints of one EndpointSlice by service port, keyed by "ip:port" (addEndpoints);
    ``reuse`` / ``memo``: see slice_endpoints."""
    meta = sl.get("metadata") or {}
    ns = meta.get("namespace") or "default"
    where = f"EndpointSlice {ns}/{meta.get('name')}"
    labels = meta.get("labels") or {}
    svc = labels.get(SERVICE_NAME_LABEL)
    if not svc:
        _problem(problems, f"{where} skipped: no {SERVICE_NAME_LABEL} label")
        return {}
    if sl.get("addressType", "IPv4") != family:
        log.debug("%s: addressType %s is not %s", where, sl.get("addressType"), family)
        return {}
    out: dict[ServicePortName, dict[str, EndpointInfo]] = {}
    for i, p in enumerate(sl.get("ports") or ()):
        if not isinstance(p, Mapping):
            _problem(problems, f"{where}: ports[{i}] is not an object, skipped")
            continue
        port, proto = _int_field(p.get("port"), 1, 65535), p.get("protocol") or "TCP"
        if port is None or proto not in PROTOCOLS:
            _problem(problems, f"{where}: ignoring invalid endpoint port {p!r}")
            continue
        spn = ServicePortName(ns, svc, str(p.get("name") or ""), proto)
        eps = out.setdefault(spn, {})
        for ep in sl.get("endpoints") or ():
            key = _memo_key(ep, port)
            hit = reuse.get(key) if reuse is not None and key is not None else None
            if hit is not None and hit[0] == ep:
                info = hit[1]
            else:
                info = _endpoint(ep, port, node_name, family, where, problems)
            if memo is not None and key is not None:
                memo[key] = (ep, info)
            if info is not None and (info.endpoint not in eps or not info.terminating):
                eps[info.endpoint] = info
    return out


def _memo_key(ep: Any, port: int) -> tuple[str, int] | None:
    addrs = ep.get("addresses") if type(ep) is dict else None
    return (addrs[0], port) if type(addrs) is list and addrs and type(addrs[0]) is str else None


def _endpoint(ep: Any, port: int, node_name: str | None, family: str, where: str,
              problems: list[str] | None) -> EndpointInfo | None:
    addrs = ep.get("addresses") if isinstance(ep, Mapping) else None
    if not addrs:
        _problem(problems, f"{where}: ignoring endpoint with no address")
        return None
    parsed = parse_ip(addrs[0])
    if parsed is None or parsed[0] != family:
        _problem(problems, f"{where}: ignoring endpoint with invalid address {addrs[0]!r}")
        return None
    cond = ep.get("conditions") or {}
    ready = cond.get("ready") is not False          # nil means ready
    serving = cond.get("serving") is not False      # nil means serving
    terminating = cond.get("terminating") is True   # nil means not terminating
    hints = (ep.get("hints") or {}).get("forZones") or ()
    ep_node = ep.get("nodeName")
    return EndpointInfo(
        ip=parsed[1], port=port, ready=ready, serving=serving, terminating=terminating,
        is_local=bool(ep_node) and ep_node == node_name,
        zone_hints=frozenset(z.get("name") for z in hints if isinstance(z, Mapping) and z.get("name")),
        node_name=ep_node)


SliceEndpoints = dict[ServicePortName, dict[str, EndpointInfo]]


def slice_endpoints(sl: Mapping[str, Any], node: NodeInfo | str | None = None, *,
                    problems: list[str] | None = None, reuse: Mapping | None = None,
                    memo: dict | None = None) -> SliceEndpoints:
    """One EndpointSlice's share of ``endpoints_by_service_port``: its endpoints by service
    port, keyed by "ip:port" (upstream newEndpointSliceInfo: a change tracker parses each slice
    once, when it changes, and merges the parsed shares of a Service's slices).

    ``memo`` (a dict) is filled with each endpoint's object and parsed info; pass it as
    ``reuse`` when the same slice changes next (same node): endpoints equal to their previous
    version keep their info instead of being parsed again (a pod change leaves 99 of a
    slice's 100 endpoints as they were)."""
    node_name = node.name if isinstance(node, NodeInfo) else node
    family = node.ip_family if isinstance(node, NodeInfo) else "IPv4"
    return _slice_endpoints(sl, node_name, family, problems, reuse, memo)


def merge_slice_endpoints(shares: Iterable[SliceEndpoints]) -> dict[ServicePortName, tuple[EndpointInfo, ...]]:
    """Merge parsed slices, given in (namespace, name) order of their slices (upstream
    getEndpointsMap): duplicates dropped (a non-terminating copy wins: a reused pod IP belongs
    to the running pod); each list sorted by "ip:port" string as upstream does, so chain order
    matches a real node's."""
    merged: dict[ServicePortName, dict[str, EndpointInfo]] = {}
    for share in shares:
        for spn, eps in share.items():
            into = merged.get(spn)
            if into is None:
                merged[spn] = dict(eps)
                continue
            if into.keys().isdisjoint(eps):    # the usual case: no endpoint in two slices
                into.update(eps)
                continue
            for key, info in eps.items():
                if key not in into or not info.terminating:
                    into[key] = info
    return {spn: tuple(map(eps.__getitem__, sorted(eps))) for spn, eps in merged.items() if eps}


def endpoints_by_service_port(slices: Iterable[Mapping[str, Any]], node: NodeInfo | str | None = None, *,
                              problems: list[str] | None = None,
                              ) -> dict[ServicePortName, tuple[EndpointInfo, ...]]:
    """Merge EndpointSlices into endpoints per service port (upstream getEndpointsMap), see
    ``merge_slice_endpoints``. Slices whose Service does not exist are kept: the builder
    simply never looks them up.
    """
    ordered = sorted(slices, key=lambda s: ((s.get("metadata") or {}).get("namespace") or "",
                                            (s.get("metadata") or {}).get("name") or ""))
    return merge_slice_endpoints(slice_endpoints(sl, node, problems=problems) for sl in ordered)
