"""The tracer against the kernel: what `netemu trace` predicts is what netfilter does.

Three namespaces made here: a client (external: 203.0.113.2, and 203.0.113.130 outside the LB
source range), a node carrying our builder's rules (node IP 192.168.0.2, forwarding on), and a
"pods" namespace owning the endpoint IPs and answering on port 80. For each probe the client
opens one TCP connection; the kernel's answer is read from the node's conntrack table (the DNAT destination is the reply source, and the
reply destination is the node's own address when masqueraded, the client's when not; a packet
dropped or rejected in filter leaves no confirmed entry) and from how connect() fails (REJECT:
refused at once; DROP: timeout). The tracer reads the node's live iptables-save. Both backends.
Cleanup runs at the end, so this file also exercises `proxy cleanup` on builder output.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from netemu.agent.proxy.leftovers import Cleaner
from netemu.agent.proxy.iptables import render
from netemu.agent.proxy.xtables.dump import parse
from netemu.agent.proxy.model import NodeInfo
from netemu.agent.proxy.iptables.trace import STANDARD_JUMPS, Tracer
from netemu.agent.proxy.tracing import Packet

pytestmark = pytest.mark.root

NODE = NodeInfo("test-node", ("192.168.0.2",), "10.0.0.0/8")
NODE_POD_SIDE = "10.180.255.254"
NODE_IPS = ["192.168.0.2", "203.0.113.1", NODE_POD_SIDE]
ALLOWED, BLOCKED = "203.0.113.2", "203.0.113.130"


def _svc(ns, name, lb=None, **spec):
    obj = {"metadata": {"namespace": ns, "name": name}, "spec": spec}
    if lb:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": lb}]}}
    return obj


def _eps(ns, name, endpoints):
    return {"metadata": {"namespace": ns, "name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}]}


P80 = {"name": "p80", "port": 80, "protocol": "TCP"}
SERVICES = [
    _svc("ns1", "lb", "1.2.3.4", type="LoadBalancer", clusterIP="172.30.0.41",
         ports=[dict(P80, nodePort=30001)], loadBalancerSourceRanges=["203.0.113.0/25"]),
    _svc("ns2", "local", "5.6.7.8", type="LoadBalancer", externalTrafficPolicy="Local",
         clusterIP="172.30.0.42", ports=[dict(P80, nodePort=30002)], healthCheckNodePort=30100),
    _svc("ns3", "three", clusterIP="172.30.0.47", ports=[P80]),
    _svc("ns4", "empty", clusterIP="172.30.0.46", ports=[P80]),
]
SLICES = [
    _eps("ns1", "lb", [{"addresses": ["10.180.0.1"]}]),
    _eps("ns2", "local", [{"addresses": ["10.180.0.2"]}, {"addresses": ["10.180.2.1"], "nodeName": "test-node"}]),
    _eps("ns3", "three", [{"addresses": [f"10.180.0.{i}"]} for i in (1, 2, 3)]),
]


def sh(*argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{argv}: {done.stderr}")
    return done


def in_ns(ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *argv, **kw)


def jump_rules(rules_text: str) -> str:
    """kube-proxy's jumps from the built-in chains (the applier's job on a real node)."""
    dump = parse(rules_text)
    out = []
    for table in ("filter", "nat"):
        out.append(f"*{table}")
        for (t, chain), specs in STANDARD_JUMPS.items():
            if t == table:
                out += [f"-A {chain} {s}" for s in specs if s.split()[-1] in dump.tables[table].chains]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


@pytest.fixture
def lab():
    tag = f"ntp{os.getpid() % 10**6}"
    client, node, pods = f"{tag}k", f"{tag}n", f"{tag}p"
    made, server = [], None
    try:
        for ns in (client, node, pods):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", f"{tag}kc", "netns", client, "type", "veth", "peer", "name", f"{tag}kn",
           "netns", node)
        sh("ip", "link", "add", f"{tag}pp", "netns", pods, "type", "veth", "peer", "name", f"{tag}pn",
           "netns", node)
        for ns, dev, addrs in ((client, f"{tag}kc", [f"{ALLOWED}/24", f"{BLOCKED}/24"]),
                               (node, f"{tag}kn", ["203.0.113.1/24", "192.168.0.2/32"]),
                               (node, f"{tag}pn", [f"{NODE_POD_SIDE}/16"]),
                               (pods, f"{tag}pp", ["10.180.0.1/16", "10.180.0.2/16", "10.180.0.3/16",
                                                   "10.180.2.1/16"])):
            for a in addrs:
                in_ns(ns, "ip", "addr", "add", a, "dev", dev)
            in_ns(ns, "ip", "link", "set", dev, "up")
        in_ns(client, "ip", "route", "add", "default", "via", "203.0.113.1")
        in_ns(pods, "ip", "route", "add", "default", "via", NODE_POD_SIDE)
        in_ns(node, "ip", "route", "add", "default", "via", ALLOWED)   # the node's "upstream"
        in_ns(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # The node's default route leads back out of the client's link, so forwarding an
        # un-DNATed packet would send an ICMP redirect, and the per-host ICMP rate limit would
        # then swallow REJECT's port-unreachable: no redirects here.
        for conf in ("all", f"{tag}kn"):
            in_ns(node, "sysctl", "-qw", f"net.ipv4.conf.{conf}.send_redirects=0")
        server = subprocess.Popen(["ip", "netns", "exec", pods, sys.executable, "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "listening"
        yield client, node
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for ns in made:
            sh("ip", "netns", "del", ns, check=False)


# The endpoints answer (an unanswered SYN's conntrack entry would vanish on the RST of a closed port).
SERVER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80))
s.listen(128)
print("listening", flush=True)
while True:
    s.accept()[0].close()
"""


PROBE = """
import socket, sys, time
src, dst, port, sport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, sport))
s.settimeout(0.7)
t = time.monotonic()
try:
    s.connect((dst, port)); print("open")
except ConnectionRefusedError:
    print("refused")
except (socket.timeout, TimeoutError):
    print("timeout")
except OSError as e:
    print("error", e.errno)
"""


def kernel_answer(client: str, node: str, src: str, dst: str, port: int, sport: int) -> tuple[str, str | None, bool]:
    how = in_ns(client, "python3", "-c", PROBE, src, dst, str(port), str(sport)).stdout.strip()
    ct = in_ns(node, "conntrack", "-L", "-p", "tcp", "--orig-src", src, "--sport", str(sport),
               check=False).stdout
    entries = [line for line in ct.splitlines() if f"sport={sport} " in line]
    if not entries:
        return how, None, False
    fields = [w.split("=", 1) for w in entries[0].split() if "=" in w]
    srcs = [v for k, v in fields if k == "src"]
    dsts = [v for k, v in fields if k == "dst"]
    dports = [v for k, v in fields if k == "sport"]
    return how, f"{srcs[1]}:{dports[1]}", dsts[1] != src


def tracer_answer(tracer: Tracer, src: str, dst: str, port: int):
    return tracer.trace(Packet(src, dst, port, sport=40000), NODE_IPS, origin="external")


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_tracer_predicts_the_kernel(lab, backend):
    client, node = lab
    text = render(SERVICES, SLICES, NODE).text
    in_ns(node, f"iptables-{backend}-restore", "--noflush", stdin=text)
    in_ns(node, f"iptables-{backend}-restore", "--noflush", stdin=jump_rules(text))
    tracer = Tracer(parse(in_ns(node, f"iptables-{backend}-save").stdout))

    probes = [(ALLOWED, "1.2.3.4", 80), (BLOCKED, "1.2.3.4", 80), (BLOCKED, "192.168.0.2", 30001),
              (ALLOWED, "5.6.7.8", 80), (ALLOWED, "192.168.0.2", 30002), (ALLOWED, "172.30.0.46", 80)]
    probes += [(ALLOWED, "172.30.0.47", 80)] * 12
    seen_three = set()
    for n, (src, dst, port) in enumerate(probes):
        predicted = tracer_answer(tracer, src, dst, port)
        how, dnat, masq = kernel_answer(client, node, src, dst, port, 41000 + n)
        verdicts = {o.verdict for o in predicted.outcomes}
        case = f"{src} -> {dst}:{port}: tracer {predicted.render()} kernel {how} {dnat} masq={masq}"
        if verdicts == {"DROP"}:
            assert how == "timeout" and dnat is None, case
        elif verdicts == {"REJECT"}:
            assert how == "refused" and dnat is None, case
        else:
            assert verdicts == {"ACCEPT"} and how == "open" and dnat in predicted.endpoints(), case
            assert {o.masquerade for o in predicted.outcomes} == {masq}, case
            if dst == "172.30.0.47":
                seen_three.add(dnat)
    assert len(seen_three) >= 2      # 12 draws over 3 endpoints: all equal has p = 3 * 3**-12

    report = Cleaner(netns=node, backend=backend).cleanup()
    assert report.errors == [] and "KUBE-" not in in_ns(node, f"iptables-{backend}-save").stdout
