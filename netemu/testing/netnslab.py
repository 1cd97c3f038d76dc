"""Small helpers that make network namespaces, bridges and veths for tests and the demo.

A ``Lab`` owns everything it creates (namespaces, processes) and removes it all in ``close()``,
also when the caller failed half way: a test or the demo wraps it in ``with Lab() as lab:``.
Links are only ever created *inside* the lab's namespaces (``ip -n NS link add ... peer ... netns
OTHER``), so the root namespace is never touched and deleting a namespace deletes its links.

Every namespace name starts with the lab's prefix (``kp<pid><n>``): unique per process and per lab,
so parallel engineers and parallel labs never collide, and a leak is traceable to its pid.
Everything runs as argv lists (``ip``, ``sysctl``); no shell string is ever built.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_LAB_COUNTER = itertools.count()

# A tiny backend each pod runs: answers every TCP connection (HTTP/1.0) and UDP datagram with
# "<pod name> <client ip>", like agnhost's /hostname and /clientip together. Kept as a constant
# (argv: name, port, proto) so no object field ever becomes code.
ECHO_SERVER_SOURCE = r"""
import socket, sys, threading
name, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(512)
    print("ready", flush=True)
    while True:
        c, addr = s.accept()
        try:
            c.settimeout(2)
            try: c.recv(4096)
            except OSError: pass
            body = ("%s %s\n" % (name, addr[0])).encode()
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except OSError: pass
        finally: c.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, addr = s.recvfrom(4096)
        s.sendto(("%s %s\n" % (name, addr[0])).encode(), addr)
(tcp if proto == "tcp" else udp)()
"""

# The client: opens N new connections (or sends N datagrams) to ip:port and prints one JSON list
# of the answers' first words-pairs; a failed attempt is recorded as null (never retried: a
# blackhole must show). argv: ip, port, proto, count, timeout, [source port for udp]
CLIENT_SOURCE = r"""
import json, socket, sys
ip, port, proto, n, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
sport = int(sys.argv[6]) if len(sys.argv) > 6 else 0
out = []
for _ in range(n):
    try:
        if proto == "tcp":
            s = socket.create_connection((ip, port), timeout=timeout)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk: break
                data += chunk
            s.close()
            out.append(data.split(b"\r\n\r\n", 1)[-1].decode().strip())
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", sport)); s.settimeout(timeout)
            s.sendto(b"hi", (ip, port))
            out.append(s.recvfrom(4096)[0].decode().strip())
            s.close()
    except OSError:
        out.append(None)
print(json.dumps(out))
"""


class LabError(RuntimeError):
    """A namespace command failed; the message carries the argv and the kernel's answer."""


def run(argv: list[str], *, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    """Run one argv (never a shell), capturing output; raise LabError with stderr on failure."""
    proc = subprocess.run(argv, input=input, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def in_netns(ns: str, argv: list[str]) -> list[str]:
    """The argv that runs ``argv`` inside namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *argv]


@dataclass
class Pod:
    """A pod sandbox: its namespace, its IP on the node's bridge, the node it lives on."""

    name: str
    netns: str
    ip: str
    node: "Node"


@dataclass
class Node:
    """A node namespace: a cni0 bridge (gateway of its pod CIDR) and, once linked, a node IP."""

    name: str
    netns: str
    pod_cidr: ipaddress.IPv4Network
    node_ip: str | None = None
    pods: list[Pod] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return str(self.pod_cidr.network_address + 1)


class Lab:
    """Owns namespaces and processes made for one experiment; ``close()`` removes them all."""

    def __init__(self, prefix: str | None = None):
        self.prefix = prefix or f"kp{os.getpid()}{next(_LAB_COUNTER):x}"
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self._veths = itertools.count()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- namespaces ------------------------------------------------------------------------
    def netns(self, tag: str) -> str:
        """Create namespace ``<prefix><tag>`` with loopback up and return its name."""
        name = f"{self.prefix}{tag}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def sysctl(self, ns: str, *settings: str) -> None:
        """Set sysctls (``"net.ipv4.ip_forward=1"``) inside ``ns``: a new netns has its own."""
        run(in_netns(ns, ["sysctl", "-q", "-w", *settings]))

    def node(self, name: str, pod_cidr: str = "10.244.1.0/24") -> Node:
        """A node namespace with cni0 (hairpin-ready bridge), ip_forward and br_netfilter on.

        br_netfilter makes bridged pod-to-pod replies traverse iptables, so conntrack can undo
        the Service DNAT of same-node traffic; without it same-node Service traffic breaks.
        """
        ns = self.netns(name)
        node = Node(name=name, netns=ns, pod_cidr=ipaddress.ip_network(pod_cidr))
        prefix_len = node.pod_cidr.prefixlen
        run(["ip", "-n", ns, "link", "add", "cni0", "type", "bridge"])
        run(["ip", "-n", ns, "addr", "add", f"{node.gateway}/{prefix_len}", "dev", "cni0"])
        run(["ip", "-n", ns, "link", "set", "cni0", "up"])
        ensure_br_netfilter()
        self.sysctl(ns, "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1")
        return node

    def pod(self, node: Node, name: str, ip: str | None = None) -> Pod:
        """A pod namespace plugged into ``node``'s cni0 (hairpin on), default route via cni0."""
        ns = self.netns(name)
        ip = ip or str(node.pod_cidr.network_address + 10 + len(node.pods))
        host_end = f"veth{next(self._veths)}"
        run(["ip", "-n", node.netns, "link", "add", host_end, "type", "veth",
             "peer", "name", "eth0", "netns", ns])
        run(["ip", "-n", node.netns, "link", "set", host_end, "master", "cni0", "up"])
        run(["ip", "-n", node.netns, "link", "set", host_end, "type", "bridge_slave", "hairpin", "on"])
        run(["ip", "-n", ns, "addr", "add", f"{ip}/{node.pod_cidr.prefixlen}", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        run(["ip", "-n", ns, "route", "add", "default", "via", node.gateway])
        pod = Pod(name=name, netns=ns, ip=ip, node=node)
        node.pods.append(pod)
        return pod

    def link_nodes(self, a: Node, b: Node, a_ip: str, b_ip: str, prefix_len: int = 24) -> None:
        """A veth between two node namespaces (their node network), with routes to pod CIDRs."""
        run(["ip", "-n", a.netns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1",
             "netns", b.netns])
        for node, ip in ((a, a_ip), (b, b_ip)):
            run(["ip", "-n", node.netns, "addr", "add", f"{ip}/{prefix_len}", "dev", "eth1"])
            run(["ip", "-n", node.netns, "link", "set", "eth1", "up"])
            node.node_ip = ip
        run(["ip", "-n", a.netns, "route", "add", str(b.pod_cidr), "via", b_ip])
        run(["ip", "-n", b.netns, "route", "add", str(a.pod_cidr), "via", a_ip])

    # -- processes -------------------------------------------------------------------------
    def spawn(self, ns: str, argv: list[str]) -> subprocess.Popen:
        """Start a process inside ``ns``; the lab ends it (by its pid) in ``close()``."""
        proc = subprocess.Popen(in_netns(ns, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        self.processes.append(proc)
        return proc

    def echo_server(self, pod: Pod, port: int = 8080, proto: str = "tcp") -> subprocess.Popen:
        """Start the pod's backend (answers "<pod name> <client ip>") and wait until it listens."""
        proc = self.spawn(pod.netns, [sys.executable, "-c", ECHO_SERVER_SOURCE, pod.name, str(port), proto])
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise LabError(f"echo server in {pod.netns} did not start: {proc.stderr.read()}")
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        """End one process this lab started (its own session: the whole group, by pid)."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    def close(self) -> None:
        """Stop every process, then delete every namespace (their links go with them)."""
        for proc in reversed(self.processes):
            try:
                self.stop(proc)
            except Exception:  # keep cleaning up whatever happens
                log.exception("stopping pid %s", proc.pid)
        self.processes.clear()
        for ns in reversed(self.namespaces):
            proc = run(["ip", "netns", "del", ns], check=False)
            if proc.returncode != 0:
                log.warning("could not delete netns %s: %s", ns, proc.stderr.strip())
        self.namespaces.clear()


def requests(ns: str, ip: str, port: int, *, proto: str = "tcp", count: int = 1,
             timeout: float = 2.0, source_port: int = 0) -> list[str | None]:
    """Send ``count`` new connections/datagrams from ``ns``; each answer (or None) in order."""
    argv = [sys.executable, "-c", CLIENT_SOURCE, ip, str(port), proto, str(count), str(timeout)]
    if source_port:
        argv.append(str(source_port))
    out = run(in_netns(ns, argv)).stdout
    return json.loads(out)


# How one TCP connection attempt ends: "ok", "refused" (a RST or ICMP unreachable: a REJECT),
# or "timeout" (nothing came back: a DROP). argv: ip, port, timeout
CONNECT_SOURCE = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("ok")
except ConnectionRefusedError:
    print("refused")
except OSError as exc:
    print("timeout" if isinstance(exc, socket.timeout) else "unreachable %s" % exc.errno)
"""


def connect_result(ns: str, ip: str, port: int, timeout: float = 1.0) -> str:
    """How a TCP connect from ``ns`` ends: ok, refused (REJECT), timeout (DROP) or unreachable."""
    return run(in_netns(ns, [sys.executable, "-c", CONNECT_SOURCE, ip, str(port), str(timeout)])).stdout.strip()


def ensure_br_netfilter() -> None:
    """Load br_netfilter if it is a module; fine when it is built in (the sysctl exists)."""
    if os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        return
    proc = run(["modprobe", "br_netfilter"], check=False)
    if proc.returncode != 0 and not os.path.exists("/proc/sys/net/bridge"):
        raise LabError(f"br_netfilter is not available: {proc.stderr.strip()}")
