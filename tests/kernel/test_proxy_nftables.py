"""Real traffic through our nftables Proxier, inside namespaces each test makes.

The same lab as the iptables mode's kernel tests (netemu.testing.netnslab.Lab): node namespace
n1 with cni0 (10.244.1.1/24, hairpin, br_netfilter, ip_forward) carrying the proxier's table (it
runs ``nft`` through ``ip netns exec n1``); pods p0..p2 answering "<pod> <client ip>"; a client
pod; a second node n2 linked to n1 over 172.18.0.0/24 for NodePort tests. Nothing leaves the
lab's namespaces.
"""

from __future__ import annotations

import collections

import pytest

from netemu.agent.proxy.commands import netns_exec
from netemu.agent.proxy.kernel_trace import compare
from netemu.agent.proxy.leftovers import clean_other_modes
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.agent.proxy.nftables.listing import canonical_lines, parse_listing
from netemu.agent.proxy.nftables.proxier import make_proxier
from netemu.agent.proxy.nftables.ktrace import kernel_trace
from netemu.agent.proxy.nftables.trace import trace
from netemu.agent.proxy.tracing import Packet
from netemu.testing.netnslab import Lab, connect_result, in_netns, requests, run
from tests.kernel.test_proxy_iptables import CLUSTER_IP, N1_IP, N2_IP, endpoint_slice, pod_names, service

pytestmark = pytest.mark.root


class Cluster:
    """One lab: node n1 with 3 echo pods and a client pod, and an nftables Proxier programming n1."""

    def __init__(self, lab: Lab, *, second_node=False, udp=False, exec_wrapper=None, clock=None):
        self.lab = lab
        self.n1 = lab.node("n1")
        self.pods = [lab.pod(self.n1, f"p{i}") for i in range(3)]
        self.client = lab.pod(self.n1, "cl")
        self.servers = {p.name: lab.echo_server(p, 5353 if udp else 8080, "udp" if udp else "tcp")
                        for p in self.pods}
        if second_node:
            self.n2 = lab.node("n2", "10.244.2.0/24")
            lab.link_nodes(self.n1, self.n2, N1_IP, N2_IP)
        self.exec = netns_exec(self.n1.netns)
        self.clock = clock or [1000.0]
        self.proxier = make_proxier(NodeInfo(name="n1", ips=(N1_IP,), cluster_cidr="10.244.0.0/16"),
                                    ProxyConfig(), exec_=exec_wrapper(self.exec) if exec_wrapper else self.exec,
                                    nft_backend="nft", service_cidr=["10.96.0.0/12"],
                                    wall_clock=lambda: self.clock[0])

    def nft(self, *argv: str) -> str:
        return run(in_netns(self.n1.netns, ["nft", *argv])).stdout

    def listing(self) -> str:
        return self.nft("list", "table", "ip", "kube-proxy")


@pytest.fixture
def lab():
    with Lab() as lab:
        yield lab


def test_cluster_ip_spreads_600_new_connections_uniformly(lab):
    stats = pytest.importorskip("scipy.stats")
    c = Cluster(lab)
    c.proxier.load([service()], [endpoint_slice(c.pods)])
    result = c.proxier.sync()
    assert result.ok and result.full, result.error
    answers = pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=600))
    assert None not in answers
    counts = collections.Counter(answers)
    assert set(counts) == {"p0", "p1", "p2"}
    p = stats.chisquare([counts[n] for n in ("p0", "p1", "p2")]).pvalue
    assert p > 0.001, counts


def test_client_ip_affinity_pins_one_client_to_one_endpoint(lab):
    c = Cluster(lab)
    c.proxier.load([service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})],
                   [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    answers = pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=60))
    assert None not in answers and len(set(answers)) == 1, collections.Counter(answers)
    # the affinity set holds the client now: the live tracer reads it and follows the pin
    chosen = answers[0]
    result = trace(None, Packet(c.client.ip, CLUSTER_IP, 80), exec_=c.exec, node_ips=[N1_IP])
    pod_ip = next(p.ip for p in c.pods if p.name == chosen)
    assert result.endpoints() == {f"{pod_ip}:8080": 1.0}


def test_endpoint_removed_mid_run_gets_no_new_connection_and_its_chain_goes_later(lab):
    c = Cluster(lab)
    old = endpoint_slice(c.pods)
    c.proxier.load([service()], [old])
    assert c.proxier.sync().ok
    gone = c.pods[0].ip
    assert f"__{gone}/8080" in c.listing()
    c.proxier.on_slice_update(old, endpoint_slice(c.pods[1:]))
    result = c.proxier.sync()
    assert result.ok and not result.full, result
    ops = c.proxier.last_plan.text
    assert "add table" not in ops and "flush chain ip kube-proxy endpoint-" in ops
    answers = pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=150))
    assert None not in answers and set(answers) == {"p1", "p2"}
    assert f"__{gone}/8080" in c.listing()           # flushed, still there (upstream's delay)
    c.clock[0] += 2
    assert c.proxier.sync().ok
    assert f"__{gone}/8080" not in c.listing()       # deleted by the next sync's first transaction


def test_node_port_answers_from_another_node_masqueraded_to_the_node(lab):
    c = Cluster(lab, second_node=True)
    c.proxier.load([service(type="NodePort", nodePort=30080)], [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    answers = requests(c.n2.netns, N1_IP, 30080, count=30)
    assert None not in answers
    assert {a.split()[1] for a in answers} == {c.n1.gateway}
    assert {a.split()[0] for a in answers} <= {"p0", "p1", "p2"}


def test_external_traffic_policy_local_keeps_the_client_source_ip(lab):
    c = Cluster(lab, second_node=True)
    c.proxier.load([service(type="NodePort", nodePort=30080, externalTrafficPolicy="Local")],
                   [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    answers = requests(c.n2.netns, N1_IP, 30080, count=30)
    assert None not in answers
    assert {a.split()[1] for a in answers} == {N2_IP}


def test_pod_reaches_itself_through_its_service_hairpin(lab):
    c = Cluster(lab)
    only = c.pods[0]
    c.proxier.load([service()], [endpoint_slice([only])])
    assert c.proxier.sync().ok
    assert requests(only.netns, CLUSTER_IP, 80, count=10) == [f"p0 {c.n1.gateway}"] * 10


def test_udp_to_a_removed_endpoint_does_not_blackhole_after_the_sync(lab):
    c = Cluster(lab, udp=True)
    old = endpoint_slice(c.pods, port=5353, proto="UDP")
    c.proxier.load([service(port=53, target=5353, proto="UDP")], [old])
    assert c.proxier.sync().ok
    first = pod_names(requests(c.client.netns, CLUSTER_IP, 53, proto="udp", count=3, source_port=40000))
    assert first[0] is not None and len(set(first)) == 1
    gone = next(p for p in c.pods if p.name == first[0])
    c.lab.stop(c.servers[gone.name])
    c.proxier.on_slice_update(old, endpoint_slice([p for p in c.pods if p is not gone], port=5353, proto="UDP"))
    result = c.proxier.sync()
    assert result.ok and result.conntrack_commands > 0
    after = pod_names(requests(c.client.netns, CLUSTER_IP, 53, proto="udp", count=3, source_port=40000, timeout=1.0))
    assert None not in after and gone.name not in after, after


def test_no_endpoints_rejects_and_unallocated_cluster_ips_drop(lab):
    """From the other node (over a veth: this lab's bridge swallows the ICMP a REJECT of a
    bridged pod's packet sends, in either mode), with routes to the Service CIDR through n1."""
    c = Cluster(lab, second_node=True)
    run(["ip", "-n", c.n1.netns, "route", "add", "10.96.0.0/12", "dev", "cni0"])
    run(["ip", "-n", c.n2.netns, "route", "add", "10.96.0.0/12", "via", N1_IP])
    c.proxier.load([service(), service("empty", ip="10.96.0.21", type="NodePort", nodePort=30021)],
                   [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    assert connect_result(c.n2.netns, "10.96.0.21", 80) == "refused"      # no endpoints: reject-chain
    assert connect_result(c.n2.netns, N1_IP, 30021) == "refused"          # its NodePort too
    assert connect_result(c.n2.netns, CLUSTER_IP, 81) == "refused"        # a port the Service lacks
    assert connect_result(c.n2.netns, "10.96.0.99", 80) == "timeout"      # no such ClusterIP: drop
    assert connect_result(c.n2.netns, CLUSTER_IP, 80) == "ok"


@pytest.mark.parametrize("origin", ["pod", "node"])
def test_live_tracer_path_equals_the_kernels_nftrace(lab, origin):
    """The mode's kernel tracer (meta nftrace + nft monitor trace, what ``netemu trace
    --kernel`` runs) follows one real connection; the live offline tracer must predict exactly
    that path and destination as one of its outcomes (kernel_trace.compare)."""
    c = Cluster(lab)
    c.proxier.load([service()], [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    src, ns = (c.client.ip, c.client.netns) if origin == "pod" else (c.n1.gateway, c.n1.netns)
    if origin == "node":     # a node reaches ClusterIPs through a route (a real one has its default)
        run(["ip", "-n", c.n1.netns, "route", "add", "10.96.0.0/12", "dev", "cni0", "src", c.n1.gateway])
    packet = Packet(src, CLUSTER_IP, 80)
    answers = []
    path = kernel_trace(packet, netns=c.n1.netns, origin=origin,
                        send=lambda: answers.extend(requests(ns, CLUSTER_IP, 80, count=1)))
    assert answers and answers[0] is not None
    predicted = trace(None, packet, exec_=c.exec, node_ips=[N1_IP, c.n1.gateway], origin=origin)
    result = compare(path, predicted)
    assert result.ok, result.render()
    pod_ip = next(p.ip for p in c.pods if p.name == answers[0].split()[0])
    assert path.destination == f"{pod_ip}:8080" and any(pod_ip in ch for ch in path.chains)
    assert "nft" not in c.nft("list", "tables").replace("kube-proxy", "")   # the trace table is gone


def test_failed_transaction_keeps_the_old_table_and_forces_a_full_sync(lab):
    poison = {"on": False}

    def wrapper(exec_):
        def run_(argv, input=None):
            if poison["on"] and argv[:3] == ["nft", "-f", "-"] and input:
                input += "add rule ip kube-proxy services jump no-such-chain\n"
            return exec_(argv, input)
        return run_

    c = Cluster(lab, exec_wrapper=wrapper)
    old = endpoint_slice(c.pods)
    c.proxier.load([service()], [old])
    assert c.proxier.sync().ok
    before = c.listing()
    poison["on"] = True
    c.proxier.on_slice_update(old, endpoint_slice(c.pods[:1]))
    failed = c.proxier.sync()
    assert not failed.ok and "no-such-chain" in failed.error
    assert c.listing() == before
    assert set(pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=60))) == {"p0", "p1", "p2"}
    poison["on"] = False
    retry = c.proxier.sync()
    assert retry.ok and retry.full
    assert set(pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=30))) == {"p0"}


def test_partial_syncs_leave_the_same_table_as_a_full_sync(lab):
    c = Cluster(lab)
    web, other = endpoint_slice(c.pods), endpoint_slice(c.pods[:1], name="other")
    c.proxier.load([service(), service("other", ip="10.96.0.21", proto="UDP")], [web, other])
    assert c.proxier.sync().full
    for step in (lambda: c.proxier.on_slice_update(web, endpoint_slice(c.pods[1:])),
                 lambda: c.proxier.on_service_add(service("third", ip="10.96.0.22", type="NodePort", nodePort=30001)),
                 lambda: c.proxier.on_service_delete(service("other", ip="10.96.0.21", proto="UDP"))):
        step()
        result = c.proxier.sync()
        assert result.ok and not result.full, result
    c.clock[0] += 2
    assert c.proxier.sync().ok                       # stale chains deleted
    partial = canonical_lines(parse_listing(c.listing()))
    c.proxier.need_full_sync = True
    assert c.proxier.sync().full
    assert canonical_lines(parse_listing(c.listing())) == partial
    assert set(pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=30))) == {"p1", "p2"}


def test_a_deleted_table_is_noticed_and_recreated(lab):
    c = Cluster(lab)
    c.proxier.load([service()], [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    c.nft("delete", "table", "ip", "kube-proxy")
    assert requests(c.client.netns, CLUSTER_IP, 80, count=1, timeout=0.5) == [None]
    assert c.proxier.monitor.check()
    c.proxier.force_full_sync()
    assert None not in requests(c.client.netns, CLUSTER_IP, 80, count=10)


def test_without_nft_one_error_names_it_and_nothing_is_applied(lab):
    def no_nft(exec_):
        def run_(argv, input=None):
            if argv[0] == "nft":
                raise FileNotFoundError("nft")
            return exec_(argv, input)
        return run_

    c = Cluster(lab, exec_wrapper=no_nft)
    c.proxier.load([service()], [endpoint_slice(c.pods)])
    result = c.proxier.sync()
    assert not result.ok and "needs the nft binary" in result.error
    assert "kube-proxy" not in c.nft("list", "tables")


def test_switching_a_node_from_iptables_to_nftables_cleans_the_old_rules_first(lab):
    from netemu.agent.proxy.iptables.proxier import IptablesProxier

    c = Cluster(lab)
    ipt = IptablesProxier(NodeInfo(name="n1", ips=(N1_IP,), cluster_cidr="10.244.0.0/16"), backend="nft",
                          exec_=c.exec, monitor_canaries=False)
    ipt.load([service()], [endpoint_slice(c.pods[:1])])
    assert ipt.sync().ok
    assert "KUBE-SERVICES" in run(in_netns(c.n1.netns, ["iptables-nft-save", "-t", "nat"])).stdout
    report = clean_other_modes("nftables", c.exec)           # what the agent does on start
    assert not report.errors, report.errors
    assert "KUBE-" not in run(in_netns(c.n1.netns, ["iptables-nft-save", "-t", "nat"])).stdout
    c.proxier.load([service()], [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    assert set(pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=60))) == {"p0", "p1", "p2"}
