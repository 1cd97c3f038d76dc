"""A real IPVS node in namespaces, programmed by netemu's IPVS proxier (needs ip_vs: lab VM only).

One node namespace runs the proxier's kernel side (virtual servers, kube-ipvs0, the KUBE-* sets and
chains); three backend namespaces ("pods" on that node) answer every connection with the source
address they saw and their name (one small Python server each: a process per connection is too
slow in the VM for 600 connections); a client pod namespace and an external client namespace connect.
The kernel state is read back independently with pyroute2's IPVS API. What it proves: rr spreads
600 connections evenly, wrr follows the weights, sh keeps a client on one backend, ClientIP
affinity holds until its template expires, a removed endpoint gets weight 0 and disappears once
its connection is gone, a NodePort answers from another namespace (masqueraded), ETP Local keeps
the client's address; and ``netemu proxy cleanup`` leaves nothing behind. One lab for the module:
Python is slow in the VM.
"""

from __future__ import annotations

import collections
import contextlib
import subprocess
import sys
import time

import pytest

from netemu.agent.proxy.commands import netns_exec
from netemu.agent.proxy.ipvs.proxier import make_proxier
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from tests.labvm._lab import TAG, ip, netns

pytestmark = [pytest.mark.labvm, pytest.mark.timeout(900)]

NODE_NS, CLIENT_NS, EXTERNAL_NS = f"lvn-{TAG}", f"lvc-{TAG}", f"lve-{TAG}"
BACKENDS = [f"lvb{i}-{TAG}" for i in (1, 2, 3)]
BACKEND_IPS = ["10.244.1.2", "10.244.2.2", "10.244.3.2"]
NODE = NodeInfo("node", ("192.0.2.1",), "10.244.0.0/16")
CLIENT_IP, EXTERNAL_IP, NODE_IP = "10.244.9.2", "192.0.2.2", "192.0.2.1"
# Longer than the 10 s a RST-closed connection stays in IPVS's table: a persistence template whose
# timer fires while it still controls a connection is kept 60 s more (the kernel's expire_later).
AFFINITY = 15

# a backend ("pod"): port 8080 answers "PEER NAME" and closes, port 8081 accepts and holds
SERVER = """
import selectors, socket, sys
name, sel, held = sys.argv[1], selectors.DefaultSelector(), []
for port, mode in ((8080, "peer"), (8081, "hold")):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(256)
    sel.register(s, selectors.EVENT_READ, mode)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        conn, addr = key.fileobj.accept()
        if key.data == "peer":
            conn.sendall(f"{addr[0]} {name}\\n".encode())
            conn.close()
        else:
            held.append(conn)
"""
# n connections, one after the other; each closed with a RST once answered (IPVS forgets it in
# 10 s instead of keeping it in TIME_WAIT for 2 minutes)
CLIENT = """
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(n):
    s = socket.create_connection((host, port), timeout=15)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    print(" ".join(data.decode().split()), flush=True)
"""
HOLD = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
print("open", flush=True)
time.sleep(600)
"""


def service(name, cluster_ip, *, port=80, target=8080, node_port=None, **spec):
    p = {"name": "p", "port": port, "protocol": "TCP", "targetPort": target} | ({"nodePort": node_port} if node_port else {})
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": "1"},
            "spec": {"clusterIP": cluster_ip, "type": "NodePort" if node_port else "ClusterIP", "ports": [p], **spec}}


def endpoints(name, ips, *, port=8080, nodes=None):
    return {"metadata": {"name": f"{name}-1", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "p", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "nodeName": (nodes or {}).get(a, "node")} for a in ips]}


SERVICES = [service("web", "10.96.0.10", node_port=30080),
            service("local", "10.96.0.11", node_port=30081, externalTrafficPolicy="Local"),
            service("sticky", "10.96.0.12", sessionAffinity="ClientIP",
                    sessionAffinityConfig={"clientIP": {"timeoutSeconds": AFFINITY}}),
            service("hold", "10.96.0.13", port=81, target=8081)]
SLICES = [endpoints("web", BACKEND_IPS), endpoints("local", BACKEND_IPS[:2], nodes={BACKEND_IPS[1]: "other"}),
          endpoints("sticky", BACKEND_IPS), endpoints("hold", BACKEND_IPS[:2], port=8081)]


class Lab:
    def __init__(self, stack: contextlib.ExitStack):
        self.stack = stack
        self.proxier = None

    def program(self, scheduler="rr", slices=SLICES, **options):
        """A fresh proxier for the node (a full sync: the scheduler of every virtual server changes)."""
        if self.proxier is not None:
            self.proxier.stop()
            self.proxier.kernel.close()
        self.proxier = make_proxier(NODE, ProxyConfig(), exec_=netns_exec(NODE_NS), ipvs_scheduler=scheduler,
                                    ipvs_tcpfin_timeout="1s", graceful_interval=1.0, **options)
        self.proxier.load(SERVICES, slices)
        result = self.proxier.sync()
        assert result.ok, result.error
        return self.proxier

    def connect(self, ns, host, port, n):
        done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, host, str(port), str(n)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return [line.split() for line in done.stdout.splitlines()]      # [peer, backend]

    def ipvs(self):
        """{VIP:port: {real server: (weight, active conns)}} read with pyroute2's own IPVS API."""
        from pyroute2 import IPVS, IPVSDest, IPVSService

        with IPVS(netns=NODE_NS) as sock:
            out = {}
            for msg in sock.service("dump"):
                svc = IPVSService.from_message(msg)
                key = f"{svc['addr']}:{svc['port']}"
                out[key] = {}
                for d in sock.dest("dump", service=IPVSService(addr=svc["addr"], port=svc["port"],
                                                                protocol=svc["protocol"])):
                    dest = IPVSDest.from_message(d)
                    out[key][f"{dest['addr']}:{dest['port']}"] = (dest["weight"], dest["IPVS_DEST_ATTR_ACTIVE_CONNS"])
        return out


def _veth(ns_a, if_a, cidr_a, ns_b, cidr_b, gateway_b):
    ip("link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", "eth0", "netns", ns_b)
    ip("-n", ns_a, "addr", "add", cidr_a, "dev", if_a)
    ip("-n", ns_a, "link", "set", if_a, "up")
    ip("-n", ns_b, "addr", "add", cidr_b, "dev", "eth0")
    ip("-n", ns_b, "link", "set", "eth0", "up")
    ip("-n", ns_b, "route", "add", "default", "via", gateway_b)


@contextlib.contextmanager
def _backend(ns):
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, ns],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def lab():
    with contextlib.ExitStack() as stack:
        for name in (NODE_NS, CLIENT_NS, EXTERNAL_NS, *BACKENDS):
            stack.enter_context(netns(name))
        for i, (name, addr) in enumerate(zip(BACKENDS, BACKEND_IPS), start=1):
            _veth(NODE_NS, f"nb{i}", f"10.244.{i}.1/24", name, f"{addr}/24", f"10.244.{i}.1")
        servers = [stack.enter_context(_backend(name)) for name in BACKENDS]     # start together: slow in the VM
        assert all(proc.stdout.readline().strip() == "ready" for proc in servers)
        _veth(NODE_NS, "nc", "10.244.9.1/24", CLIENT_NS, f"{CLIENT_IP}/24", "10.244.9.1")
        _veth(NODE_NS, "ne", f"{NODE_IP}/24", EXTERNAL_NS, f"{EXTERNAL_IP}/24", NODE_IP)
        lab = Lab(stack)
        try:
            yield lab
        finally:
            if lab.proxier is not None:
                lab.proxier.stop()
                lab.proxier.kernel.close()


def test_the_node_holds_the_plan(lab):
    lab.program()
    state = lab.ipvs()
    assert state["10.96.0.10:80"] == {f"{a}:8080": (1, 0) for a in BACKEND_IPS}
    assert set(state["192.0.2.1:30081"]) == {"10.244.1.2:8080"}            # ETP Local: this node's endpoint
    addrs = ip("-n", NODE_NS, "-o", "addr", "show", "dev", "kube-ipvs0")
    assert all(vip in addrs for vip in ("10.96.0.10", "10.96.0.11", "10.96.0.12", "10.96.0.13"))
    sets = subprocess.run(["ip", "netns", "exec", NODE_NS, "ipset", "list", "KUBE-CLUSTER-IP"],
                          capture_output=True, text=True, check=True).stdout
    assert "10.96.0.10,tcp:80" in sets
    nat = subprocess.run(["ip", "netns", "exec", NODE_NS, "iptables-save", "-t", "nat"],
                         capture_output=True, text=True, check=True).stdout
    assert "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES" in nat
    assert lab.proxier.sync().ok and lab.proxier.last_stats.nothing     # nothing changed: nothing sent


def test_rr_spreads_600_connections_evenly(lab):
    from scipy.stats import chisquare

    lab.program("rr")
    counts = collections.Counter(backend for _peer, backend in lab.connect(CLIENT_NS, "10.96.0.10", 80, 600))
    assert set(counts) == set(BACKENDS)
    assert chisquare([counts[b] for b in BACKENDS]).pvalue > 0.01, counts


def test_wrr_follows_the_weights(lab):
    """kube-proxy gives every real server weight 1; an experimenter changes them in the kernel
    (here with pyroute2's IPVS API), and wrr follows."""
    from pyroute2 import IPVS, IPVSDest, IPVSService
    from scipy.stats import chisquare

    lab.program("wrr")
    with IPVS(netns=NODE_NS) as sock:
        vs = IPVSService(addr="10.96.0.10", port=80, protocol=6)
        for addr, weight in zip(BACKEND_IPS, (1, 2, 3)):
            sock.dest("set", service=vs, dest=IPVSDest(addr=addr, port=8080, weight=weight, fwd_method=0))
    counts = collections.Counter(backend for _peer, backend in lab.connect(CLIENT_NS, "10.96.0.10", 80, 600))
    assert chisquare([counts[b] for b in BACKENDS], [100, 200, 300]).pvalue > 0.01, counts


def test_sh_keeps_each_client_on_one_backend(lab):
    lab.program("sh")
    pod = {backend for _peer, backend in lab.connect(CLIENT_NS, "10.96.0.10", 80, 60)}
    outside = {backend for _peer, backend in lab.connect(EXTERNAL_NS, NODE_IP, 30080, 60)}
    assert len(pod) == 1 and len(outside) == 1


def test_client_ip_affinity_holds_until_its_template_expires(lab):
    lab.program("rr")
    first = {backend for _peer, backend in lab.connect(CLIENT_NS, "10.96.0.12", 80, 20)}
    assert len(first) == 1
    [template] = _templates(lab, "0A60000C")        # 10.96.0.12: the client's persistence template
    assert int(template.split()[8]) <= AFFINITY
    deadline = time.monotonic() + AFFINITY + 60
    while _templates(lab, "0A60000C"):
        assert time.monotonic() < deadline, f"the affinity template never expired: {_conns(lab)}"
        time.sleep(1)
    after = {backend for _peer, backend in lab.connect(CLIENT_NS, "10.96.0.12", 80, 20)}
    assert len(after) == 1 and after != first      # rr moved on: the next client choice is another backend


def _conns(lab) -> str:
    return subprocess.run(["ip", "netns", "exec", NODE_NS, "cat", "/proc/net/ip_vs_conn"],
                          capture_output=True, text=True, check=True).stdout


def _templates(lab, vip_hex):
    return [line for line in _conns(lab).splitlines()[1:] if vip_hex in line and line.split()[2] == "0000"]


def test_a_removed_endpoint_gets_weight_0_then_disappears(lab):
    proxier = lab.program("rr")
    holder = subprocess.Popen(["ip", "netns", "exec", CLIENT_NS, sys.executable, "-c", HOLD, "10.96.0.13", "81"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        busy = next(rs for rs, (_w, active) in lab.ipvs()["10.96.0.13:81"].items() if active == 1)
        keep = [a for a in BACKEND_IPS[:2] if not busy.startswith(a)]
        proxier.on_slice_update(SLICES[3], endpoints("hold", keep, port=8081))
        assert proxier.sync().ok
        state = lab.ipvs()["10.96.0.13:81"]
        assert state[busy] == (0, 1) and state[f"{keep[0]}:8081"][0] == 1       # draining, still serving
    finally:
        holder.kill()                # its socket closes with a RST: the connection ends at once
        holder.wait()
    deadline = time.monotonic() + 60
    while busy in lab.ipvs()["10.96.0.13:81"]:
        assert time.monotonic() < deadline, "the drained real server was never deleted"
        proxier.drain()
        time.sleep(1)
    assert set(lab.ipvs()["10.96.0.13:81"]) == {f"{keep[0]}:8081"}


def test_node_port_from_another_namespace_is_masqueraded(lab):
    lab.program("rr")
    answers = lab.connect(EXTERNAL_NS, NODE_IP, 30080, 30)
    assert {backend for _peer, backend in answers} == set(BACKENDS)
    assert all(peer.startswith("10.244.") and peer.endswith(".1") for peer, _backend in answers)


def test_external_traffic_policy_local_keeps_the_client_ip(lab):
    lab.program("rr")
    answers = lab.connect(EXTERNAL_NS, NODE_IP, 30081, 10)
    assert answers == [[EXTERNAL_IP, BACKENDS[0]]] * 10


def test_proxy_cleanup_leaves_nothing_behind(lab):
    from netemu.agent.proxy.leftovers import Cleaner

    lab.program("rr")
    lab.proxier.stop()
    report = Cleaner(netns=NODE_NS).cleanup()
    assert not report.errors, report.errors
    assert lab.ipvs() == {}
    assert "kube-ipvs0" not in ip("-n", NODE_NS, "-o", "link", "show")
    sets = subprocess.run(["ip", "netns", "exec", NODE_NS, "ipset", "list", "-n"], capture_output=True, text=True)
    assert "KUBE-" not in sets.stdout
    saved = subprocess.run(["ip", "netns", "exec", NODE_NS, "iptables-save"], capture_output=True, text=True).stdout
    assert "KUBE-" not in saved


def test_the_benchmark_runs_at_a_small_scale(capsys):
    """netemu.bench.ipvs (docs/benchmarks.md's numbers) keeps working: both modes sync, and the
    netlink batch and ipvsadm -R make the same virtual servers."""
    import json

    from netemu.bench import ipvs as bench

    assert bench.main(["--scales", "20", "--repeats", "2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r.get("mode") for r in rows] == ["ipvs", "iptables", None]
    assert rows[0]["one_s"] > 0 and rows[2]["virtual_servers"] == 20 and rows[2]["messages"] == 20 * 6
