"""kube-proxy nftables mode (upstream kubernetes v1.32 pkg/proxy/nftables).

The mode's shape, as every mode's: pure builder -> applier -> cleanup -> tracer -> proxier.
names.py holds upstream's hashed chain names; builder.py turns one Service port into its chains,
affinity sets and map elements (a ``Part``); setup.py writes the fixed table; transaction.py
plans each sync's transaction (full, or only what changed, with stale chains flushed then
deleted later); table.py is a table in memory (an ``nft -f`` transaction applied to it, its
dump) and listing.py reads ``nft list table`` output into one. The applier (apply.py) is the only
part that touches the kernel; monitor.py notices a deleted table; cleanup.py removes the table;
trace.py walks a table the way the kernel walks a packet; proxier.py runs it all.

``render()`` is the one-call entry for fixtures and tracers (Service and EndpointSlice dicts in,
the Table a full sync leaves out); ``rendering()`` is the registry's renderer hook.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any, Iterable, Mapping

from ..model import NodeInfo, ProxyConfig, endpoints_by_service_port, seen_by_kube_proxy, service_port_map
from ..modes import Rendering
from .builder import TABLE, make_context
from .table import Table, parse_dump
from .transaction import Planner

# Upstream proxier_test.go's fake node: "test-hostname" with its interface addresses (the
# first is the node IP), pod CIDR 10.0.0.0/8, --nodeport-addresses 192.168.0.2/32 and
# 2001:db8::1/128, Service CIDR 172.30.0.0/16, and the fake's masquerade mark spelling.
UPSTREAM_TEST_NODE = NodeInfo("test-hostname", ("192.168.0.2", "192.168.1.2", "192.168.99.11"), "10.0.0.0/8")
UPSTREAM_TEST_CONFIG = ProxyConfig(nodeport_addresses=("192.168.0.2/32", "2001:db8::1/128"))
UPSTREAM_TEST_SERVICE_CIDRS = ("172.30.0.0/16",)
UPSTREAM_TEST_MARK = "0x4000"

__all__ = ["render", "rendering", "full_sync_text", "Table", "UPSTREAM_TEST_NODE", "UPSTREAM_TEST_CONFIG",
           "UPSTREAM_TEST_SERVICE_CIDRS", "UPSTREAM_TEST_MARK"]


def full_sync_text(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]],
                   node: NodeInfo, config: ProxyConfig | None = None, *, service_cidrs: Iterable[str] = (),
                   masquerade_mark: str | None = None, problems: list[str] | None = None) -> str:
    """The first sync's transaction for these objects (what kube-proxy sends to ``nft -f``)."""
    ctx = make_context(node, config, service_cidrs=tuple(service_cidrs), masquerade_mark=masquerade_mark)
    svc_map = service_port_map(seen_by_kube_proxy(services), node, problems=problems)
    eps_map = endpoints_by_service_port(seen_by_kube_proxy(slices), node, problems=problems)
    return Planner().plan(svc_map, eps_map, ctx, full=True).text


def render(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]],
           node: NodeInfo | None = None, config: ProxyConfig | None = None, *,
           service_cidrs: Iterable[str] = (), masquerade_mark: str | None = None,
           problems: list[str] | None = None) -> Table:
    """The table a full sync leaves in an empty kernel (bad objects skipped, see problems)."""
    node = node or UPSTREAM_TEST_NODE
    text = full_sync_text(services, slices, node, config, service_cidrs=service_cidrs,
                          masquerade_mark=masquerade_mark, problems=problems)
    family = "ip6" if node.ip_family == "IPv6" else "ip"
    table = Table(family, TABLE, exists=False)
    table.apply(text)
    return table


def nodeport_config(config: ProxyConfig | None, node: NodeInfo, nodeport_addresses: Iterable[str] | None) -> ProxyConfig:
    """``config`` with --nodeport-addresses applied: given CIDRs (checked), else upstream's
    nftables default "primary": NodePorts on the node's primary IP only (every address when
    the node IP is unknown)."""
    config = config or ProxyConfig()
    if nodeport_addresses is None:
        if config.nodeport_addresses or node.primary_ip is None:
            return config
        bits = 128 if ":" in node.primary_ip else 32
        return replace(config, nodeport_addresses=(f"{node.primary_ip}/{bits}",))
    return replace(config, nodeport_addresses=tuple(check_cidrs(nodeport_addresses, "--nodeport-addresses")))


def check_cidrs(values: Iterable[str], flag: str) -> list[str]:
    """Normalised CIDRs; ValueError naming the flag for anything else."""
    out = []
    for raw in values:
        try:
            out.append(str(ipaddress.ip_network(raw.strip(), strict=False)))
        except ValueError:
            raise ValueError(f"{flag} {raw!r} is not a CIDR") from None
    return out


def rendering(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]], node: NodeInfo,
              config: ProxyConfig | None = None, *, problems: list[str] | None = None,
              nodeport_addresses: Iterable[str] | None = None, service_cidr: Iterable[str] | None = None,
              transaction: bool = False) -> Rendering:
    """The registry's renderer hook: the table as upstream's test dumps print it (valid ``nft
    -f`` input), or with ``transaction`` the first sync's transaction itself."""
    from .listing import compare

    cidrs = tuple(check_cidrs(service_cidr or (), "--service-cidr"))
    config = nodeport_config(config, node, nodeport_addresses)
    table = render(services, slices, node, config, service_cidrs=cidrs, problems=problems)
    text = full_sync_text(services, slices, node, config, service_cidrs=cidrs) if transaction else table.dump()
    rules = sum(len(c.rules) for c in table.chains.values())
    elements = sum(len(s.elements) for s in table.sets.values())
    summary = (f"table {table.family} {table.name}: {len(table.chains)} chains, {rules} rules, "
               f"{len(table.sets)} sets/maps, {elements} elements")
    return Rendering(text, summary, lambda theirs: compare(table, theirs))


def parse(text: str) -> Table:
    """A Table from our render, a transaction, or ``nft list table`` output."""
    from .listing import parse_any
    return parse_any(text)


__all__ += ["parse", "parse_dump"]
