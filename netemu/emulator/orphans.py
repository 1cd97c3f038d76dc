"""Plain ``netemu cleanup``: every netemu cluster on this machine whose supervisor is dead,
found from the machine itself, and removed cluster by cluster.

A user who started a cluster with ``--state-dir /tmp/x``, lost it (kill -9, a crash, a closed
terminal) and then typed ``netemu cleanup`` expects the leftovers gone whatever the state dir
was. What names a cluster on the machine (plan.py's naming): node namespaces ``nen-<id>-*`` and
external hosts ``nex-<id>-*``, root-namespace links ``n<id>s<k>``/``n<id>h<k>-eth<n>``/
``n<id>x<hex>``, node supervisors' sockets under /run/netemu/nodes/<id>, the registry entry a
supervisor writes at start (/run/netemu/clusters/<id>.json: its state dir), and the command
lines of its processes (``--state-dir``). Each id found is one cluster.

A cluster is alive, and never touched without ``--force``, when any of these holds: the lock
on its state dir is held (``up.lock``: the supervisor's flock, gone with it even after kill -9),
a ``netemu up --supervise`` process of that state dir runs, or the node network its root link
carries is locked (/run/netemu/locks). Only then is it dead, and cleanup.py removes it: by its
state dir when known (pods recorded there included), else by its id alone.

``find_clusters`` is pure over a Machine snapshot (unit-tested); ``gather`` and ``sweep`` are
the edges.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from netemu.emulator import cleanup
from netemu.emulator.external import EXTERNAL_NETNS_PREFIX
from netemu.emulator.plan import NODE_CONTROL_DIR, cluster_id
from netemu.emulator.state import DEFAULT_STATE_DIR, LOCK_FILE, cmdline, network_lock_path, read_json, write_json

REGISTRY_DIR = Path("/run/netemu/clusters")
_LINK = re.compile(r"^n([0-9a-f]{4})(s\d+|h\d+-eth\d+|x[0-9a-f]{6})$")
_NETNS = re.compile(rf"^(?:nen-|{re.escape(EXTERNAL_NETNS_PREFIX)})([0-9a-f]{{4}})-")


@dataclass
class Found:
    """One cluster seen on the machine."""

    cid: str
    state_dirs: set[str] = field(default_factory=set)
    why: set[str] = field(default_factory=set)            # what named it (netns, link, process ...)
    networks: set[str] = field(default_factory=set)       # node networks its root links carry


@dataclass
class Snapshot:
    """What the machine shows, the pure planner's input."""

    netns: list[str]
    links: dict[str, list[str]]                   # root link -> its IPv4 addresses with prefix
    procs: list[tuple[int, list[str]]]            # pid, argv
    registry: dict[str, str]                      # cid -> state dir (from /run/netemu/clusters)
    control_dirs: list[str]                       # ids under /run/netemu/nodes


def state_dir_of_argv(argv: list[str]) -> str | None:
    """The cluster's state dir a netemu process's command line names, or None. The API server
    is given ``<state>/controlplane`` and a (fake) agent ``<state>/nodes/<node>``."""
    if not any("netemu" in a for a in argv) or "--state-dir" not in argv[:-1]:
        return None
    value = os.path.normpath(argv[argv.index("--state-dir") + 1])
    if "apiserver" in argv and os.path.basename(value) == "controlplane":
        return os.path.dirname(value)
    parent = os.path.dirname(value)
    if os.path.basename(parent) == "nodes" and ("agent" in argv or any(a.endswith("fakeagent") for a in argv)):
        return os.path.dirname(parent)
    return value


def find_clusters(snap: Snapshot) -> dict[str, Found]:
    """Every cluster id the snapshot shows, with the state dirs and networks known for it. Pure."""
    found: dict[str, Found] = {}

    def see(cid: str, why: str) -> Found:
        f = found.setdefault(cid, Found(cid))
        f.why.add(why)
        return f
    for name in snap.netns:
        m = _NETNS.match(name)
        if m:
            see(m.group(1), "namespaces")
    for name, addrs in snap.links.items():
        m = _LINK.match(name)
        if m:
            f = see(m.group(1), "links")
            f.networks |= {str(ipaddress.ip_interface(a).network) for a in addrs}
    for cid in snap.control_dirs:
        if re.fullmatch(r"[0-9a-f]{4}", cid):
            see(cid, "sockets")
    for cid, state in snap.registry.items():
        see(cid, "registry").state_dirs.add(state)
    for _pid, argv in snap.procs:
        state = state_dir_of_argv(argv)
        if state:
            see(cluster_id(state), "processes").state_dirs.add(state)
    return found


def supervisor_running(snap: Snapshot, state_dirs: set[str]) -> int | None:
    """The pid of a ``netemu up --supervise`` process of one of ``state_dirs``. Pure."""
    for pid, argv in snap.procs:
        if "--supervise" in argv and state_dir_of_argv(argv) in state_dirs:
            return pid
    return None


# ---- effects ----

def lock_held(path: Path) -> bool:
    """Is ``path`` flock-ed by a live process (taken and released at once when it is not)?"""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def alive(f: Found, snap: Snapshot) -> str | None:
    """Why the cluster counts as running (None: its supervisor is dead)."""
    pid = supervisor_running(snap, f.state_dirs)
    if pid:
        return f"supervisor pid {pid}"
    for state in f.state_dirs:
        if lock_held(Path(state) / LOCK_FILE):
            return f"state dir {state} is locked"
    for net in f.networks:
        if lock_held(network_lock_path(net)):
            return f"node network {net} is locked"
    return None


def gather() -> Snapshot:
    netns = sorted(os.listdir(cleanup.NETNS_DIR)) if cleanup.NETNS_DIR.is_dir() else []
    links = {link["ifname"]: [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                              if a.get("family") == "inet"]
             for link in cleanup._ip_json(["ip", "-j", "addr", "show"])}
    procs = [(int(e), cmdline(int(e))) for e in os.listdir("/proc") if e.isdigit() and int(e) != os.getpid()]
    registry = {}
    if REGISTRY_DIR.is_dir():
        for entry in REGISTRY_DIR.glob("*.json"):
            doc = read_json(entry) or {}
            if isinstance(doc.get("state_dir"), str):
                registry[entry.stem] = doc["state_dir"]
    controls = sorted(os.listdir(NODE_CONTROL_DIR)) if os.path.isdir(NODE_CONTROL_DIR) else []
    return Snapshot(netns, links, procs, registry, controls)


def register(cid: str, state_dir: str, node_network: str) -> None:
    """The supervisor's entry: how plain ``netemu cleanup`` learns a cluster's state dir."""
    REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
    write_json(REGISTRY_DIR / f"{cid}.json", {"state_dir": state_dir, "node_network": node_network,
                                              "supervisor_pid": os.getpid()})


def forget(cid: str) -> None:
    (REGISTRY_DIR / f"{cid}.json").unlink(missing_ok=True)
    shutil.rmtree(os.path.join(NODE_CONTROL_DIR, cid), ignore_errors=True)


@dataclass
class Result:
    cid: str
    state_dir: str | None
    removed: cleanup.Cleanup | None = None
    running: str | None = None          # why it was left alone


def sweep(force: bool = False) -> list[Result]:
    """Remove every dead cluster (every cluster with ``force``); what was done, per cluster."""
    snap = gather()
    found = find_clusters(snap)
    default = os.path.abspath(DEFAULT_STATE_DIR)
    if os.path.exists(os.path.join(default, "cluster.json")):
        found.setdefault(cluster_id(default), Found(cluster_id(default))).state_dirs.add(default)
    results = []
    for cid, f in sorted(found.items()):
        states = sorted(s for s in f.state_dirs if cluster_id(s) == cid)
        if f.why == {"processes"} and not any(_is_cluster_dir(s) for s in states):
            continue      # e.g. a standalone `netemu apiserver --state-dir`: not a cluster's
        why = alive(f, snap)
        if why and not force:
            results.append(Result(cid, states[0] if states else None, running=why))
            continue
        removed = cleanup.Cleanup()
        for state in states:
            _add(removed, cleanup.cleanup(state))
        if not states:                      # only its names are left: remove by id
            plan = cleanup.plan_cleanup(cid, "", None, cleanup.gather(cid), os.getpid())
            cleanup.apply(plan)
            _add(removed, plan)
        forget(cid)
        results.append(Result(cid, states[0] if states else None, removed=removed))
    return results


def _is_cluster_dir(state: str) -> bool:
    return any(os.path.exists(os.path.join(state, name)) for name in (LOCK_FILE, "cluster.json"))


def _add(total: cleanup.Cleanup, more: cleanup.Cleanup) -> None:
    total.kill += more.kill
    total.pod_netns += more.pod_netns
    total.node_netns += more.node_netns
    total.links += more.links


def describe(results: list[Result], summary) -> list[str]:
    """One line per cluster for the user. Pure (``summary`` renders a Cleanup)."""
    lines = []
    for r in results:
        name = f"cluster {r.cid}" + (f" ({r.state_dir})" if r.state_dir else " (state dir unknown)")
        if r.running:
            lines.append(f"{name}: running ({r.running}); left alone (--force removes it too)")
        elif r.removed is not None and not r.removed.empty():
            lines.append(f"{name}: removed {summary(r.removed)}")
        else:
            lines.append(f"{name}: removed its records (nothing else was left)")
    return lines or ["nothing to clean up"]


def to_json(results: list[Result]) -> str:
    return json.dumps([{"id": r.cid, "state_dir": r.state_dir, "running": r.running,
                        "removed": None if r.removed is None else vars(r.removed)} for r in results])
