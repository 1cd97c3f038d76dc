"""The node's pod network: the cni0 bridge, forwarding, br_netfilter, routes to other nodes.

What kube-proxy needs from the node (DESIGN, measured): br_netfilter with
bridge-nf-call-iptables=1 (same-node Service replies must traverse iptables so conntrack can undo
the DNAT), hairpin_mode=1 on every bridge port (a pod reaching itself through its Service), and
ip_forward=1 (a new netns has it off). Routes to other nodes' podCIDRs via their node IPs play
the part of a flat pod network (kindnet does exactly this).

``plan_routes`` is pure (unit-tested); ``NodeNetwork`` applies it with ``ip``.
Our routes carry protocol number ROUTE_PROTO, so we find and replace only our own.
"""

from __future__ import annotations

import ipaddress
import json
import os

from .cmd import in_netns_argv, ip_argv, ip_batch, run

BRIDGE = "cni0"
ROUTE_PROTO = "77"  # marks routes this module owns (``ip route show proto 77``)


def plan_routes(current: dict[str, str], desired: dict[str, str]) -> tuple[list[str], list[str]]:
    """``ip -batch`` lines turning ``current`` into ``desired`` ({pod CIDR: node IP}). Pure.

    Returns (replace lines, delete lines): a changed gateway is a replace, a gone node a delete.
    """
    replace = [f"route replace {cidr} via {gw} proto {ROUTE_PROTO}"
               for cidr, gw in sorted(desired.items()) if current.get(cidr) != gw]
    delete = [f"route del {cidr} proto {ROUTE_PROTO}" for cidr in sorted(current) if cidr not in desired]
    return replace, delete


def peer_routes(nodes: list[dict], own_name: str) -> dict[str, str]:
    """{podCIDR: InternalIP}: the routes this node needs to every other node's pods, from Node
    objects (kind's kindnet does exactly this on one L2 network). Pure.

    Skipped: this node, a Node being deleted (its pods are going; a route to it would outlive
    it), a Node without both fields or with one that is not an address. Both are normalised
    (``FD00::4`` -> ``fd00::4``) as ``ip -j route`` reports them, so comparing with the kernel's
    routes (``plan_routes``) sees no change where there is none.
    """
    routes = {}
    for node in nodes:
        meta = node.get("metadata") or {}
        if meta.get("name") == own_name or meta.get("deletionTimestamp"):
            continue
        cidr = (node.get("spec") or {}).get("podCIDR")
        addrs = (node.get("status") or {}).get("addresses") or []
        ip = next((a.get("address") for a in addrs if a.get("type") == "InternalIP"), None)
        if not (cidr and ip):
            continue
        try:
            routes[str(ipaddress.ip_network(cidr))] = str(ipaddress.ip_address(ip))
        except ValueError:      # not an address: nothing to route to (the API server checks these)
            continue
    return routes


class NodeNetwork:
    """Sets up and maintains one node's pod network (idempotent: safe on every agent start)."""

    def __init__(self, pod_cidr: str, node_netns: str | None = None):
        self.cidr = ipaddress.ip_network(pod_cidr)
        self.node_netns = node_netns
        self.gateway = str(self.cidr.network_address + 1)

    @property
    def bridge_mac(self) -> str:
        """cni0's own MAC, set once: 0a:58 + the gateway's IPv4 bytes (the CNI plugins' scheme for
        an address-derived MAC). A bridge left to pick its MAC takes its lowest port's and changes
        it when that pod goes: every other pod on the node then holds a stale ARP entry for its
        gateway and cannot reach its own node (or get replies through it) for ~30 s."""
        return "0a:58:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(self.gateway).packed[-4:])

    async def setup(self) -> None:
        """cni0 with the podCIDR's .1 and a fixed MAC, up; br_netfilter loaded; forwarding and
        bridge-nf on."""
        ns = self.node_netns
        code, _, _ = await run(ip_argv(ns, "link", "show", BRIDGE), check=False)
        lines = [] if code == 0 else [f"link add {BRIDGE} type bridge"]
        lines += [f"link set {BRIDGE} address {self.bridge_mac}",
                  f"addr replace {self.gateway}/{self.cidr.prefixlen} dev {BRIDGE}",
                  f"link set {BRIDGE} up"]
        await ip_batch(ns, lines)
        await ensure_br_netfilter()
        await run(in_netns_argv(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
                                     "net.bridge.bridge-nf-call-iptables=1"]))

    async def current_routes(self) -> dict[str, str]:
        _, out, _ = await run(ip_argv(self.node_netns, "-j", "route", "show", "proto", ROUTE_PROTO))
        routes = {}
        for r in json.loads(out or "[]"):
            if "gateway" in r:
                dst = r["dst"] if "/" in r["dst"] else f"{r['dst']}/32"
                routes[str(ipaddress.ip_network(dst))] = r["gateway"]
        return routes

    async def sync_routes(self, desired: dict[str, str]) -> tuple[list[str], list[str]]:
        """Make our routes equal ``desired``; returns what was done (for logs and tests)."""
        replace, delete = plan_routes(await self.current_routes(), desired)
        if replace or delete:
            await ip_batch(self.node_netns, delete + replace)
        return replace, delete


async def ensure_br_netfilter() -> None:
    """Load br_netfilter unless its sysctls already exist (built in, or loaded before)."""
    if os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        return
    await run(["modprobe", "br_netfilter"], check=False)
    if not os.path.exists("/proc/sys/net/bridge"):
        raise RuntimeError("br_netfilter is not available in this kernel: same-node Service "
                           "traffic cannot work (run in the lab VM, docs/labvm.md)")
