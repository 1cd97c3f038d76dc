"""External client hosts: a machine on the cluster's node network that is not a node.

What NodePort, LoadBalancer and externalTrafficPolicy experiments need: a client whose packets
arrive at a node from outside (PREROUTING, not OUTPUT; a source address that is neither a pod's
nor a node's). Each external host is a network namespace ``nex-<id>-<name>`` with one veth
(``eth0`` inside, ``n<id>x<hash>`` in the root namespace) plugged into the cluster's switch (the
control plane's bridge, or another switch of the topology), and an address of the node network
taken from the top down below the LoadBalancer pool (.199, .198, ... of the last /24), so it
never meets a node (nodes count up from .2) or an LB address.

It has a connected route to the node network only: nothing it sends can leave the emulation.
With ``netemu up --edge`` the default external hosts are internet clients instead: on the edge's
internet segment (203.0.113.10 up), their default route via the provider LB host (cloud/edge.py),
which is also how a NodePort or a LoadBalancer IP is reached from them.
Made on demand (``netemu traffic --from external``), kept for the next run, and removed with the
cluster: ``netemu down`` and ``netemu cleanup`` find it by its names (cleanup.py), like a node's.
``ensure``/``remove`` are idempotent and serialised by a lock in the state dir. Other pieces
(an internet edge, an emulated cloud load balancer) build on ``External``.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import re
import subprocess
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from netemu.emulator.cloud.edge import Edge, client_ips
from netemu.emulator.plan import cluster_id, mn_prefix
from netemu.emulator.state import CLUSTER_FILE, read_json, write_json

EXTERNALS_DIR = "externals"
EXTERNAL_NETNS_PREFIX = "nex-"
DEFAULT_NAME = "external"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$")
LB_POOL_SIZE = 56                      # plan.lb_pool: the top 56 addresses of the node network


class ExternalError(RuntimeError):
    """An external host that cannot be made (no cluster, a bad name, no free address)."""


@dataclass(frozen=True)
class External:
    name: str
    netns: str
    ip: str
    prefixlen: int
    link: str                          # root-namespace end of its veth, a port of ``bridge``
    bridge: str
    gateway: str | None = None         # on the internet segment: the LB host (its default route)

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.prefixlen}"


def external_netns(cid: str, name: str) -> str:
    return f"{EXTERNAL_NETNS_PREFIX}{cid}-{name}"


def external_link(cid: str, name: str) -> str:
    """``n<id>x`` + 6 hex digits of the name: unique per cluster and name, <= 15 characters."""
    return f"{mn_prefix(cid)}x{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ExternalError(f"external host name {name!r}: 1-20 lowercase letters, digits and '-'")
    return name


def candidate_ips(node_network: str) -> list[str]:
    """Addresses for external hosts, best first: just below the LB pool, downwards."""
    net = ipaddress.ip_network(node_network)
    top = int(net.broadcast_address) - LB_POOL_SIZE
    return [str(ipaddress.ip_address(top - k)) for k in range(64) if top - k > int(net.network_address) + 1]


def pick_ip(node_network: str, taken: set[str]) -> str:
    """Pure: the first candidate nobody holds (nodes, the root namespace, other externals)."""
    for ip in candidate_ips(node_network):
        if ip not in taken:
            return ip
    raise ExternalError(f"no free address for an external host in {node_network}")


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ExternalError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _cluster(state_dir: str) -> dict:
    doc = read_json(Path(state_dir) / CLUSTER_FILE)
    if not doc:
        raise ExternalError(f"no running cluster at {state_dir} (no {CLUSTER_FILE}): netemu up first")
    return doc


def _bridge(doc: dict, switch: str | None) -> str:
    """The bridge to plug into: ``switch`` (a Mininet name of this cluster), else the control
    plane's (recorded as root_switch, or the one holding the root namespace's address)."""
    switches = list(doc.get("switches") or [])
    if switch is not None:
        if switch not in switches:
            raise ExternalError(f"no switch {switch!r} in this cluster (switches: {', '.join(switches)})")
        return switch
    if doc.get("root_switch"):
        return doc["root_switch"]
    out = json.loads(_run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    for link in out:
        if link["ifname"] in switches and any(a.get("local") == doc.get("root_ip") for a in link.get("addr_info", [])):
            return link["ifname"]
    if not switches:
        raise ExternalError("the cluster has no switch to attach an external host to")
    return switches[0]


@contextmanager
def _locked(state: Path):
    (state / EXTERNALS_DIR).mkdir(parents=True, exist_ok=True)
    with open(state / EXTERNALS_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def recorded(state_dir: str) -> dict[str, External]:
    out = {}
    for path in sorted((Path(state_dir) / EXTERNALS_DIR).glob("*.json")):
        data = read_json(path)
        if data:
            out[data["name"]] = External(**data)
    return out


def ensure(state_dir: str, name: str = DEFAULT_NAME, switch: str | None = None) -> External:
    """The external host ``name`` of the cluster at ``state_dir``, made now if it does not exist."""
    check_name(name)
    state = Path(state_dir).resolve()
    doc = _cluster(str(state))
    cid = doc.get("id") or cluster_id(str(state))
    with _locked(state):
        known = recorded(str(state))
        have = known.get(name)
        if have and Path("/run/netns", have.netns).exists():
            return have
        taken = {n.get("ip") for n in (doc.get("nodes") or {}).values()} | {doc.get("root_ip")}
        taken |= {e.ip for e in known.values() if e.name != name}
        if doc.get("edge") and switch is None:
            ext = _internet_client(Edge.from_dict(doc["edge"]), cid, name, taken)
        else:
            net = ipaddress.ip_network(doc["node_network"])
            ext = External(name, external_netns(cid, name), pick_ip(doc["node_network"], taken), net.prefixlen,
                           external_link(cid, name), _bridge(doc, switch))
        try:
            _plumb(ext)
        except BaseException:
            _unplumb(ext)
            raise
        write_json(state / EXTERNALS_DIR / f"{name}.json", asdict(ext))
        return ext


def _internet_client(edge: Edge, cid: str, name: str, taken: set) -> External:
    """A client on the edge's internet segment, routed through the LB host."""
    free = [ip for ip in client_ips(edge) if ip not in taken]
    if not free:
        raise ExternalError(f"no free address for an internet client in {edge.internet_cidr}")
    return External(name, external_netns(cid, name), free[0], ipaddress.ip_network(edge.internet_cidr).prefixlen,
                    external_link(cid, name), edge.bridge, edge.gateway)


def _plumb(ext: External) -> None:
    _run(["ip", "netns", "add", ext.netns])
    _run(["ip", "link", "add", ext.link, "type", "veth", "peer", "name", "eth0", "netns", ext.netns])
    _run(["ip", "link", "set", ext.link, "master", ext.bridge, "up"])
    _run(["ip", "-n", ext.netns, "link", "set", "lo", "up"])
    _run(["ip", "-n", ext.netns, "addr", "add", ext.cidr, "dev", "eth0"])
    _run(["ip", "-n", ext.netns, "link", "set", "eth0", "up"])
    if ext.gateway:
        _run(["ip", "-n", ext.netns, "route", "add", "default", "via", ext.gateway])


def _unplumb(ext: External) -> None:
    _run(["ip", "link", "del", ext.link], check=False)      # its peer goes with it
    _run(["ip", "netns", "delete", ext.netns], check=False)


def remove(state_dir: str, name: str = DEFAULT_NAME) -> bool:
    """Remove one external host; False when there was none."""
    state = Path(state_dir).resolve()
    with _locked(state):
        ext = recorded(str(state)).get(check_name(name))
        if ext is None:
            return False
        _unplumb(ext)
        (state / EXTERNALS_DIR / f"{name}.json").unlink(missing_ok=True)
        return True
