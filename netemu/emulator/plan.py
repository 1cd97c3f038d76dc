"""The cluster plan: a Mininet Topo (pure data) turned into names, addresses and argv lists.

Pure: nothing here touches the kernel, so every decision (which host is the control plane, who
gets which IP, what each agent is told) is unit-tested without root.

Names. Kubernetes Node names are the topology's host names (``control-plane``, ``worker``,
``worker2``... for the default topology). Mininet's own names must be unique on the machine
(switch-side veth ends and bridges live in the root namespace, next to other clusters), so they
are ``n<id>h<k>`` / ``n<id>s<k>`` with ``<id>`` = 4 hex digits derived from the state dir; node
network namespaces are attached as ``nen-<id>-<node>``. Everything a crashed run left can thus be
found again from the state dir alone.

The control plane is the host with ``role='control-plane'`` (or named ``control-plane``); a topo
with neither (any ``mn --custom`` topo) gets its first host as control plane. Addresses: .1 of the
node network for the root namespace, .2 for the control plane, .3... for workers in topo order.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field

from netemu.agent.proxy.modes import DEFAULT as DEFAULT_PROXY_MODE

DEFAULT_NODE_NETWORK = "172.18.0.0/16"
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/12"
APISERVER_PORT = 6443
ROLE_LABEL = "node-role.kubernetes.io/"
ZONE_LABEL = "topology.kubernetes.io/zone"
# Host params netemu reads; Mininet is not given them.
NETEMU_HOST_PARAMS = ("role", "labels", "taints", "cpu", "memory", "pods", "zone", "proxy_mode")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class PlanError(ValueError):
    """A topology or option that cannot make a cluster; the message says which and why."""


@dataclass(frozen=True)
class NodePlan:
    name: str                    # Kubernetes Node name (the topo's host name)
    mn_name: str                 # Mininet host name, unique on the machine
    netns: str                   # name under /run/netns (ip netns attach)
    ip: str
    role: str                    # control-plane | worker | any other role
    labels: dict = field(default_factory=dict)
    taints: tuple = ()
    capacity: dict = field(default_factory=dict)
    proxy_mode: str | None = None   # this node's kube-proxy mode when the topo overrides `up --proxy-mode`


@dataclass(frozen=True)
class ClusterPlan:
    cluster_id: str
    name: str
    state_dir: str
    node_network: str
    root_ip: str                 # the root namespace's address, on ``root_switch``
    nodes: tuple                 # NodePlan, control plane first
    switches: dict               # topo switch name -> Mininet name
    root_switch: str             # Mininet name of the control plane's switch

    @property
    def control_plane(self) -> NodePlan:
        return self.nodes[0]

    @property
    def workers(self) -> tuple:
        return self.nodes[1:]

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.control_plane.ip}:{APISERVER_PORT}"

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.node_network).prefixlen


def cluster_id(state_dir: str) -> str:
    """4 hex digits from the state dir's absolute path: stable, so cleanup finds a crashed run."""
    return hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:4]


def mn_prefix(cid: str) -> str:
    return f"n{cid}"


def node_netns(cid: str, node: str) -> str:
    return f"nen-{cid}-{node}"


NODE_CONTROL_DIR = "/run/netemu/nodes"


def node_control_socket(cid: str, node: str) -> str:
    """The Unix socket of a node's supervisor (``netemu node kill|restart``): under /run, not
    the state dir, because a socket path must stay under 108 bytes."""
    return os.path.join(NODE_CONTROL_DIR, cid, f"{node}.sock")


def node_runtime_socket(cid: str, node: str) -> str:
    """The node's container runtime socket (the kubelet's --container-runtime-endpoint)."""
    return os.path.join(NODE_CONTROL_DIR, cid, f"{node}.cri.sock")


def check_node_network(text: str) -> ipaddress.IPv4Network:
    """An IPv4 network of /8../24 that overlaps neither the pod nor the service CIDR."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise PlanError(f"--node-network {text!r}: {exc}") from None
    if net.version != 4 or not 8 <= net.prefixlen <= 24:
        raise PlanError(f"--node-network {text}: need an IPv4 network from /8 to /24")
    for name, other in (("pod CIDR", POD_CIDR), ("service CIDR", SERVICE_CIDR)):
        if net.overlaps(ipaddress.ip_network(other)):
            raise PlanError(f"--node-network {text} overlaps the {name} {other}")
    return net


def lb_pool(network: str) -> str:
    """LoadBalancer IPs at the top of the node network, like kind + MetalLB setups: .200-.250 of
    the last /24."""
    net = ipaddress.ip_network(network)
    top = int(net.broadcast_address)
    return f"{ipaddress.ip_address(top - 55)}-{ipaddress.ip_address(top - 5)}"


def parse_taint(taint) -> str:
    """"key=value:Effect" (or a dict with key/value/effect) -> the agent's "key=value:Effect"."""
    if isinstance(taint, dict):
        key, value, effect = taint.get("key", ""), taint.get("value", ""), taint.get("effect", "")
    else:
        head, _, effect = str(taint).rpartition(":")
        key, _, value = head.partition("=")
    if not key or effect not in TAINT_EFFECTS:
        raise PlanError(f"taint {taint!r}: expected key[=value]:Effect with Effect one of {', '.join(TAINT_EFFECTS)}")
    return f"{key}={value}:{effect}" if value else f"{key}:{effect}"


def _pick_control_plane(hosts: list, info: dict) -> str:
    named = [h for h in hosts if info[h].get("role") == "control-plane"]
    if len(named) > 1:
        raise PlanError(f"topology has {len(named)} control-plane hosts ({', '.join(named)}): netemu runs one")
    if named:
        return named[0]
    return "control-plane" if "control-plane" in hosts else hosts[0]


def _node_plan(host: str, info: dict, cid: str, index: int, ip: str, role: str) -> NodePlan:
    if not _DNS1123.match(host) or len(host) > 63:
        raise PlanError(f"host {host!r}: node names must be lowercase DNS names (a-z, 0-9, '-', '.')")
    labels = {str(k): str(v) for k, v in (info.get("labels") or {}).items()}
    if info.get("zone"):
        labels[ZONE_LABEL] = str(info["zone"])
    labels.setdefault(ROLE_LABEL + role, "")
    taints = tuple(parse_taint(t) for t in info.get("taints") or ())
    capacity = {k: str(info[k]) for k in ("cpu", "memory", "pods") if info.get(k) not in (None, "")}
    proxy_mode = info.get("proxy_mode") or None
    if proxy_mode is not None:
        from netemu.agent.proxy import modes
        try:
            proxy_mode = modes.choose(str(proxy_mode)).name if proxy_mode != modes.NO_PROXY else modes.NO_PROXY
        except modes.ModeError as exc:
            raise PlanError(f"host {host!r}: proxy_mode {exc}") from None
    return NodePlan(host, f"{mn_prefix(cid)}h{index}", node_netns(cid, host), ip, role, labels, taints, capacity,
                    proxy_mode)


def make_plan(topo, state_dir: str, node_network: str = DEFAULT_NODE_NETWORK, name: str | None = None) -> ClusterPlan:
    """Check a Topo and assign every name and address; raises PlanError for what cannot work."""
    net = check_node_network(node_network)
    hosts = list(topo.hosts(sort=False))
    info = {h: topo.nodeInfo(h) for h in hosts}
    if len(hosts) < 2:
        raise PlanError("a cluster needs a control-plane host and at least one worker (--nodes must be >= 1)")
    cp = _pick_control_plane(hosts, info)
    ordered = [cp] + [h for h in hosts if h != cp]
    usable = net.num_addresses - 2 - 56          # minus network/broadcast and the LB pool
    if len(ordered) + 1 > usable:
        raise PlanError(f"--node-network {node_network} is too small for {len(ordered)} nodes")
    cid = cluster_id(state_dir)
    base = int(net.network_address)
    nodes = tuple(_node_plan(h, info[h], cid, i, str(ipaddress.ip_address(base + 2 + i)),
                             "control-plane" if h == cp else str(info[h].get("role") or "worker"))
                  for i, h in enumerate(ordered))
    switches = {s: f"{mn_prefix(cid)}s{i + 1}" for i, s in enumerate(topo.switches(sort=False))}
    if not switches:
        raise PlanError("topology has no switch: nodes must reach the control plane")
    neighbours = {h: set() for h in hosts}
    for a, b in topo.links(sort=False):
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    lonely = [h for h in hosts if not neighbours[h] & set(switches)]
    if lonely:
        raise PlanError(f"host(s) {', '.join(lonely)} have no link to a switch")
    root_switch = switches[sorted(neighbours[cp] & set(switches), key=list(switches).index)[0]]
    return ClusterPlan(cid, name or os.path.basename(os.path.abspath(state_dir)), os.path.abspath(state_dir),
                       str(net), str(ipaddress.ip_address(base + 1)), nodes, switches, root_switch)


def mininet_topo(plan: ClusterPlan, topo):
    """A copy of ``topo`` under the plan's Mininet names, with the plan's addresses and without
    netemu's own host params (Mininet does not know them)."""
    from mininet.topo import Topo

    by_topo = {n.name: n for n in plan.nodes}
    renamed = Topo()
    for host in topo.hosts(sort=False):
        node = by_topo[host]
        params = {k: v for k, v in topo.nodeInfo(host).items() if k not in NETEMU_HOST_PARAMS}
        params["ip"] = f"{node.ip}/{plan.prefixlen}"
        renamed.addHost(node.mn_name, **params)
    for i, (switch, mn_name) in enumerate(plan.switches.items()):
        params = {k: v for k, v in topo.nodeInfo(switch).items() if k != "isSwitch"}
        params.setdefault("dpid", f"{i + 1:016x}")
        renamed.addSwitch(mn_name, **params)
    names = {**{n.name: n.mn_name for n in plan.nodes}, **plan.switches}
    for a, b, key, info in topo.links(sort=False, withKeys=True, withInfo=True):
        opts = {k: v for k, v in info.items() if k not in ("node1", "node2")}
        renamed.addLink(names[a], names[b], key=key, **opts)
    return renamed


def link_params(topo) -> list[dict]:
    """Each link's shaping options (bw, delay, loss...), for the features check."""
    drop = {"node1", "node2", "port1", "port2", "intfName1", "intfName2", "addr1", "addr2", "cls"}
    return [{k: v for k, v in info.items() if k not in drop}
            for _a, _b, info in topo.links(sort=False, withInfo=True)]


# ---- argv lists of the processes the supervisor starts ----

def nsenter(pid: int, argv: list[str]) -> list[str]:
    """Run ``argv`` in a host's network namespace only: the root mount namespace (and /run/netns)
    stays shared, which pods' namespaces need."""
    return ["nsenter", f"--net=/proc/{pid}/ns/net", "--", *argv]


def apiserver_argv(plan: ClusterPlan, python: str, store_url: str | None, extra: list[str] = ()) -> list[str]:
    cp = plan.control_plane
    argv = [python, "-m", "netemu", "apiserver", "--listen", f"{cp.ip}:{APISERVER_PORT}",
            "--advertise-address", cp.ip, "--state-dir", os.path.join(plan.state_dir, "controlplane"),
            "--cluster-cidr", POD_CIDR, "--service-cidr", SERVICE_CIDR, "--lb-pool", lb_pool(plan.node_network)]
    if store_url:
        argv += ["--store", store_url]
    return argv + list(extra)


def agent_argv(plan: ClusterPlan, node: NodePlan, python: str, kubeconfig: str, proxy_mode: str = DEFAULT_PROXY_MODE,
               proxy_args: list[str] = (), extra: list[str] = (), proxy_kubeconfig: str | None = None) -> list[str]:
    """``netemu agent`` for ``node``; ``proxy_args``: the proxy mode's own flags (from the registry).
    ``kubeconfig``: the kubelet's identity (kubelet.conf), ``proxy_kubeconfig`` kube-proxy's.
    ``argv[4:]`` are the node's flags alone, what the launcher template is given."""
    argv = [python, "-m", "netemu", "agent", "--node", node.name, "--node-ip", node.ip, "--kubeconfig", kubeconfig,
            "--proxy-mode", proxy_mode, *proxy_args, "--cluster-cidr", POD_CIDR, "--service-cidr", SERVICE_CIDR,
            "--state-dir", os.path.join(plan.state_dir, "nodes", node.name)]
    if proxy_kubeconfig:
        argv += ["--proxy-kubeconfig", proxy_kubeconfig]
    if node.capacity:
        argv += ["--capacity", ",".join(f"{k}={v}" for k, v in node.capacity.items())]
    if node.labels:
        argv += ["--labels", ",".join(f"{k}={v}" for k, v in node.labels.items())]
    if node.taints:
        argv += ["--taints", ",".join(node.taints)]
    return argv + list(extra)
