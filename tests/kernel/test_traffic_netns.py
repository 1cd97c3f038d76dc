"""The traffic generator against real namespaces, without a cluster: the measured facts.

One lab for the module (netemu.testing.netnslab): node n1 (cni0, br_netfilter) with five backend
pods running the built-in agnhost netexec (python -m netemu.testing.netexec: /hostname,
/clientip, UDP hostname), a client pod, and node n2 linked to n1 over 172.18.0.0/24 (a client
outside n1, for NodePorts). Our IptablesProxier programs n1 as kube-proxy would, and
netemu.traffic's TrafficRun sends the load from inside the client's namespace. Nothing leaves
the lab's namespaces; the lab removes them all, also on failure.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import threading
import time

import pytest

from netemu.agent.proxy.commands import netns_exec
from netemu.agent.proxy.iptables.proxier import IptablesProxier
from netemu.agent.proxy.model import NodeInfo
from netemu.testing.netnslab import Lab, in_netns, run
from netemu.traffic.run import Scope, TrafficRun
from netemu.traffic.spec import LoadSpec, Target

pytestmark = pytest.mark.root

N1_IP, N2_IP = "172.18.0.2", "172.18.0.3"
IPS = {"web3": "10.96.0.30", "web5": "10.96.0.50", "sticky": "10.96.0.60", "np": "10.96.0.70",
       "local": "10.96.0.80"}
NODE_PORTS = {"np": 30070, "local": 30080}


def service(name, **spec):
    port = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
    if name in NODE_PORTS:
        port["nodePort"] = NODE_PORTS[name]
        spec.setdefault("type", "NodePort")
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": IPS[name], "type": spec.pop("type", "ClusterIP"), "ports": [port], **spec}}


def slice_of(name, pods):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-x", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [p.ip], "conditions": {"ready": True}, "nodeName": "n1"} for p in pods]}


class World:
    def __init__(self, lab: Lab):
        self.lab = lab
        self.n1 = lab.node("n1")
        self.pods = [lab.pod(self.n1, f"b{i}") for i in range(5)]
        self.client = lab.pod(self.n1, "cl")
        self.n2 = lab.node("n2", "10.244.2.0/24")
        lab.link_nodes(self.n1, self.n2, N1_IP, N2_IP)
        lab.sysctl(self.n1.netns, "net.ipv4.icmp_ratelimit=0")    # every unroutable SYN gets its ICMP
        self.servers = {p.name: self.serve(p) for p in self.pods}
        backend = "legacy" if shutil.which("iptables-legacy-restore") else "nft"
        self.proxier = IptablesProxier(NodeInfo(name="n1", ips=(N1_IP,), cluster_cidr="10.244.0.0/16"),
                                       backend=backend, exec_=netns_exec(self.n1.netns))
        self.slices = {"web3": slice_of("web3", self.pods[:3]), "web5": slice_of("web5", self.pods),
                       "sticky": slice_of("sticky", self.pods[:3]), "np": slice_of("np", self.pods[:3]),
                       "local": slice_of("local", self.pods[:3])}
        self.proxier.load([service("web3"), service("web5"), service("np"),
                           service("sticky", sessionAffinity="ClientIP",
                                   sessionAffinityConfig={"clientIP": {"timeoutSeconds": 300}}),
                           service("local", externalTrafficPolicy="Local")], list(self.slices.values()))
        result = self.proxier.sync()
        assert result.ok, result.error
        self.scope = Scope.of([*IPS.values(), N1_IP, N2_IP, *(p.ip for p in self.pods), "10.250.0.1"],
                              "this lab")

    def serve(self, pod):
        proc = self.lab.spawn(pod.netns, [sys.executable, "-m", "netemu.testing.netexec", pod.name,
                                          "--http-port=8080", "--udp-port=8081"])
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        return proc

    def traffic(self, ip, port, spec, netns=None, expected=None, **kw):
        return asyncio.run(TrafficRun(Target(ip, port), spec, scope=self.scope, netns=netns or self.client.netns,
                                      expected=expected, **kw).run())


@pytest.fixture(scope="module")
def world():
    with Lab() as lab:
        yield World(lab)


@pytest.mark.parametrize("name, n", [("web3", 3), ("web5", 5)])
def test_every_endpoint_answers_and_the_spread_is_uniform(world, name, n):
    names = [p.name for p in world.pods[:n]]
    r = world.traffic(IPS[name], 80, LoadSpec(connections=200 * n, concurrency=8), expected=names)
    assert r.ok == 200 * n and r.errors == {}, r.errors
    assert set(r.endpoints) == set(names) and r.unseen == []
    assert r.chi_square["dof"] == n - 1 and r.chi_square["p_value"] > 0.001, r.endpoints
    assert r.connect["count"] == r.connections == 200 * n


def test_weights_reject_a_skewed_expectation(world):
    names = [p.name for p in world.pods[:3]]
    r = world.traffic(IPS["web3"], 80, LoadSpec(connections=600, concurrency=8), expected=names,
                      weights={"b0": 4, "b1": 1, "b2": 1})
    assert r.chi_square["p_value"] < 1e-6          # the kernel spreads 1:1:1, not 4:1:1


def test_client_ip_affinity_pins_the_client(world):
    r = world.traffic(IPS["sticky"], 80, LoadSpec(connections=150, concurrency=4))
    assert r.ok == 150 and len(r.endpoints) == 1, r.endpoints


def test_source_address_as_the_policy_says(world):
    """ClusterIP from a pod: kept; NodePort from another node, ETP Cluster: masqueraded to n1's
    address towards the pod (cni0); ETP Local: kept."""
    inside = world.traffic(IPS["web3"], 80, LoadSpec(requests=10, clientip_probes=9))
    assert inside.clientips and all(ips == [world.client.ip] for ips in inside.clientips.values())
    cluster = world.traffic(N1_IP, NODE_PORTS["np"], LoadSpec(requests=10, clientip_probes=9), netns=world.n2.netns)
    assert cluster.ok == 10 and all(ips == [world.n1.gateway] for ips in cluster.clientips.values()), cluster.clientips
    local = world.traffic(N1_IP, NODE_PORTS["local"], LoadSpec(requests=10, clientip_probes=9), netns=world.n2.netns)
    assert local.ok == 10 and all(ips == [N2_IP] for ips in local.clientips.values()), local.clientips


def test_error_kinds_in_namespaces(world):
    """refused (no listener), no route (the node has none: ICMP unreachable), timeout (dropped),
    reset (the established connection reset by a rule)."""
    b4 = world.pods[4]
    refused = world.traffic(b4.ip, 9999, LoadSpec(requests=5))
    assert refused.errors == {"refused": 5}
    noroute = world.traffic("10.250.0.1", 80, LoadSpec(requests=3, timeout=3))
    assert noroute.errors == {"no route": 3}
    n1 = world.n1.netns
    drop = ["FORWARD", "-d", b4.ip, "-p", "tcp", "--dport", "8080", "-j", "DROP"]
    reset = ["FORWARD", "-d", b4.ip, "-p", "tcp", "--dport", "8080", "-m", "conntrack", "--ctstate",
             "ESTABLISHED", "-m", "length", "--length", "60:", "-j", "REJECT", "--reject-with", "tcp-reset"]
    for rule, kind in ((drop, "timeout"), (reset, "reset")):
        run(in_netns(n1, ["iptables-legacy" if world.proxier.backend == "legacy" else "iptables-nft", "-I", *rule]))
        try:
            r = world.traffic(b4.ip, 8080, LoadSpec(requests=3, timeout=0.5))
        finally:
            run(in_netns(n1, ["iptables-legacy" if world.proxier.backend == "legacy" else "iptables-nft", "-D", *rule]))
        assert r.errors == {kind: 3}, (kind, r.errors)


def test_a_killed_backend_shows_as_refused_then_disappears(world):
    """Load at 100/s; at ~1.5 s backend b0 dies (its endpoint still in the rules: refused), at
    ~3 s its endpoint leaves the slice and the proxier syncs (as kube-proxy would): no more
    errors, no more b0."""
    victim = world.pods[0]
    old, new = world.slices["web3"], slice_of("web3", world.pods[1:3])
    events: dict[str, float] = {}

    started = threading.Event()   # the workers' clock (the series' t) starts at their "go"

    def chaos(t0):
        started.wait()
        if "over" in events:      # the run ended (failed) before its first report
            return
        time.sleep(1.5)
        world.lab.stop(world.servers[victim.name])
        events["killed"] = time.monotonic() - t0
        time.sleep(1.5)
        world.proxier.on_slice_update(old, new)
        assert world.proxier.sync().ok
        events["removed"] = time.monotonic() - t0

    t0 = time.monotonic()
    thread = threading.Thread(target=chaos, args=(t0,))
    thread.start()
    try:
        r = world.traffic(IPS["web3"], 80, LoadSpec(duration=5.0, rate=100, timeout=1.0),
                          expected=["b0", "b1", "b2"], on_progress=lambda _: started.set())
    finally:
        events.setdefault("over", time.monotonic() - t0)
        started.set()
        thread.join()
        world.proxier.on_slice_update(new, old)
        world.proxier.sync()
        world.servers[victim.name] = world.serve(victim)
    # refused for new connections; a request already in flight when the server died is reset
    assert "refused" in r.errors and set(r.errors) <= {"refused", "reset"}, r.errors
    errored = [s.t for s in r.series if s.error_count]
    assert errored and min(errored) >= 1 and max(errored) <= 4, [(s.t, s.errors) for s in r.series]
    assert r.series[0].endpoints.get("b0"), "b0 answered before it was killed"
    last = r.series[-1] if r.series[-1].ok else r.series[-2]
    assert last.error_count == 0 and "b0" not in last.endpoints and last.ok > 50
