"""Traffic policies (kubernetes v1.32 test/e2e/network/service.go and loadbalancer.go).

internalTrafficPolicy=Local: a client on a node with an endpoint reaches it, a client on a node
without one gets no answer at all, whether client or server is a pod or the node itself.
externalTrafficPolicy=Local: a node port answers only on nodes with an endpoint, keeping the
client's source IP. Upstream loops 5 times over each check; 3 here (the rules do not change).
"""

from __future__ import annotations

import pytest

from tests.e2e.service_behaviours.traffic import always_answers, never_answers, wait_reachable

pytestmark = [pytest.mark.root, pytest.mark.kubectl, pytest.mark.slow]


def _itp_local(jig, port: int, target: int, server_host_network: bool = False):
    """svc-itp with internalTrafficPolicy Local; one server (echo-hostname-0) on node0."""
    node0, node1, _ = jig.workers()
    svc = jig.create_service(jig.service("svc-itp", {"testid": "svc-itp"},
                                         [{"port": port, "name": "http", "protocol": "TCP", "targetPort": target}],
                                         internalTrafficPolicy="Local"))
    args = ["netexec", "--http-port", str(target)] + (["--udp-port", str(target)] if server_host_network else [])
    jig.create_pods(jig.pod("echo-hostname-0", {"testid": "svc-itp"}, node0, args,
                            **({"hostNetwork": True} if server_host_network else {})))
    jig.wait_endpoints("svc-itp", {"echo-hostname-0": [target]})
    return svc["spec"]["clusterIP"], node0, node1


def _local_only(jig, ip, port, local_client, remote_client, expect):
    wait_reachable(local_client, ip, port, expect=expect)
    always_answers(local_client, ip, port, expect)
    never_answers(remote_client, ip, port)


@pytest.mark.vm_subset
def test_should_respect_internaltrafficpolicy_local_pod_to_pod(jig):
    """[sig-network] Services should respect internalTrafficPolicy=Local Pod to Pod

    Upstream: service.go. A pod on the server's node reaches it; a pod on another node never.
    """
    ip, node0, node1 = _itp_local(jig, 80, 80)
    _local_only(jig, ip, 80, jig.exec_pod("pause-pod-0", node0), jig.exec_pod("pause-pod-1", node1),
                "echo-hostname-0")


def test_should_respect_internaltrafficpolicy_local_pod_hostnetwork_true_to_pod(jig):
    """[sig-network] Services should respect internalTrafficPolicy=Local Pod (hostNetwork: true) to Pod

    Upstream: service.go. The same from hostNetwork clients: the node's own traffic is
    internal traffic too.
    """
    ip, node0, node1 = _itp_local(jig, 8000, 8000)
    _local_only(jig, ip, 8000, jig.exec_pod("pause-pod-0", node0, host_network=True),
                jig.exec_pod("pause-pod-1", node1, host_network=True), "echo-hostname-0")


def test_should_respect_internaltrafficpolicy_local_pod_and_node_to_pod_hostnetwork_true(jig):
    """[sig-network] Services should respect internalTrafficPolicy=Local Pod and Node, to Pod (hostNetwork: true)

    Upstream: service.go. A hostNetwork server (its hostname is the node's): reached from a
    pod and from the host network of its own node, never from another node.
    """
    ip, node0, node1 = _itp_local(jig, 80, 10180, server_host_network=True)
    _local_only(jig, ip, 80, jig.exec_pod("pause-pod-0", node0), jig.exec_pod("pause-pod-1", node1), node0)
    _local_only(jig, ip, 80, jig.exec_pod("pause-pod-2", node0, host_network=True),
                jig.exec_pod("pause-pod-3", node1, host_network=True), node0)


@pytest.mark.vm_subset
def test_should_work_for_type_nodeport(jig, outside):
    """[sig-network] LoadBalancers ExternalTrafficPolicy: Local [Feature:LoadBalancer] [Slow] should work for type=NodePort

    Upstream: loadbalancer.go. A NodePort Service with externalTrafficPolicy Local, hit from
    outside the cluster (netemu's external host) on a node with an endpoint: the server sees
    the client's own IP.
    """
    labels = {"testid": "external-local-nodeport"}
    svc = jig.create_service(jig.service("external-local-nodeport", labels, type_="NodePort",
                                         externalTrafficPolicy="Local"))
    (pod,) = jig.create_pods(jig.pod("echo", labels, jig.workers()[1], ["netexec", "--http-port=80"]))
    jig.wait_endpoints("external-local-nodeport", {"echo": [80]})
    node_ip = jig.node_ip(pod["spec"]["nodeName"])
    source = wait_reachable(outside, node_ip, svc["spec"]["ports"][0]["nodePort"], path="/clientip")
    assert source.rsplit(":", 1)[0] == outside.ip, f"Source IP was NOT preserved: {source}"
