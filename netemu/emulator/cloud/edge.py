"""The emulated cloud's edge: an ``internet`` segment and the provider load balancer host.

What a cloud gives a cluster in front of its nodes (``netemu up --edge``):

    internet clients 203.0.113.10, .11, ...  (external hosts, emulator/external.py)
            |  bridge n<id>i (the "internet"; no address in the root namespace)
    LB host nel-<id>: eth1 203.0.113.1 (the clients' gateway) / eth0 <node network>.254
            |  the cluster's switch (the node network)
    nodes (each routes 203.0.113.0/24 via the LB host, as a VPC routes the internet via its edge)

The LB host forwards between the two (a client can reach NodePorts; replies come back through
it, so the client's address is kept end to end) and, for each LoadBalancer IP, spreads new
connections over the nodes' NodePorts (cloud/lb.py programs its nftables). Addresses are
documentation ranges (RFC 5737) living only inside the emulation's namespaces: the root
namespace has no address on the internet bridge and no route to it.

``plan_edge`` is pure; ``build``, ``route_nodes`` and ``remove`` are the effects (argv lists).
Everything is named from the cluster id, so ``netemu cleanup`` finds it after a crash.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass

from netemu.emulator.network import run
from netemu.emulator.plan import mn_prefix

INTERNET_CIDR = "203.0.113.0/24"
EDGE_NETNS_PREFIX = "nel-"
FIRST_CLIENT = 10                  # internet clients from .10 up


class EdgeError(RuntimeError):
    """The edge cannot be planned (addresses that clash); building errors are NetworkError."""


@dataclass(frozen=True)
class Edge:
    netns: str                     # the LB host
    bridge: str                    # the internet segment
    node_link: str                 # root-side veth end into the cluster's switch
    internet_link: str             # root-side veth end into the internet bridge
    switch: str                    # the cluster switch the LB host is plugged into
    node_ip: str                   # the LB host on the node network
    node_prefixlen: int
    internet_cidr: str
    gateway: str                   # the LB host on the internet: every client's default route

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Edge":
        return cls(**data)


def edge_netns(cid: str) -> str:
    return f"{EDGE_NETNS_PREFIX}{cid}"


def plan_edge(cid: str, node_network: str, switch: str, internet_cidr: str = INTERNET_CIDR) -> Edge:
    """Names and addresses: the LB host takes the node network's last usable address (above
    the LoadBalancer pool, plan.lb_pool) and the internet's first."""
    net = ipaddress.ip_network(node_network)
    inet = ipaddress.ip_network(internet_cidr)
    if net.overlaps(inet):
        raise EdgeError(f"the node network {node_network} overlaps the internet segment {internet_cidr}")
    mn = mn_prefix(cid)
    return Edge(edge_netns(cid), f"{mn}i", f"{mn}l0", f"{mn}l1", switch,
                str(net.broadcast_address - 1), net.prefixlen, str(inet), str(inet.network_address + 1))


def client_ips(edge: Edge) -> list[str]:
    """Addresses for internet clients, in order (external.pick_ip takes the first free one)."""
    inet = ipaddress.ip_network(edge.internet_cidr)
    return [str(inet.network_address + k) for k in range(FIRST_CLIENT, inet.num_addresses - 1)]



def build(edge: Edge) -> None:
    """The internet bridge and the LB host with its two legs; undone on failure."""
    try:
        run(["ip", "link", "add", edge.bridge, "type", "bridge"])
        run(["ip", "link", "set", "dev", edge.bridge, "type", "bridge", "nf_call_iptables", "0"], check=False)
        run(["ip", "link", "set", edge.bridge, "up"])
        run(["ip", "netns", "add", edge.netns])
        ns = ["ip", "-n", edge.netns]
        for link, peer, master in ((edge.node_link, "eth0", edge.switch), (edge.internet_link, "eth1", edge.bridge)):
            run(["ip", "link", "add", link, "type", "veth", "peer", "name", peer, "netns", edge.netns])
            run(["ip", "link", "set", link, "master", master, "up"])
        run(ns + ["link", "set", "lo", "up"])
        run(ns + ["addr", "add", f"{edge.node_ip}/{edge.node_prefixlen}", "dev", "eth0"])
        run(ns + ["addr", "add", f"{edge.gateway}/{ipaddress.ip_network(edge.internet_cidr).prefixlen}", "dev", "eth1"])
        for dev in ("eth0", "eth1"):
            run(ns + ["link", "set", dev, "up"])
        sysctl = ["ip", "netns", "exec", edge.netns, "sysctl", "-q", "-w"]
        run(sysctl + ["net.ipv4.ip_forward=1"])
        for key in ("all", "default", "eth0", "eth1"):
            run(sysctl + [f"net.ipv4.conf.{key}.rp_filter=0"])
    except BaseException:
        remove(edge)
        raise


def route_nodes(edge: Edge, node_netns: list[str]) -> None:
    """Each node reaches the internet through the LB host (and so answers clients through it)."""
    for ns in node_netns:
        run(["ip", "-n", ns, "route", "replace", edge.internet_cidr, "via", edge.node_ip])


def remove(edge: Edge) -> None:
    """Idempotent: the veths go with the namespace or by name, then the bridge."""
    run(["ip", "netns", "delete", edge.netns], check=False)
    for link in (edge.node_link, edge.internet_link, edge.bridge):
        run(["ip", "link", "delete", link], check=False)
