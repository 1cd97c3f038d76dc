"""``netemu trace --kernel``: one real packet from a pod, node or external host to a target,
followed through the kernel of the node that translates it, next to the offline prediction.

The node is the source's own (a pod's node, a node itself) or, from an external host, the node
whose address the target is (a NodePort). The cluster's proxy mode (cluster.json) is asked,
through the registry, for its kernel tracer and its offline tracer; kernel_trace.compare says
whether they agree. The packet is a real request (one connection of netemu.traffic), so the
Service answers it like any other.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

from netemu.agent.proxy import modes
from netemu.agent.proxy.commands import netns_exec
from netemu.agent.proxy.kernel_trace import KernelTrace, compare
from netemu.agent.proxy.tracing import Packet, TraceError
from netemu.traffic.cluster import prepare
from netemu.traffic.spec import LoadSpec, SpecError


def node_addresses(netns: str) -> list[str]:
    out = subprocess.run(["ip", "-n", netns, "-j", "addr", "show"], capture_output=True, text=True).stdout
    return [a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", []) if a.get("local")]


def kernel_trace(state_dir: str, source: str, target: str, *, proto: str = "tcp", namespace: str = "default",
                 via: str | None = None, node: str | None = None, timeout: float = 2.0,
                 mode_options: dict | None = None) -> tuple[KernelTrace, str]:
    """(the comparison, the traced node's name). SpecError/TraceError for what cannot be traced."""
    spec = LoadSpec(proto="udp" if proto == "udp" else "tcp", requests=1, timeout=timeout)
    prepared = asyncio.run(prepare(state_dir, source, target, spec, namespace=namespace, via=via, node=node))
    src, dst = prepared.source, prepared.resolved.target
    doc = _cluster_doc(state_dir)
    by_ip = {info["ip"]: name for name, info in doc["nodes"].items()}
    traced = src.node if src.kind in ("pod", "node") else by_ip.get(dst.ip)
    if traced is None:
        raise SpecError(f"{dst.ip} is not a node's address: from an external host, trace a NodePort "
                        f"(--via nodeport --node NAME), whose node is known")
    netns = doc["nodes"][traced]["netns"]
    try:
        # a node's own mode (a topology may give each node its own), else the cluster's
        mode = modes.choose(doc["nodes"][traced].get("proxy_mode") or doc.get("proxy_mode") or modes.DEFAULT,
                            "kernel_tracer")
    except modes.ModeError as exc:
        raise TraceError(f"proxy mode {exc}") from None
    origin = {"pod": "pod", "node": "node", "external": "external"}[src.kind]
    packet = Packet(src.ip, dst.ip, dst.port, spec.proto)
    path = mode.hook("kernel_tracer")(packet, netns=netns, origin=origin,
                                      send=lambda: asyncio.run(prepared.run.run()), **(mode_options or {}))
    predicted = mode.hook("tracer")(None, packet, exec_=netns_exec(netns), node_ips=node_addresses(netns),
                                    origin=origin, ipsets={})
    return compare(path, predicted), traced


def _cluster_doc(state_dir: str) -> dict:
    from pathlib import Path

    from netemu.emulator.state import CLUSTER_FILE, read_json
    return read_json(Path(state_dir) / CLUSTER_FILE) or {}
