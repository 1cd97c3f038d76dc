"""Upstream's composite checks (e2eservice.TestJig.CheckServiceReachability and friends).

CheckServiceReachability asks every way in to answer: the Service's DNS name (from a pod,
through the cluster DNS) and its ClusterIP on each service port, the external IPs, and for
NodePort/LoadBalancer Services every node's InternalIP on each node port.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.service_behaviours.jig import Jig
from tests.e2e.service_behaviours.traffic import Client, wait_reachable

Obj = dict[str, Any]


def ways_in(jig: Jig, svc: Obj, by_name: bool = True) -> list[tuple[str, str, int]]:
    """(protocol, address, port) of every way a client may use for ``svc``."""
    spec, meta = svc["spec"], svc["metadata"]
    out = []
    for port in spec.get("ports") or []:
        proto = "udp" if port.get("protocol") == "UDP" else "http"
        if spec.get("clusterIP") not in (None, "", "None"):
            if by_name:
                out.append((proto, f"{meta['name']}.{meta['namespace']}.svc.cluster.local", port["port"]))
            out.append((proto, spec["clusterIP"], port["port"]))
        out += [(proto, ip, port["port"]) for ip in spec.get("externalIPs") or []]
        if spec.get("type") in ("NodePort", "LoadBalancer") and port.get("nodePort"):
            out += [(proto, jig.node_ip(n), port["nodePort"]) for n in jig.workers()]
    return out


def check_service_reachability(jig: Jig, svc: Obj, client: Client, timeout: float = 30) -> list[str]:
    """Every way in answers (an HTTP GET /hostname for TCP, "hostname" for UDP); the answers."""
    return [wait_reachable(client, ip, port, proto, timeout=timeout)
            for proto, ip, port in ways_in(jig, svc, by_name=client.pod)]
