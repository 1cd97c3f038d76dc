"""The IPVS planner: one service port in, its virtual servers, real servers, ipset entries out.

A pure port of the per-Service body of syncProxyRules() and of syncEndpoint() in kubernetes v1.32
pkg/proxy/ipvs/proxier.go. For each service port:
- a virtual server on the ClusterIP (bound to kube-ipvs0), one on each external IP and each
  load-balancer IP (bound unless the address is already the node's), one per node address for a
  NodePort; scheduler from --ipvs-scheduler, FLAG_PERSISTENT and the affinity timeout for
  ClientIP affinity, FLAG_SOURCE_HASH with the mh scheduler;
- real servers, weight 1: the ClusterIP's from the internal traffic policy, the others' from the
  external one. A Local policy takes this node's endpoints, or, with none, the cluster's
  (upstream PR 97081: pods on this node can still reach the Service; a client from outside is
  answered by the remote pod directly and the reply is dropped);
- entries of the sets the fixed iptables chains match (sets.py, rules.py).
Where upstream skips the rest of a port (a NodePort when the node has no address for it), so do
we. The applier, not the planner, gives weight 0 to real servers on their way out.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

from netemu.agent.proxy.categorize import categorize_endpoints
from netemu.agent.proxy.model import EndpointInfo, NodeInfo, ProxyConfig, ServicePortInfo

from . import sets as S
from .state import DEFAULT_SCHEDULER, FLAG_PERSISTENT, FLAG_SOURCE_HASH, RealServer, VirtualServer, VSKey


class Service(NamedTuple):
    """One virtual server of a port plan: the server, its real servers, bound to kube-ipvs0?"""

    server: VirtualServer
    reals: tuple[RealServer, ...]
    bind: bool


class PortPlan(NamedTuple):
    services: tuple[Service, ...]
    entries: tuple[tuple[str, str], ...]              # (set's IPv4 name, entry)
    no_node_access: tuple[tuple[str, str, int], ...]  # (LB IP, protocol, port): KUBE-IPVS-OUT-FILTER
    no_local_internal: bool                           # upstream serviceNoLocalEndpointsInternal
    no_local_external: bool


@dataclass(frozen=True)
class NodeContext:
    """What the plan of every port needs to know of the node.

    ``local_addresses``: the node's addresses except kube-ipvs0's, of its family, neither loopback
    nor IPv6 link-local (upstream GetAllLocalAddressesExcept + isValidForSet): external and LB
    IPs among them are not bound to kube-ipvs0. ``nodeport_ips``: the addresses NodePort virtual
    servers are made on (``--nodeport-addresses`` applied to them)."""

    node: NodeInfo
    local_addresses: tuple[str, ...] = ()
    nodeport_ips: tuple[str, ...] = ()
    scheduler: str = DEFAULT_SCHEDULER
    local_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "local_set", frozenset(self.local_addresses))


def node_context(node: NodeInfo, config: ProxyConfig, addresses: Iterable[str] | None = None,
                 scheduler: str = DEFAULT_SCHEDULER) -> NodeContext:
    """The context from the node's addresses (read from the kernel, or ``node.ips``)."""
    ipv6 = node.ip_family == "IPv6"
    local = tuple(dict.fromkeys(a for a in map(_canon, node.ips if addresses is None else addresses)
                                if a and _valid_for_set(a, ipv6)))
    cidrs = [c for c in config.nodeport_addresses if (":" in c) == ipv6]
    if not cidrs or any(ipaddress.ip_network(c, strict=False).prefixlen == 0 for c in cidrs):
        nodeport = local                      # upstream NodePortAddresses.MatchAll()
    else:
        nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
        nodeport = tuple(a for a in local if any(ipaddress.ip_address(a) in n for n in nets))
    return NodeContext(node, local, nodeport, scheduler)


def _canon(ip: str) -> str | None:
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


def _valid_for_set(ip: str, ipv6: bool) -> bool:
    """upstream netlinkHandle.isValidForSet: the family's, not loopback, not IPv6 link-local."""
    addr = ipaddress.ip_address(ip)
    if (addr.version == 6) != ipv6 or addr.is_loopback:
        return False
    return not (ipv6 and addr.is_link_local)


def plan_port(info: ServicePortInfo, endpoints: Sequence[EndpointInfo], ctx: NodeContext) -> PortPlan:
    """The virtual servers, set entries and firewall facts of one service port."""
    proto, p, port = info.protocol, info.protocol.lower(), info.port
    flags = FLAG_SOURCE_HASH if ctx.scheduler == "mh" else 0
    timeout = 0
    if info.session_affinity == "ClientIP":
        flags, timeout = flags | FLAG_PERSISTENT, info.sticky_max_age_seconds

    def server(addr: str, vport: int) -> VirtualServer:
        return VirtualServer(VSKey(proto, addr, vport), ctx.scheduler, flags, timeout)

    choose = _Chooser(info, endpoints, ctx.node.labels)
    entries = [(S.LOOP_BACK, S.ip_port_ip(ep.ip, p, ep.port, ep.ip)) for ep in endpoints if ep.is_local]
    entries.append((S.CLUSTER_IP, S.ip_port(info.cluster_ip, p, port)))
    services = [Service(server(info.cluster_ip, port), choose(info.internal_policy_local), True)]
    etp = info.external_policy_local
    for ip in info.external_ips:
        entries.append((S.EXTERNAL_IP_LOCAL if info.external_policy_local else S.EXTERNAL_IP, S.ip_port(ip, p, port)))
        services.append(Service(server(ip, port), choose(etp), ip not in ctx.local_set))
    no_access: list[tuple[str, str, int]] = []
    for ip in info.load_balancer_vips:
        entry = S.ip_port(ip, p, port)
        entries.append((S.LOAD_BALANCER, entry))
        if info.external_policy_local:
            entries.append((S.LOAD_BALANCER_LOCAL, entry))
        if info.load_balancer_source_ranges:
            entries.append((S.LOAD_BALANCER_FW, entry))
            entries += [(S.LOAD_BALANCER_SOURCE_CIDR, S.ip_port_net(ip, p, port, c))
                        for c in info.load_balancer_source_ranges]
            if _contains_any(info.load_balancer_source_ranges, ctx.node.primary_ip):
                entries.append((S.LOAD_BALANCER_SOURCE_IP, S.ip_port_ip(ip, p, port, ip)))
            else:
                no_access.append((ip, p, port))
        services.append(Service(server(ip, port), choose(etp), ip not in ctx.local_set))
    if info.node_port:
        if not ctx.nodeport_ips:    # upstream: `continue`, the health check port is skipped too
            return choose.result(services, entries, no_access)
        if proto == "SCTP":
            np_set, np_local = S.NODE_PORT_SCTP, S.NODE_PORT_LOCAL_SCTP
            np_entries = [S.ip_port(ip, p, info.node_port) for ip in ctx.nodeport_ips]
        else:
            np_set = S.NODE_PORT_TCP if proto == "TCP" else S.NODE_PORT_UDP
            np_local = S.NODE_PORT_LOCAL_TCP if proto == "TCP" else S.NODE_PORT_LOCAL_UDP
            np_entries = [str(info.node_port)]
        entries += [(np_set, e) for e in np_entries]
        if info.external_policy_local:
            entries += [(np_local, e) for e in np_entries]
        services += [Service(server(ip, info.node_port), choose(etp), False) for ip in ctx.nodeport_ips]
    if info.health_check_node_port:
        entries.append((S.HEALTH_CHECK_NODE_PORT, str(info.health_check_node_port)))
    return choose.result(services, entries, no_access)


class _Chooser:
    """upstream syncEndpoint's choice of real servers, categorising the endpoints once per port,
    and the "no local endpoints" facts it records on the way."""

    def __init__(self, info: ServicePortInfo, endpoints: Sequence[EndpointInfo], labels):
        self.info = info
        self.cat = categorize_endpoints(endpoints, info, labels)
        self.no_internal = self.no_external = False
        self._memo: dict[bool, tuple[RealServer, ...]] = {}

    def __call__(self, only_local: bool) -> tuple[RealServer, ...]:
        if only_local not in self._memo:
            cat, chosen = self.cat, self.cat.cluster
            if only_local and cat.local:
                chosen = cat.local
            elif only_local and cat.has_any:
                self.no_internal |= self.info.internal_policy_local
                self.no_external |= self.info.external_policy_local
            self._memo[only_local] = tuple(RealServer(ep.ip, ep.port) for ep in chosen)
        return self._memo[only_local]

    def result(self, services: list[Service], entries: list[tuple[str, str]],
               no_access: list[tuple[str, str, int]]) -> PortPlan:
        return PortPlan(tuple(services), tuple(entries), tuple(no_access), self.no_internal, self.no_external)


def _contains_any(cidrs: Iterable[str], ip: str | None) -> bool:
    if not ip:
        return False
    addr = ipaddress.ip_address(ip)
    return any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)
