"""The effectful edge that makes a plan's network real with Mininet, and takes it down.

Switches are Linux bridges (mininet.nodelib.LinuxBridge, no controller) unless the kernel has
Open vSwitch and the user asked for it. Every host's network namespace is attached under
/run/netns (``ip netns attach``) so ``netemu exec --node`` and pods' setup can name it. The root
namespace gets the node network's .1 on the control plane's switch, which gives it exactly one
connected route into the emulation (kubectl reaches the API server); the bridges' own
nf_call_iptables is turned off so inter-node frames are not sent through the root namespace's
per-bridge netfilter hook.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess

from netemu.emulator.plan import ClusterPlan, link_params, mininet_topo

log = logging.getLogger(__name__)


class NetworkError(RuntimeError):
    """The network could not be built; the message says what failed."""


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def root_addresses() -> list[tuple[str, str]]:
    """(interface, address) of every IPv4 address in the root namespace."""
    out = run(["ip", "-j", "-4", "addr", "show"]).stdout
    return [(link["ifname"], a["local"]) for link in json.loads(out or "[]") for a in link.get("addr_info", [])]


def overlapping_addresses(node_network: str, addresses: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Pure: the addresses already inside the node network (another cluster or a real LAN)."""
    net = ipaddress.ip_network(node_network)
    return [(ifname, addr) for ifname, addr in addresses if ipaddress.ip_address(addr) in net]


def check_network_free(node_network: str) -> None:
    clash = overlapping_addresses(node_network, root_addresses())
    if clash:
        where = ", ".join(f"{a} on {i}" for i, a in clash)
        raise NetworkError(f"node network {node_network} is already used in the root namespace ({where}): "
                           f"choose another with --node-network")


def forward_warning(call_iptables: str, forward_rules: str) -> str | None:
    """Pure: a warning when the root namespace would drop the cluster's bridged traffic.

    With br_netfilter's global bridge-nf-call-iptables=1 (a bridge's own nf_call_iptables cannot
    turn it off), frames between nodes cross the root namespace's FORWARD chain; a DROP policy
    there (Docker sets one) silently cuts nodes off. netemu never edits root rules, so it says so.
    """
    if call_iptables.strip() != "1" or "-P FORWARD DROP" not in forward_rules:
        return None
    return ("the root namespace's FORWARD policy is DROP and net.bridge.bridge-nf-call-iptables=1: "
            "traffic between nodes may be dropped (netemu does not change root rules; the lab VM has none)")


def root_forward_warning() -> str | None:
    try:
        value = open("/proc/sys/net/bridge/bridge-nf-call-iptables").read()
    except OSError:
        return None                       # br_netfilter not loaded in the root namespace: nothing crosses it
    return forward_warning(value, run(["iptables", "-S", "FORWARD"], check=False).stdout)


def stdlib_distutils() -> bool:
    """Load the standard library's ``distutils.version`` for Mininet, if it is not loaded yet.

    Mininet's node.py does ``from distutils.version import StrictVersion`` (one comparison of
    Open vSwitch versions). In a virtualenv with setuptools, setuptools' distutils shim (a meta
    path finder its .pth file installs) answers that import by importing setuptools, which
    imports pkg_resources and scans every installed distribution: 16 MB more in the cluster
    supervisor, measured, for the whole life of the cluster. Python 3.11's own distutils (Debian:
    python3-distutils) has the same StrictVersion at 1/10 of the cost, so the shim is stepped
    around for this one import; where there is no stdlib distutils the shim's stays. True when
    the stdlib's is the one loaded."""
    import importlib
    import sys
    import warnings
    if "distutils.version" in sys.modules:
        return "_distutils" not in (getattr(sys.modules["distutils.version"], "__file__", "") or "")
    shims = [f for f in sys.meta_path if type(f).__name__ == "DistutilsMetaFinder"]
    sys.meta_path[:] = [f for f in sys.meta_path if f not in shims]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)    # "distutils is deprecated"
            importlib.import_module("distutils.version")
        return True
    except ImportError:
        return False
    finally:
        sys.meta_path[0:0] = shims


def switch_class(name: str):
    stdlib_distutils()
    if name == "ovs":
        import functools

        from mininet.node import OVSSwitch
        return functools.partial(OVSSwitch, failMode="standalone")    # no controller: a learning switch
    from mininet.nodelib import LinuxBridge
    return LinuxBridge


def choose_switch(requested: str) -> str:
    """``auto``: Open vSwitch when the kernel has its datapath and the tools are installed, else
    Linux bridges (this machine's kernel has no openvswitch)."""
    import shutil

    from netemu import features

    if requested != "auto":
        features.require_for(switch=requested)
        return requested
    verdict = features.detected().get("openvswitch")
    return "ovs" if verdict and verdict.available and shutil.which("ovs-vsctl") else "linuxbridge"


def build(plan: ClusterPlan, topo, switch: str = "linuxbridge"):
    """Start Mininet for the plan; returns the Mininet object (the caller must ``stop`` it)."""
    stdlib_distutils()
    from mininet.link import Link, TCLink
    from mininet.log import setLogLevel
    from mininet.net import Mininet

    from netemu import features

    setLogLevel("error")                 # its br_netfilter warnings are about the root namespace
    shaped = any(p for p in link_params(topo))
    for params in link_params(topo):
        features.require_for(link=params)
    net = Mininet(topo=mininet_topo(plan, topo), switch=switch_class(switch), controller=None,
                  link=TCLink if shaped else Link, ipBase=plan.node_network, autoSetMacs=True,
                  waitConnected=False, build=False)
    try:
        net.build()
        net.start()
    except BaseException:
        stop(net)
        raise
    return net


def attach(plan: ClusterPlan, net) -> dict[str, int]:
    """``ip netns attach`` every host's namespace; returns {node name: host shell pid}."""
    pids = {}
    for node in plan.nodes:
        host = net.get(node.mn_name)
        run(["ip", "netns", "attach", node.netns, str(host.pid)])
        pids[node.name] = host.pid
    return pids


def default_routes(plan: ClusterPlan, net) -> None:
    """Every node gets an on-link default route on its node-network interface.

    Why: a node reaches a ClusterIP from its own processes (OUTPUT DNAT) only if the route lookup,
    which happens before the nat hook, finds some route; real nodes have a default route, Mininet
    hosts none. An on-link route (no gateway) never leaves the emulated segment: a destination
    nobody on it owns is simply unanswered ARP, so nothing reaches the root namespace's routing.
    """
    for node in plan.nodes:
        intf = net.get(node.mn_name).defaultIntf()
        run(["ip", "-n", node.netns, "route", "replace", "default", "dev", intf.name, "scope", "link"])


def control_plane_pod_routes(plan: ClusterPlan, routes: dict[str, str]) -> None:
    """The control-plane host reaches every pod through its node (what the CNI gives a kubeadm
    control-plane node): so a pod's connection to 10.96.0.1, DNATed by its node's kube-proxy
    to the API server, gets its answers back. ``routes``: {podCIDR: node IP}."""
    for cidr, via in sorted(routes.items()):
        run(["ip", "-n", plan.control_plane.netns, "route", "replace", cidr, "via", via])


def give_root_address(plan: ClusterPlan) -> None:
    for bridge in plan.switches.values():
        run(["ip", "link", "set", "dev", bridge, "type", "bridge", "nf_call_iptables", "0"], check=False)
    run(["ip", "addr", "add", f"{plan.root_ip}/{plan.prefixlen}", "dev", plan.root_switch])


def set_node_links(plan: ClusterPlan, net, node_name: str, status: str) -> list[str]:
    """Mininet's configLinkStatus on every link of one node; returns the links touched."""
    if status not in ("up", "down"):
        raise ValueError(f"link status must be up or down, not {status!r}")
    by_name = {n.name: n for n in plan.nodes}
    if node_name not in by_name:
        raise ValueError(f"no node {node_name!r} in this cluster (nodes: {', '.join(by_name)})")
    host = net.get(by_name[node_name].mn_name)
    touched = []
    for intf in host.intfList():
        if intf.link is None:
            continue
        other = intf.link.intf2 if intf.link.intf1 is intf else intf.link.intf1
        net.configLinkStatus(host.name, other.node.name, status)
        touched.append(f"{intf.name}<->{other.name}")
    return touched


def stop(net) -> None:
    """Mininet's own stop (hosts' shells, bridges, links); never mininet.clean (machine-wide)."""
    try:
        net.stop()
    except Exception:  # half-built nets: what is left is removed by cleanup, by name
        log.exception("mininet stop failed")


def detach(plan: ClusterPlan) -> None:
    for node in plan.nodes:
        run(["ip", "netns", "delete", node.netns], check=False)
