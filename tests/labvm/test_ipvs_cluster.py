"""The e2e Service checks on a small cluster whose kube-proxy runs the IPVS mode, inside the lab VM
(`netemu up --proxy-mode ipvs`, 2 workers on Linux bridges: the VM has 2 emulated CPUs and 2 GB;
nothing starts Open vSwitch in it). The cluster is conftest.py's ``ipvs_cluster``, which
test_ipvs_cluster_behaviours.py goes on to use.

The checks are the iptables cluster's (tests/e2e/test_cluster.py, imported: they run here against
this module's ``cluster`` and ``web`` fixtures), so both modes answer to the same expectations:
300 requests from a client pod to the ClusterIP reach every replica and show the client pod's own
address; pod to pod across nodes; a NodePort from the other node, masqueraded. kubectl comes
from the host (scripts/labvm); without it the cluster is driven with netemu's own apply/get, the
same API calls.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e import _cluster as c
from tests.e2e.test_cluster import (test_clusterip_reaches_every_replica_and_sees_the_pod_ip,  # noqa: F401
                                    test_nodeport_from_another_node, test_pod_to_pod_across_nodes)

pytestmark = [pytest.mark.labvm, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def cluster(ipvs_cluster):
    """The lab's IPVS cluster (conftest.py), shared with test_ipvs_cluster_behaviours.py."""
    return ipvs_cluster


@pytest.fixture(scope="module")
def web(cluster):
    """3 replicas of hostnames on one worker, the client pod on the other (test_cluster's shape)."""
    replica_node, client_node = cluster.workers()
    out = cluster.kubectl("apply", "-f", "-", input=c.manifest(
        c.deployment("hostnames", 3, nodeSelector={"kubernetes.io/hostname": replica_node}),
        c.service("hostnames", {"app": "hostnames"}),
        c.service("hostnames-np", {"app": "hostnames"}, "NodePort"),
        c.pause_pod("client", client_node))).stdout
    assert "hostnames" in out
    pods = c.wait_until("3 ready replicas", lambda: [p for p in cluster.pods("app=hostnames") if c.ready(p)]
                        if len([p for p in cluster.pods("app=hostnames") if c.ready(p)]) == 3 else None, 600)
    client = c.wait_until("the client pod", lambda: (lambda p: p if c.ready(p) else None)(
        cluster.get("pod", "client")), 300)
    svc = cluster.get("service", "hostnames")
    return {"pods": pods, "client": client, "ip": svc["spec"]["clusterIP"], "client_node": client_node}


def test_every_node_runs_the_ipvs_mode(cluster, web):
    for node in cluster.workers():
        netns = cluster.node_netns(node)
        addresses = subprocess.run(["ip", "-n", netns, "-o", "addr", "show", "dev", "kube-ipvs0"],
                                   capture_output=True, text=True, check=True).stdout
        assert web["ip"] in addresses
        ipvs = subprocess.run(["ip", "netns", "exec", netns, "ipvsadm", "-Sn"], capture_output=True, text=True,
                              check=True).stdout
        assert f"-A -t {web['ip']}:80 -s rr" in ipvs
        assert len([line for line in ipvs.splitlines() if line.startswith(f"-a -t {web['ip']}:80 ")]) == 3
    annotations = cluster.get("node", cluster.workers()[0])["metadata"].get("annotations", {})
    assert annotations.get("kube-proxy.netemu.io/mode") == "ipvs"


def test_the_lab_vm_has_room_for_the_cluster(cluster, web):
    """LABVM_MEM (2048 MB) fits the control plane, 2 node agents and 4 pods with room to spare."""
    meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo"))
    available_mb = int(meminfo["MemAvailable"].split()[0]) // 1024
    total_mb = int(meminfo["MemTotal"].split()[0]) // 1024
    print(f"lab VM memory with the cluster up: {available_mb} of {total_mb} MB available")
    assert available_mb > 0.25 * total_mb, f"only {available_mb} of {total_mb} MB left"
