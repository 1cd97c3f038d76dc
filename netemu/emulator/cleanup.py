"""``netemu cleanup``: remove what a crashed cluster left, found from the state dir alone.

What belongs to the cluster (all derived from its 4-hex id, see plan.py, plus cluster.json):
- processes: those recorded in cluster.json whose /proc/PID/cmdline still matches what was
  started, the supervisor (by its cmdline), Mininet host and switch shells ``mininet:n<id>[hs]<k>``, and every
  process living in one of the cluster's network namespaces (pods' containers included);
- node namespaces ``nen-<id>-*``; pod namespaces ``nep-*`` whose veth peer is in one of them, or
  that the cluster's node state (``nodes/*/runtime/ipam.json``, ``nodes/*/pods/NS_NAME_UID``)
  records, even when their node namespace is already gone. Never a ``nep-*`` on a guess: other
  clusters' pods on this machine look the same;
- root-namespace links and bridges named ``n<id>s<k>[-ethN]`` / ``n<id>h<k>-ethN`` (the .1
  address goes with its bridge). KUBE-* rules lived inside the node namespaces and die with them;
- external client hosts (external.py): namespaces ``nex-<id>-*`` (treated as a node's: the
  processes inside them go too), their veths ``n<id>x<hex>`` and the state dir's externals/;
- the pods' /etc files (/etc/netns/<pod netns>/: resolv.conf, hosts) with their namespaces;
- the edge (cloud/edge.py): the LB host's namespace ``nel-<id>`` (its processes too), its veths
  ``n<id>l0``/``n<id>l1`` and the internet bridge ``n<id>i``.

``plan_cleanup`` is pure (unit-tested with made-up machines); ``gather`` and ``apply`` are the
edges. Running it twice is harmless: the second run finds nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from netemu.agent.runtime.etcfiles import netns_etc_dir, remove_etc
from netemu.agent.runtime.names import POD_NETNS_PREFIX, pod_netns
from netemu.emulator import processes
from netemu.emulator.cloud.edge import EDGE_NETNS_PREFIX
from netemu.emulator.cloud.lbplan import STATUS_FILE as LB_STATUS_FILE
from netemu.emulator.external import EXTERNAL_NETNS_PREFIX, EXTERNALS_DIR
from netemu.emulator.plan import NODE_CONTROL_DIR, cluster_id, mn_prefix
from netemu.emulator.state import CLUSTER_FILE, CONTROL_SOCKET, STATUS_FILE, read_json

NETNS_DIR = Path("/run/netns")


@dataclass
class Machine:
    """What cleanup saw: inputs of the pure planner."""

    netns: list[str]                                  # names under /run/netns
    pod_peers: dict[str, set[str]]                    # pod netns -> our node netns its veths lead to
    netns_keys: dict[str, tuple[int, int]]            # netns -> (dev, inode)
    procs: list[tuple[int, list[str], tuple[int, int] | None]]  # pid, argv, its netns (dev, inode)
    links: list[str]                                  # root namespace link names


@dataclass
class Cleanup:
    kill: list[int] = field(default_factory=list)
    pod_netns: list[str] = field(default_factory=list)
    node_netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.kill or self.pod_netns or self.node_netns or self.links)


def recorded_processes(doc: dict | None) -> list[tuple[int, tuple[str, ...]]]:
    """(pid, words its cmdline must hold) for each process cluster.json names."""
    if not doc:
        return []
    found = [(doc.get("supervisor_pid"), ("netemu", "--supervise")),
             (doc.get("apiserver_pid"), ("netemu", "apiserver")), (doc.get("etcd_pid"), ("etcd",)),
             (doc.get("launcher_pid"), ("netemu", "zygote"))]
    for node in (doc.get("nodes") or {}).values():
        found.append((node.get("agent_pid"), ("netemu", "--node")))   # node supervisor or fake agent
        if node.get("mn_name"):
            found.append((node.get("pid"), (f"mininet:{node['mn_name']}",)))
    return [(pid, words) for pid, words in found if isinstance(pid, int) and pid > 0]


def plan_cleanup(cid: str, state_dir: str, doc: dict | None, machine: Machine, me: int,
                 known_pods: set[str] = frozenset()) -> Cleanup:
    """``known_pods``: pod netns names the cluster's node state records (``recorded_pod_netns``)."""
    plan = Cleanup()
    node_ns = sorted(n for n in machine.netns if n.startswith((f"nen-{cid}-", f"{EXTERNAL_NETNS_PREFIX}{cid}-"))
                     or n == f"{EDGE_NETNS_PREFIX}{cid}")
    pods = sorted(p for p in machine.netns if p.startswith(POD_NETNS_PREFIX) and (
        machine.pod_peers.get(p, set()) & set(node_ns) or p in known_pods))
    ours = {machine.netns_keys[n] for n in node_ns + pods if n in machine.netns_keys}
    shell = re.compile(rf"^mininet:{mn_prefix(cid)}[hs]\d+$")
    by_pid = {pid: argv for pid, argv, _ in machine.procs}
    kill = {pid for pid, words in recorded_processes(doc)
            if all(any(w in part for part in by_pid.get(pid, [])) for w in words)}
    for pid, argv, ns in machine.procs:
        if ns is not None and ns in ours:
            kill.add(pid)
        elif any(shell.match(part) for part in argv):
            kill.add(pid)
        elif ("--supervise" in argv or any(a.endswith("zygote") for a in argv)) and "netemu" in " ".join(argv) and state_dir in argv:
            kill.add(pid)       # the cluster's supervisor, its launcher template
    kill.discard(me)
    plan.kill = sorted(kill)
    plan.pod_netns, plan.node_netns = pods, node_ns
    link = re.compile(rf"^{mn_prefix(cid)}([hs]\d+(-eth\d+)?|x[0-9a-f]{{6}}|i|l[01])$")
    plan.links = sorted(name for name in machine.links if link.match(name))
    return plan


# ---- effects ----

def _ip_json(argv: list[str]) -> list:
    proc = subprocess.run(argv, capture_output=True, text=True)
    try:
        return json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
    except ValueError:
        return []


def _key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def recorded_pod_netns(state: Path) -> set[str]:
    """Pod netns names the node agents' state under ``state/nodes`` records (IPAM and pod dirs)."""
    names = set()
    for ipam in state.glob("nodes/*/runtime/ipam.json"):
        doc = read_json(ipam) or {}
        names |= {a.get("netns") for a in (doc.get("allocations") or {}).values() if isinstance(a, dict)}
    for pod_dir in state.glob("nodes/*/pods/*"):
        try:
            names.add(pod_netns(pod_dir.name.rpartition("_")[2]))
        except ValueError:      # not a pod's directory (no uid at the end of its name)
            continue
    return {n for n in names if isinstance(n, str) and n.startswith(POD_NETNS_PREFIX)}


def pods_linked_to(node: str) -> set[str]:
    """Pod netns names that have a veth peer in ``node`` (asked from the node's side: two ``ip``
    calls per node of ours, however many pods other clusters run on the machine)."""
    ids = {link["link_netnsid"] for link in _ip_json(["ip", "-n", node, "-j", "link", "show"])
           if "link_netnsid" in link}
    if not ids:
        return set()
    return {e.get("name", "") for e in _ip_json(["ip", "-n", node, "-j", "netns", "list-id"])
            if e.get("nsid") in ids and e.get("name", "").startswith(POD_NETNS_PREFIX)}


def gather(cid: str) -> Machine:
    names = sorted(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else []
    keys = {}
    for n in names:
        key = _key(str(NETNS_DIR / n))
        if key:
            keys[n] = key
    peers: dict[str, set[str]] = {}
    for node in (n for n in names if n.startswith(f"nen-{cid}-")):
        for pod in pods_linked_to(node):
            peers.setdefault(pod, set()).add(node)
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = processes.cmdline(int(entry))
            procs.append((int(entry), argv, _key(f"/proc/{entry}/ns/net")))
    links = [link["ifname"] for link in _ip_json(["ip", "-j", "link", "show"])]
    return Machine(names, peers, keys, procs, links)


def apply(plan: Cleanup, pod_etc: set[str] = frozenset()) -> None:
    """``pod_etc``: more pod netns names whose /etc/netns files (resolv.conf, hosts) go, for
    pods whose namespace is already gone."""
    processes.kill(plan.kill)
    for name in plan.pod_netns + plan.node_netns:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    for name in set(plan.pod_netns) | set(pod_etc):
        remove_etc(netns_etc_dir(name))
    for name in plan.links:            # a veth's peer may have gone with the previous one
        subprocess.run(["ip", "link", "delete", name], capture_output=True)


def cleanup(state_dir: str) -> Cleanup:
    """Find and remove everything of the cluster at ``state_dir``; returns what was removed."""
    state = Path(os.path.abspath(state_dir))
    doc = read_json(state / CLUSTER_FILE)
    cid = (doc or {}).get("id") or cluster_id(str(state))
    supervisor = [p for p, words in recorded_processes(doc) if "--supervise" in words and p != os.getpid()]
    processes.kill([p for p in supervisor if processes.matches(p, "netemu", "--supervise", str(state))])
    known = recorded_pod_netns(state)
    plan = plan_cleanup(cid, str(state), doc, gather(cid), os.getpid(), known)
    apply(plan, known)
    # The kubeconfig goes too: its server is an address on a node network that no longer exists
    # here, so a kubectl still pointed at it would send its requests out of the default route.
    for leftover in (CLUSTER_FILE, STATUS_FILE, CONTROL_SOCKET, "kubeconfig", LB_STATUS_FILE):
        try:
            (state / leftover).unlink()
        except FileNotFoundError:
            pass
    shutil.rmtree(state / EXTERNALS_DIR, ignore_errors=True)     # their namespaces went above
    shutil.rmtree(os.path.join(NODE_CONTROL_DIR, cid), ignore_errors=True)   # node supervisors' sockets
    return plan
