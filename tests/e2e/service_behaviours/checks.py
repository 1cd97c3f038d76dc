"""Upstream's composite checks (e2eservice.TestJig.CheckServiceReachability and friends).

CheckServiceReachability asks every way in to answer: the ClusterIP on each service port,
the external IPs, and for NodePort/LoadBalancer Services every node's InternalIP on each node
port. Upstream also resolves the Service's DNS name; netemu has no cluster DNS yet (issue 14),
so that one way in is not tried here.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.service_behaviours.jig import Jig
from tests.e2e.service_behaviours.traffic import Client, wait_reachable

Obj = dict[str, Any]


def ways_in(jig: Jig, svc: Obj) -> list[tuple[str, str, int]]:
    """(protocol, ip, port) of every address a client may use for ``svc``."""
    spec = svc["spec"]
    out = []
    for port in spec.get("ports") or []:
        proto = "udp" if port.get("protocol") == "UDP" else "http"
        if spec.get("clusterIP") not in (None, "", "None"):
            out.append((proto, spec["clusterIP"], port["port"]))
        out += [(proto, ip, port["port"]) for ip in spec.get("externalIPs") or []]
        if spec.get("type") in ("NodePort", "LoadBalancer") and port.get("nodePort"):
            out += [(proto, jig.node_ip(n), port["nodePort"]) for n in jig.workers()]
    return out


def check_service_reachability(jig: Jig, svc: Obj, client: Client, timeout: float = 30) -> list[str]:
    """Every way in answers (an HTTP GET /hostname for TCP, "hostname" for UDP); the answers."""
    return [wait_reachable(client, ip, port, proto, timeout=timeout) for proto, ip, port in ways_in(jig, svc)]
