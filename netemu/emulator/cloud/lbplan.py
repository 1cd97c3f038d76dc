"""The provider load balancer's configuration, from Services, Nodes and health (pure).

What a cloud's network load balancer in front of NodePorts does (AWS NLB with instance targets,
a classic cloud-controller-manager setup), decided here and rendered as one nftables table:

- every LoadBalancer IP:port of a Service (status.loadBalancer.ingress) is a listener whose
  targets are the cluster's nodes (InternalIP) at that port's NodePort, except nodes labelled
  ``node.kubernetes.io/exclude-from-external-load-balancers`` (upstream's service controller
  rule); a new connection goes to one target chosen by a hash of its 5-tuple, and keeps it
  (conntrack), the client's address unchanged (no SNAT: the node sees the client);
- targets are health-checked (health.py); only healthy ones get new connections. With
  externalTrafficPolicy Local the check is kube-proxy's healthCheckNodePort, so nodes without a
  local endpoint fail it and get nothing; with Cluster, a TCP connect to the NodePort. When no
  target is healthy the listener fails open to all of them (AWS NLB's documented behaviour);
- ``spec.loadBalancerSourceRanges`` (or the older annotation
  ``service.beta.kubernetes.io/load-balancer-source-ranges``) is the cloud firewall: other
  sources are dropped at the load balancer.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

TABLE = "netemu-lb"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
SEED = 0x6e6574656d75          # "netemu": a fixed jhash seed, so a reload keeps every mapping
STATUS_FILE = "loadbalancer.json"   # in the cluster's state dir: what the LB does now (status_doc)


@dataclass(frozen=True)
class Target:
    node: str
    ip: str


@dataclass(frozen=True)
class Listener:
    service: str                   # namespace/name
    ip: str
    protocol: str                  # tcp | udp
    port: int
    node_port: int
    targets: tuple[Target, ...]    # what gets new connections (healthy, or all: fail open)
    source_ranges: tuple[str, ...]
    local: bool                    # externalTrafficPolicy Local
    health_port: int | None        # what the health check asks (healthCheckNodePort or the NodePort)
    fail_open: bool = False        # no target passed its checks: every node gets connections


def node_targets(nodes: list[dict]) -> list[Target]:
    out = []
    for node in nodes:
        meta = node.get("metadata") or {}
        if EXCLUDE_LABEL in (meta.get("labels") or {}):
            continue
        ip = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                   if a.get("type") == "InternalIP"), None)
        if ip:
            out.append(Target(meta.get("name", ""), ip))
    return sorted(out, key=lambda t: t.node)


def source_ranges(svc: dict) -> tuple[str, ...]:
    spec = svc.get("spec") or {}
    ranges = spec.get("loadBalancerSourceRanges") or []
    if not ranges:
        text = ((svc.get("metadata") or {}).get("annotations") or {}).get(RANGES_ANNOTATION, "")
        ranges = [r.strip() for r in text.split(",") if r.strip()]
    return tuple(sorted(set(ranges)) if "0.0.0.0/0" not in ranges else ())


def listeners(services: list[dict], nodes: list[dict], healthy) -> list[Listener]:
    """``healthy(service key, target, health_port) -> bool``: the health checker's verdict."""
    targets = node_targets(nodes)
    out = []
    for svc in services:
        spec, meta = svc.get("spec") or {}, svc.get("metadata") or {}
        if spec.get("type") != "LoadBalancer":
            continue
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        local = spec.get("externalTrafficPolicy") == "Local"
        ips = [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [] if i.get("ip")]
        ranges = source_ranges(svc)
        tcp_port = next((p.get("nodePort") for p in spec.get("ports") or []
                         if (p.get("protocol") or "TCP") == "TCP" and p.get("nodePort")), None)
        health_port = spec.get("healthCheckNodePort") if local else tcp_port
        for port in spec.get("ports") or []:
            proto = (port.get("protocol") or "TCP").lower()
            if proto not in ("tcp", "udp") or not port.get("nodePort"):
                continue
            good = tuple(t for t in targets if healthy(key, t, health_port))
            for ip in ips:
                out.append(Listener(key, ip, proto, int(port["port"]), int(port["nodePort"]), good or tuple(targets),
                                    ranges, local, health_port, not good and bool(targets)))
    return sorted(out, key=lambda l: (l.ip, l.protocol, l.port))


def chain_name(listener: Listener) -> str:
    digest = hashlib.sha256(f"{listener.ip}/{listener.protocol}/{listener.port}".encode()).hexdigest()[:12]
    return f"lb-{digest}"


def render(all_listeners: list[Listener]) -> str:
    """One ``nft -f`` transaction replacing the whole table (atomic: no moment without rules)."""
    lines = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}", f"table ip {TABLE} {{",
             "  chain firewall {", "    type filter hook prerouting priority -150; policy accept;"]
    for lis in all_listeners:
        if lis.source_ranges:
            lines.append(f"    ip daddr {lis.ip} {lis.protocol} dport {lis.port} "
                         f"ip saddr != {{ {', '.join(lis.source_ranges)} }} counter drop "
                         f'comment "{lis.service} loadBalancerSourceRanges"')
    lines += ["  }", "  chain listeners {", "    type nat hook prerouting priority -100; policy accept;"]
    for lis in all_listeners:
        if lis.targets:
            lines.append(f"    ip daddr {lis.ip} {lis.protocol} dport {lis.port} counter jump {chain_name(lis)}")
    lines.append("  }")
    for lis in all_listeners:
        if not lis.targets:
            continue
        n = len(lis.targets)
        pick = ", ".join(f"{i} : {t.ip}" for i, t in enumerate(lis.targets))
        lines += [f"  chain {chain_name(lis)} {{",
                  f'    comment "{lis.service} {lis.ip}:{lis.port}/{lis.protocol} -> NodePort {lis.node_port} on '
                  f'{", ".join(t.node for t in lis.targets)}'
                  f'{" (fail open: no target passes its health check)" if lis.fail_open else " (healthy)"}"',
                  f"    counter dnat to jhash ip saddr . {lis.protocol} sport mod {n} seed {SEED:#x} "
                  f"map {{ {pick} }} : {lis.node_port}",
                  "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def status_doc(all_listeners: list[Listener], nodes: list[Target], undecided: list[tuple], now: float,
               error: str | None = None) -> dict:
    """What the LB does after a round (written to STATUS_FILE for ``netemu status`` and the
    experiments' settle barrier): each listener with the node names getting its new
    connections, every node it could use, the health checks with no verdict yet, and ``time``
    (the round's end: verdicts read after a moment are those with a later time)."""
    rows = []
    for lis in all_listeners:
        row = asdict(lis)
        row["targets"] = [t.node for t in lis.targets]
        row["source_ranges"] = list(lis.source_ranges)
        rows.append(row)
    return {"time": now, "nodes": [t.node for t in nodes], "listeners": rows,
            "undecided": [f"{svc} {ip}:{port}" for svc, ip, port in undecided], "error": error}
