"""Real traffic through our iptables Proxier, inside namespaces each test makes, both backends.

Topology (netemu.testing.netnslab.Lab): node namespace n1 with cni0 (10.244.1.1/24, hairpin,
br_netfilter, ip_forward) carrying the proxier's rules (it runs its commands through
``ip netns exec n1``); pods p0..p2 answering "<pod> <client ip>"; a client pod; for NodePort
tests a second node n2 linked to n1 over 172.18.0.0/24. Nothing leaves the lab's namespaces.
"""

from __future__ import annotations

import collections
import shutil
import urllib.request

import pytest

from netemu.agent.proxy.commands import netns_exec
from netemu.agent.proxy.metrics import MetricsServer
from netemu.agent.proxy.model import NodeInfo
from netemu.agent.proxy.iptables.proxier import IptablesProxier
from netemu.testing.netnslab import Lab, in_netns, requests, run

pytestmark = pytest.mark.root

CLUSTER_IP = "10.96.0.20"
N1_IP, N2_IP = "172.18.0.2", "172.18.0.3"


@pytest.fixture(params=["nft", "legacy"])
def backend(request):
    if not shutil.which(f"iptables-{request.param}-restore"):
        pytest.skip(f"iptables-{request.param}-restore not installed")
    return request.param


def service(name="web", ip=CLUSTER_IP, port=80, target=8080, proto="TCP", **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "type": spec.pop("type", "ClusterIP"),
                     "ports": [{"name": "p", "port": port, "targetPort": target, "protocol": proto,
                                **({"nodePort": spec.pop("nodePort")} if "nodePort" in spec else {})}],
                     **spec}}


def endpoint_slice(pods, name="web", port=8080, proto="TCP"):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "p", "port": port, "protocol": proto}],
            "endpoints": [{"addresses": [p.ip], "conditions": {"ready": True}, "nodeName": p.node.name}
                          for p in pods]}


class Cluster:
    """One lab: node n1 with 3 echo pods and a client pod, and a Proxier programming n1."""

    def __init__(self, lab: Lab, backend: str, *, second_node=False, udp=False, exec_wrapper=None):
        self.lab = lab
        self.n1 = lab.node("n1")
        self.pods = [lab.pod(self.n1, f"p{i}") for i in range(3)]
        self.client = lab.pod(self.n1, "cl")
        self.servers = {p.name: lab.echo_server(p, 5353 if udp else 8080, "udp" if udp else "tcp")
                        for p in self.pods}
        if second_node:
            self.n2 = lab.node("n2", "10.244.2.0/24")
            lab.link_nodes(self.n1, self.n2, N1_IP, N2_IP)
        exec_ = netns_exec(self.n1.netns)
        self.proxier = IptablesProxier(
            NodeInfo(name="n1", ips=(N1_IP,), cluster_cidr="10.244.0.0/16"), backend=backend,
            exec_=exec_wrapper(exec_) if exec_wrapper else exec_)

    def save(self, table="nat") -> str:
        return run(in_netns(self.n1.netns, [f"iptables-{self.proxier.backend}-save", "-t", table])).stdout


def pod_names(answers):
    return [a.split()[0] if a else None for a in answers]


@pytest.fixture
def lab():
    with Lab() as lab:
        yield lab


def test_cluster_ip_spreads_new_connections_uniformly(lab, backend):
    stats = pytest.importorskip("scipy.stats")
    c = Cluster(lab, backend)
    c.proxier.load([service()], [endpoint_slice(c.pods)])
    result = c.proxier.sync()
    assert result.ok and result.full, result.error
    answers = pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=600))
    assert None not in answers
    counts = collections.Counter(answers)
    assert set(counts) == {"p0", "p1", "p2"}
    p = stats.chisquare([counts[n] for n in ("p0", "p1", "p2")]).pvalue
    assert p > 0.001, counts


def test_client_ip_affinity_pins_one_client_to_one_endpoint(lab, backend):
    c = Cluster(lab, backend)
    c.proxier.load([service(sessionAffinity="ClientIP",
                            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})],
                   [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    answers = pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=60))
    assert None not in answers and len(set(answers)) == 1, collections.Counter(answers)


def test_removed_endpoint_gets_no_new_connection_after_a_partial_sync(lab, backend):
    c = Cluster(lab, backend)
    old = endpoint_slice(c.pods)
    c.proxier.load([service()], [old])
    assert c.proxier.sync().ok
    removed_chain_ip = c.pods[0].ip
    assert removed_chain_ip in c.save()
    c.proxier.on_slice_update(old, endpoint_slice(c.pods[1:]))
    result = c.proxier.sync()
    assert result.ok and not result.full, result
    answers = pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=150))
    assert None not in answers and set(answers) == {"p1", "p2"}
    assert removed_chain_ip not in c.save()          # its KUBE-SEP chain was deleted


def test_node_port_answers_from_another_node_masqueraded_to_the_node(lab, backend):
    c = Cluster(lab, backend, second_node=True)
    c.proxier.load([service(type="NodePort", nodePort=30080)], [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    answers = requests(c.n2.netns, N1_IP, 30080, count=30)
    assert None not in answers
    # externalTrafficPolicy Cluster: SNAT to the node (cni0's address on the way to the pod)
    assert {a.split()[1] for a in answers} == {c.n1.gateway}
    assert {a.split()[0] for a in answers} <= {"p0", "p1", "p2"}


def test_pod_to_pod_across_nodes_is_routed_not_masqueraded(lab, backend):
    c = Cluster(lab, backend, second_node=True)
    remote = lab.pod(c.n2, "q0")
    c.proxier.load([service(type="NodePort", nodePort=30080)], [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    # through n2 -> n1 (which carries our rules, MASQUERADE in POSTROUTING): source kept
    assert requests(remote.netns, c.pods[0].ip, 8080, count=3) == [f"p0 {remote.ip}"] * 3


def test_external_traffic_policy_local_without_local_endpoints_drops(lab, backend):
    c = Cluster(lab, backend, second_node=True)
    elsewhere = endpoint_slice(c.pods)
    for ep in elsewhere["endpoints"]:
        ep["nodeName"] = "n9"            # the endpoints are not on this node (as far as it knows)
    c.proxier.load([service(type="NodePort", nodePort=30080, externalTrafficPolicy="Local")], [elsewhere])
    assert c.proxier.sync().ok
    assert requests(c.n2.netns, N1_IP, 30080, count=3, timeout=0.5) == [None] * 3
    # internal traffic (ClusterIP, internalTrafficPolicy Cluster) still reaches them
    assert None not in requests(c.client.netns, CLUSTER_IP, 80, count=10)


def test_external_traffic_policy_local_keeps_the_client_source_ip(lab, backend):
    c = Cluster(lab, backend, second_node=True)
    c.proxier.load([service(type="NodePort", nodePort=30080, externalTrafficPolicy="Local")],
                   [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    answers = requests(c.n2.netns, N1_IP, 30080, count=30)
    assert None not in answers
    assert {a.split()[1] for a in answers} == {N2_IP}


def test_pod_reaches_itself_through_its_service_hairpin(lab, backend):
    c = Cluster(lab, backend)
    only = c.pods[0]
    c.proxier.load([service()], [endpoint_slice([only])])
    assert c.proxier.sync().ok
    answers = requests(only.netns, CLUSTER_IP, 80, count=10)
    assert answers == [f"p0 {c.n1.gateway}"] * 10   # hairpin traffic is masqueraded


def test_udp_to_a_removed_endpoint_does_not_blackhole_after_the_sync(lab, backend):
    c = Cluster(lab, backend, udp=True)
    old = endpoint_slice(c.pods, port=5353, proto="UDP")
    c.proxier.load([service(port=53, target=5353, proto="UDP")], [old])
    assert c.proxier.sync().ok
    first = pod_names(requests(c.client.netns, CLUSTER_IP, 53, proto="udp", count=3, source_port=40000))
    assert first[0] is not None and len(set(first)) == 1      # one conntrack entry, one pod
    gone = next(p for p in c.pods if p.name == first[0])
    c.lab.stop(c.servers[gone.name])                           # the pod dies ...
    c.proxier.on_slice_update(old, endpoint_slice([p for p in c.pods if p is not gone],
                                                  port=5353, proto="UDP"))
    result = c.proxier.sync()                                  # ... and leaves the slice
    assert result.ok and result.conntrack_commands > 0
    after = pod_names(requests(c.client.netns, CLUSTER_IP, 53, proto="udp", count=3, source_port=40000,
                               timeout=1.0))
    assert None not in after and gone.name not in after, after


def test_bad_input_is_skipped_and_the_other_rules_stay(lab, backend):
    c = Cluster(lab, backend)
    bad_proto = service("badproto", ip="10.96.0.21", proto="ICMP")
    bad_port = service("badport", ip="10.96.0.22", port=70000)
    orphan = endpoint_slice(c.pods, name="nosuchservice")
    malformed = {"kind": "Service", "metadata": {"name": "broken", "namespace": "default"}, "spec": "x"}
    c.proxier.load([service(), bad_proto, bad_port, malformed, {}], [endpoint_slice(c.pods), orphan, {}])
    result = c.proxier.sync()
    assert result.ok, result.error
    assert None not in requests(c.client.netns, CLUSTER_IP, 80, count=20)
    problems = " ".join(c.proxier.service_changes.problems)
    assert "ICMP" in problems and "70000" in problems
    # more bad input while running: still syncing, old rules still answering
    c.proxier.on_service_update(bad_proto, {**bad_proto, "spec": None})
    c.proxier.on_service_add(service("late", ip="not-an-ip"))
    c.proxier.on_slice_add({"metadata": {"name": "x", "labels": {"kubernetes.io/service-name": "web"}},
                            "endpoints": "garbage"})
    assert c.proxier.sync().ok
    assert set(pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=30))) == {"p0", "p1", "p2"}


def test_failed_restore_keeps_the_old_rules_and_forces_a_full_sync(lab, backend):
    poison = {"on": False}

    def wrapper(exec_):
        def run_(argv, input=None):
            if poison["on"] and argv[0].endswith("-restore"):
                input = input.replace("COMMIT", "-A KUBE-SERVICES -j NO-SUCH-CHAIN\nCOMMIT", 1)
            return exec_(argv, input)
        return run_

    c = Cluster(lab, backend, exec_wrapper=wrapper)
    old = endpoint_slice(c.pods)
    c.proxier.load([service()], [old])
    assert c.proxier.sync().ok
    poison["on"] = True
    c.proxier.on_slice_update(old, endpoint_slice(c.pods[:1]))
    failed = c.proxier.sync()
    assert not failed.ok and failed.error
    # the kernel kept the previous rules: all three pods still get traffic
    assert set(pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=60))) == {"p0", "p1", "p2"}
    poison["on"] = False
    retry = c.proxier.sync()
    assert retry.ok and retry.full
    assert set(pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=30))) == {"p0"}


def test_metrics_endpoint_serves_upstream_names_after_real_syncs(lab, backend):
    c = Cluster(lab, backend)
    c.proxier.load([service()], [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    c.proxier.on_slice_update(endpoint_slice(c.pods), endpoint_slice(c.pods[:2]))
    assert c.proxier.sync().ok
    server = MetricsServer(c.proxier.metrics, "127.0.0.1:0")
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    finally:
        server.close()
    assert "kubeproxy_sync_full_proxy_rules_duration_seconds_count 1.0" in text
    assert "kubeproxy_sync_partial_proxy_rules_duration_seconds_count 1.0" in text
    assert 'kubeproxy_sync_proxy_rules_iptables_total{table="nat"}' in text
    assert "kubeproxy_sync_proxy_rules_last_timestamp_seconds" in text


def test_jump_rules_exist_once_after_repeated_full_syncs(lab, backend):
    from netemu.agent.proxy.iptables.chains import jump_rules

    c = Cluster(lab, backend)
    c.proxier.load([service()], [endpoint_slice(c.pods)])
    for _ in range(3):
        c.proxier.need_full_sync = True
        result = c.proxier.sync()
        assert result.ok and result.full
    saved = {"nat": c.save("nat"), "filter": c.save("filter")}
    for rule in jump_rules():
        lines = [line for line in saved[rule.table].splitlines()
                 if line.startswith(f"-A {rule.src_chain} ") and line.endswith(f"-j {rule.dst_chain}")]
        assert len(lines) == 1, (rule, lines)
    assert None not in requests(c.client.netns, CLUSTER_IP, 80, count=10)


def _rules_only(save: str) -> list[str]:
    """iptables-save without comments and counters: the state to compare."""
    return [line.split(" [")[0] if line.startswith(":") else line
            for line in save.splitlines() if not line.startswith("#")]


def test_partial_syncs_leave_the_same_tables_as_a_full_sync(lab, backend):
    c = Cluster(lab, backend)
    web, other = endpoint_slice(c.pods), endpoint_slice(c.pods[:1], name="other")
    c.proxier.load([service(), service("other", ip="10.96.0.21", proto="UDP")], [web, other])
    assert c.proxier.sync().full
    steps = [
        lambda: c.proxier.on_slice_update(web, endpoint_slice(c.pods[1:])),
        lambda: c.proxier.on_service_add(service("third", ip="10.96.0.22", type="NodePort", nodePort=30001)),
        lambda: c.proxier.on_service_delete(service("other", ip="10.96.0.21", proto="UDP")),
    ]
    for step in steps:
        step()
        result = c.proxier.sync()
        assert result.ok and not result.full, result
    partial_state = {t: _rules_only(c.save(t)) for t in ("filter", "nat")}
    c.proxier.need_full_sync = True
    assert c.proxier.sync().full
    assert {t: _rules_only(c.save(t)) for t in ("filter", "nat")} == partial_state
    assert set(pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=30))) == {"p1", "p2"}
