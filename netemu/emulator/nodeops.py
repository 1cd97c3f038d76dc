"""Node hosts added to and removed from a running cluster: the cloud starting or terminating a VM.

``netemu node add NAME`` plans a worker like the topology's (``plan_node``: pure), then makes it
real on the running Mininet network (``attach_host``): a new host linked to a switch, its
namespace attached as ``nen-<id>-NAME``, its on-link default route (and the internet route of
the edge); the supervisor then starts its agent, which registers the Node, gets a podCIDR from
node IPAM, and every kube-proxy and kubelet learns it through the API.

``netemu node remove NAME`` is the VM vanishing (``detach_host``): its agent and pods' processes
are killed, the pods' namespaces and the host go -- nothing is told to the API. The Node goes
NotReady when its Lease stops, the cloud node-lifecycle controller (cloud/nodes.py) then deletes
it, PodGC removes its pods and their controllers recreate them on the other nodes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re

from netemu.emulator import cleanup, external, processes
from netemu.emulator.network import run
from netemu.emulator.cloud import edge as edge_net
from netemu.emulator.plan import (ROLE_LABEL, ZONE_LABEL, ClusterPlan, NodePlan, PlanError, mn_prefix,
                                  node_control_socket, node_netns, node_runtime_socket, parse_taint)

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DEFAULT_CAPACITY = {"cpu": "2", "memory": "4Gi", "pods": "110"}
LB_POOL_SIZE = 56                 # plan.lb_pool and external.py: the top of the node network


def free_ip(plan: ClusterPlan, taken: set[str]) -> str:
    """The lowest node-network address above the nodes' that nobody holds (never the LB pool
    at the top, nor the addresses external hosts take going down from below it)."""
    net = ipaddress.ip_network(plan.node_network)
    used = {n.ip for n in plan.nodes} | {plan.root_ip} | set(taken)
    top = int(net.broadcast_address) - LB_POOL_SIZE - 64      # external hosts: 64 below the pool
    for value in range(int(net.network_address) + 2, top):
        ip = str(ipaddress.ip_address(value))
        if ip not in used:
            return ip
    raise PlanError(f"no free node address left in {plan.node_network}")


def plan_node(plan: ClusterPlan, name: str, zone: str | None = None, labels: dict | None = None,
              taints: list[str] = (), taken: set[str] = frozenset()) -> tuple[ClusterPlan, NodePlan]:
    """A new worker ``name`` (its Mininet name, namespace, address, labels) and the plan with it."""
    if not _DNS1123.match(name or "") or len(name) > 63:
        raise PlanError(f"node name {name!r}: a lowercase DNS name (a-z, 0-9, '-', '.')")
    if any(n.name == name for n in plan.nodes):
        raise PlanError(f"node {name!r} already exists in this cluster")
    indices = [int(n.mn_name.rsplit("h", 1)[1]) for n in plan.nodes if n.mn_name.rsplit("h", 1)[1].isdigit()]
    index = max(indices, default=-1) + 1
    all_labels = {str(k): str(v) for k, v in (labels or {}).items()}
    if zone:
        all_labels[ZONE_LABEL] = zone
    all_labels.setdefault(ROLE_LABEL + "worker", "")
    node = NodePlan(name, f"{mn_prefix(plan.cluster_id)}h{index}", node_netns(plan.cluster_id, name),
                    free_ip(plan, taken), "worker", all_labels, tuple(parse_taint(t) for t in taints),
                    dict(DEFAULT_CAPACITY))
    return dataclasses.replace(plan, nodes=plan.nodes + (node,)), node


def without_node(plan: ClusterPlan, name: str) -> tuple[ClusterPlan, NodePlan]:
    node = next((n for n in plan.nodes if n.name == name), None)
    if node is None:
        raise PlanError(f"no node {name!r} in this cluster (nodes: {', '.join(n.name for n in plan.workers)})")
    if node.role == "control-plane":
        raise PlanError(f"{name} is the control plane: it cannot be removed")
    return dataclasses.replace(plan, nodes=tuple(n for n in plan.nodes if n.name != name)), node



def attach_host(net, plan: ClusterPlan, node: NodePlan, switch: str) -> int:
    """Make ``node`` a running Mininet host on ``switch`` (a Mininet switch name); its shell pid."""
    host = net.addHost(node.mn_name, ip=f"{node.ip}/{plan.prefixlen}")
    try:
        link = net.addLink(host, net.get(switch))
        sw = net.get(switch)
        if hasattr(type(sw), "attach"):
            sw.attach(link.intf2)            # Open vSwitch
        else:
            run(["ip", "link", "set", link.intf2.name, "master", switch, "up"])
        host.configDefault()
        run(["ip", "netns", "attach", node.netns, str(host.pid)])
        run(["ip", "-n", node.netns, "route", "replace", "default", "dev", host.defaultIntf().name, "scope", "link"])
    except BaseException:
        detach_host(net, node)
        raise
    return host.pid


def _ns_key(path: str) -> tuple[int, int] | None:
    """A namespace's identity (device, inode): equal for a process inside it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def detach_host(net, node: NodePlan) -> list[str]:
    """The VM is gone: every process in its namespace and its pods' goes (SIGKILL), then its
    pods' namespaces, the Mininet host and its links. Returns the pod namespaces removed."""
    pods = sorted(cleanup.pods_linked_to(node.netns)) if os.path.exists(f"/run/netns/{node.netns}") else []
    keys = {k for k in (_ns_key(f"/run/netns/{n}") for n in [node.netns, *pods]) if k}
    victims = [pid for pid in (int(p) for p in os.listdir("/proc") if p.isdigit())
               if _ns_key(f"/proc/{pid}/ns/net") in keys and pid != os.getpid()]
    try:
        host = net.get(node.mn_name)
    except KeyError:
        host = None
    shell = {host.pid} if host is not None else set()
    processes.kill([p for p in victims if p not in shell])
    cleanup.apply(cleanup.Cleanup(pod_netns=pods))
    if host is not None:
        net.delHost(host)
    run(["ip", "netns", "delete", node.netns], check=False)
    return pods


class NodeHostOps:
    """The supervisor's ``node-add`` / ``node-remove`` operations (a mixin: it uses the
    supervisor's plan, Mininet net and its lock, host pids, agents, edge and cluster.json)."""

    def add_node(self, request: dict) -> dict:
        """A new worker host on the running network and its agent."""
        taken = {e.ip for e in external.recorded(str(self.state)).values()}
        if self.edge is not None:
            taken.add(self.edge.node_ip)
        switch = request.get("switch") or self.plan.root_switch
        if switch not in self.plan.switches.values():
            switch = self.plan.switches.get(switch, "")
        if not switch:
            return {"error": f"no switch {request.get('switch')!r} (switches: {', '.join(self.plan.switches)})"}
        try:
            plan, node = plan_node(self.plan, str(request.get("node")), request.get("zone"),
                                   request.get("labels") or {}, request.get("taints") or [], taken)
        except PlanError as exc:
            return {"error": str(exc)}
        with self.net_lock:
            self.host_pids[node.name] = attach_host(self.net, plan, node, switch)
        self.plan = plan
        self.favour_control_plane()
        if self.edge is not None:
            edge_net.route_nodes(self.edge, [node.netns])
        self.start_node(node, self.kubeconfig)
        self.route_pods_when_ready([node.name])
        self.write_cluster()
        return {"ok": True, "node": node.name, "ip": node.ip, "netns": node.netns}

    def remove_node(self, name: str) -> dict:
        """The node's VM is gone: agent, pods and host removed; the API is not told (the cloud
        node-lifecycle controller deletes the Node once it is NotReady)."""
        try:
            plan, node = without_node(self.plan, name)
        except PlanError as exc:
            return {"error": str(exc)}
        proc = self.procs.pop(f"agent/{name}", None)       # a fake agent
        if proc is not None:
            processes.kill([proc.pid])
            proc.poll()
        self.agent_argv.pop(name, None)
        self.node_pids.pop(name, None)    # its node supervisor dies with the rest of the namespace
        with self.net_lock:
            pods = detach_host(self.net, node)
        self.host_pids.pop(name, None)
        for sock in (node_control_socket(self.plan.cluster_id, name), node_runtime_socket(self.plan.cluster_id, name)):
            try:
                os.unlink(sock)
            except FileNotFoundError:
                pass
        self.plan = plan
        self.favour_control_plane()
        self.write_cluster()
        return {"ok": True, "node": name, "pods": len(pods)}
