"""kube-proxy IPVS mode (upstream kubernetes v1.32 pkg/proxy/ipvs).

The mode's shape, as every mode's: pure planner -> applier -> cleanup -> tracer -> proxier.
planner.py plans one service port (virtual servers, real servers, ipset entries; upstream
syncProxyRules + syncEndpoint); cache.py keeps every port's plan and the node's aggregate, so a
one-Service change re-plans one Service and yields the difference (``Delta``); sets.py holds the
ipsets (names, types, entry spelling, save/restore text), rules.py the fixed iptables chains that
match them, ipvsadm.py the ``ipvsadm -Sn`` form. The applier side: kernel.py reads and writes
IPVS and kube-ipvs0 through pyroute2 netlink (never ipvsadm processes), diff.py compares what is
wanted with what the kernel holds, apply.py sends only the differences (IPVS by netlink, ipsets in
one ``ipset restore``, iptables in one restore through ../xtables), graceful.py drains removed real
servers (weight 0, deleted when their connections end or after a timeout). cleanup.py removes
what the mode left, trace.py answers ``netemu trace`` for an IPVS node, proxier.py runs it all.

``render()`` is the one-call entry for fixtures: Service and EndpointSlice dicts in, Plan out;
``rendering()`` is the registry's renderer hook (``netemu proxy render --mode ipvs``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any, Iterable, Mapping

from ..model import NodeInfo, ProxyConfig, endpoints_by_service_port, seen_by_kube_proxy, service_port_map
from ..modes import Rendering
from . import ipvsadm, sets
from .cache import plan
from .planner import node_context
from .state import DEFAULT_SCHEDULER, Plan

__all__ = ["Plan", "render", "rendering"]


def render(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]], node: NodeInfo,
           config: ProxyConfig | None = None, *, scheduler: str = DEFAULT_SCHEDULER,
           problems: list[str] | None = None) -> Plan:
    """Full-sync state for Service and EndpointSlice dicts; the node's addresses are ``node.ips``
    (NodePort virtual servers are made on them, external IPs among them are not bound)."""
    config = config or ProxyConfig()
    svc_map = service_port_map(seen_by_kube_proxy(services), node, problems=problems)
    eps_map = endpoints_by_service_port(seen_by_kube_proxy(slices), node, problems=problems)
    return plan(svc_map, eps_map, node_context(node, config, node.ips, scheduler), config)


def nodeport_config(config: ProxyConfig | None, nodeport_addresses: Iterable[str] | None) -> ProxyConfig:
    """``config`` with ``--nodeport-addresses`` (CIDRs, each flag may hold a comma-separated list)
    applied; ValueError naming the flag for one that is not a CIDR. None: keep the config's (every
    node address by default, as upstream's IPVS mode)."""
    config = config or ProxyConfig()
    if nodeport_addresses is None:
        return config
    return replace(config, nodeport_addresses=cidrs(nodeport_addresses, "--nodeport-addresses"))


def cidrs(values: Iterable[str], flag: str) -> tuple[str, ...]:
    """Normalised CIDRs from repeated and/or comma-separated flag values; ValueError naming the
    flag for one that is not a CIDR."""
    out = []
    for raw in (c.strip() for v in values for c in v.split(",") if c.strip()):
        try:
            out.append(str(ipaddress.ip_network(raw, strict=False)))
        except ValueError:
            raise ValueError(f"{flag} {raw!r} is not a CIDR") from None
    return tuple(out)


def rendering(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]], node: NodeInfo,
              config: ProxyConfig | None = None, *, problems: list[str] | None = None,
              ipvs_scheduler: str = DEFAULT_SCHEDULER, nodeport_addresses: Iterable[str] | None = None) -> Rendering:
    """The registry's renderer hook: the virtual servers as ``ipvsadm -Sn`` prints them, the sets
    as ``ipset save`` prints them, then the fixed chains' ``iptables-restore`` input."""
    config = nodeport_config(config, nodeport_addresses)
    result = render(services, slices, node, config, scheduler=ipvs_scheduler, problems=problems)
    ipv6 = node.ip_family == "IPv6"
    text = ipvsadm.save_text(result.services, result.reals) + sets.save_text(result.ipsets, ipv6) + result.iptables
    n_reals = sum(len(r) for r in result.reals.values())
    n_entries = sum(len(e) for e in result.ipsets.values())
    n_rules = sum(1 for line in result.iptables.splitlines() if line.startswith("-A "))
    summary = (f"{len(result.services)} virtual servers, {n_reals} real servers, {n_entries} ipset entries, "
               f"{n_rules} iptables rules")
    return Rendering(text, summary, None)
