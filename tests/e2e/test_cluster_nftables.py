"""The iptables cluster's Service checks on a 3-node cluster whose kube-proxy runs the nftables
mode (`netemu up --proxy-mode nftables`), then one cluster with a node of each mode.

The checks themselves are test_cluster.py's (imported: they run here against this module's
cluster fixture), so both modes answer to the very same expectations.
"""

from __future__ import annotations

import collections
import subprocess

import pytest

from tests.e2e import _cluster as c
from tests.e2e.test_cluster import (FAST, test_clusterip_reaches_every_replica_and_sees_the_pod_ip,  # noqa: F401
                                    test_nodeport_from_another_node, test_pod_to_pod_across_nodes, web)

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.kubectl]

MODE_ANNOTATION = "kube-proxy.netemu.io/mode"


def node_run(cl, node: str, *argv: str) -> str:
    """stdout of argv inside ``node``'s namespace (read-only listings)."""
    return subprocess.run(["ip", "netns", "exec", cl.node_netns(node), *argv], capture_output=True, text=True,
                          check=True, timeout=60).stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("e2e-nft")
    cl = c.Cluster(state, 3, c.node_network(7), (*FAST, "--proxy-mode", "nftables"))
    try:
        cl.up()
        yield cl
    finally:
        cl.down()


def test_every_node_runs_and_announces_the_nftables_mode(cluster, web):
    for node in cluster.get("nodes")["items"]:
        assert c.wait_until(f"{node['metadata']['name']} annotated",
                            lambda n=node["metadata"]["name"]: cluster.get("node", n)["metadata"]
                            .get("annotations", {}).get(MODE_ANNOTATION), 30) == "nftables"
        table = node_run(cluster, node["metadata"]["name"], "nft", "list", "table", "ip", "kube-proxy")
        assert "chain services" in table and web["ip"] in table
    status = c.netemu("status", "--state-dir", str(cluster.state_dir)).stdout
    assert "PROXY MODE" in status and "nftables" in status


def test_a_cluster_with_one_node_of_each_mode(tmp_path_factory):
    state = tmp_path_factory.mktemp("e2e-mixed")
    cl = c.Cluster(state, None, c.node_network(11), ("--topo", "topologies/cluster.py:MixedProxyTopo",
                                                    "--agent-arg=--heartbeat-interval=1"))
    try:
        cl.up()
        modes = {n: c.wait_until(f"{n} annotated", lambda n=n: cl.get("node", n)["metadata"]
                                 .get("annotations", {}).get(MODE_ANNOTATION), 30) for n in cl.workers()}
        assert modes == {"worker": "iptables", "worker2": "nftables"}
        assert "KUBE-SERVICES" in node_run(cl, "worker", "iptables-save", "-t", "nat")
        assert "chain services" in node_run(cl, "worker2", "nft", "list", "table", "ip", "kube-proxy")
        cl.kubectl("apply", "-f", "-", input=c.manifest(
            c.deployment("hostnames", 2), c.service("hostnames", {"app": "hostnames"}, "NodePort"),
            c.pause_pod("client-a", "worker"), c.pause_pod("client-b", "worker2")))
        c.wait_until("2 ready replicas", lambda: len([p for p in cl.pods("app=hostnames") if c.ready(p)]) == 2 or None,
                     180)
        svc = cl.get("service", "hostnames")
        names = {p["metadata"]["name"] for p in cl.pods("app=hostnames")}
        for client in ("client-a", "client-b"):      # a pod behind each mode's rules
            pod = c.wait_until(client, lambda n=client: (lambda p: p if c.ready(p) else None)(cl.get("pod", n)), 120)
            answers = c.wait_until(f"{client} reaches both replicas", lambda pod=pod: (
                lambda got: got if None not in got and set(got) == names else None)(
                collections.Counter(c.from_pod(pod, svc["spec"]["clusterIP"], 80, "/hostname", 60))), 60, 1)
            assert sum(answers.values()) == 60
        port = svc["spec"]["ports"][0]["nodePort"]
        for node in ("worker", "worker2"):           # each mode's NodePort, from the other node
            other = "worker2" if node == "worker" else "worker"
            got = c.http(cl.node_netns(other), cl.node_ip(node), port, "/hostname", 10)
            assert None not in got and set(got) <= names, (node, got)
    finally:
        cl.down()
