"""Stale UDP conntrack cleanup after a sync (upstream pkg/proxy/conntrack/cleanup.go).

UDP has no connection end, so a conntrack entry that DNATs a client's flow to a pod lives as long
as the client keeps sending, even after the pod is gone: the client talks into a blackhole (the
most reported kube-proxy problem, e.g. DNS after a CoreDNS restart). After rules that no longer
send new flows to an endpoint are in the kernel, kube-proxy deletes the entries that still do.

``plan_cleanup`` is pure (results of the trackers -> conntrack argv lists); ``Conntrack`` runs
them through the same injectable Exec as iptables. Like upstream's conntrack CLI wrapper, "0 flow
entries" (exit 1 with that message) is not an error.
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping

from netemu.agent.proxy.commands import Exec, Result, local_exec
from netemu.agent.proxy.model import ServicePortInfo, ServicePortName
from netemu.agent.proxy.tracker import UpdateEndpointsMapResult, UpdateServiceMapResult

log = logging.getLogger(__name__)


def clear_entries_for_ip(ip: str, protocol: str = "udp") -> list[str]:
    """Every flow whose original destination is ``ip`` (a UDP ClusterIP that went away)."""
    return ["conntrack", "-D", "--orig-dst", ip, "-p", protocol]


def clear_entries_for_port(port: int, protocol: str = "udp") -> list[str]:
    """Every flow to destination port ``port`` (a UDP NodePort that became active or went away)."""
    return ["conntrack", "-D", "-p", protocol, "--dport", str(port)]


def clear_entries_for_nat(origin: str, dest: str, protocol: str = "udp") -> list[str]:
    """Flows to ``origin`` (a service IP) DNATed to ``dest`` (a removed endpoint)."""
    return ["conntrack", "-D", "--orig-dst", origin, "--dst-nat", dest, "-p", protocol]


def clear_entries_for_port_nat(dest: str, port: int, protocol: str = "udp") -> list[str]:
    """Flows to NodePort ``port`` DNATed to ``dest`` (a removed endpoint)."""
    return ["conntrack", "-D", "-p", protocol, "--dport", str(port), "--dst-nat", dest]


def _service_ips(info: ServicePortInfo) -> list[str]:
    return [info.cluster_ip, *info.external_ips, *info.load_balancer_vips]


class CleanupBacklog:
    """The conntrack cleanup a proxier owes: each sync's changes go in before it programs the
    kernel and come out as commands once a sync got its rules in, so a failed sync's deleted
    endpoints are cleaned after the sync that finally removes them (not before: the flows
    would be re-created through the old rules)."""

    def __init__(self) -> None:
        self._items: list[tuple[UpdateServiceMapResult, UpdateEndpointsMapResult]] = []

    def add(self, services: UpdateServiceMapResult, endpoints: UpdateEndpointsMapResult) -> None:
        self._items.append((services, endpoints))

    def take(self, service_map: Mapping[ServicePortName, ServicePortInfo], enabled: bool = True) -> list[list[str]]:
        """The commands for everything added so far (none when ``enabled`` is False:
        --no-conntrack-cleanup), without duplicates; the backlog is empty afterwards."""
        plan: list[list[str]] = []
        for services, endpoints in self._items:
            for argv in plan_cleanup(service_map, services, endpoints):
                if argv not in plan:
                    plan.append(argv)
        self._items.clear()
        return plan if enabled else []


def plan_cleanup(service_map: Mapping[ServicePortName, ServicePortInfo],
                 services: UpdateServiceMapResult,
                 endpoints: UpdateEndpointsMapResult) -> list[list[str]]:
    """The conntrack deletions a sync calls for, in upstream's order, without duplicates."""
    plan: list[list[str]] = []
    for ip in sorted(services.deleted_udp_cluster_ips):
        plan.append(clear_entries_for_ip(ip))
    for port in sorted(services.deleted_udp_node_ports):
        plan.append(clear_entries_for_port(port))
    for spn in endpoints.newly_active_udp_services:
        info = service_map.get(spn)
        if info is None:
            continue
        plan.extend(clear_entries_for_ip(ip) for ip in _service_ips(info))
        if info.node_port:
            plan.append(clear_entries_for_port(info.node_port))
    for spn, ep in endpoints.deleted_udp_endpoints:
        info = service_map.get(spn)
        if info is None or info.protocol != "UDP":
            continue  # the Service is gone: its ClusterIP entries were cleared as a whole
        if info.node_port:
            plan.append(clear_entries_for_port_nat(ep.ip, info.node_port))
        plan.extend(clear_entries_for_nat(ip, ep.ip) for ip in _service_ips(info))
    unique: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for argv in plan:
        if tuple(argv) not in seen:
            seen.add(tuple(argv))
            unique.append(argv)
    return unique


def _nothing_deleted(result: Result) -> bool:
    return result.returncode == 1 and "0 flow entries" in (result.stderr + result.stdout)


class Conntrack:
    """Runs conntrack deletions; failures are logged, never raised (rules are already right)."""

    def __init__(self, exec_: Exec = local_exec):
        self.exec = exec_

    def run(self, plan: Iterable[list[str]]) -> int:
        """Execute each argv; return how many failed for a reason other than "nothing to delete"."""
        failures = 0
        for argv in plan:
            result = self.exec(argv)
            if result.returncode == 0 or _nothing_deleted(result):
                log.debug("%s: %s", " ".join(argv), result.stderr.strip())
                continue
            failures += 1
            log.warning("%s failed (exit %s): %s", " ".join(argv), result.returncode, result.stderr.strip())
        return failures
