"""Backends changing under live traffic (kubernetes v1.32 test/e2e/network/conntrack.go and
loadbalancer.go).

UDP: a client keeps sending from one source port, so its conntrack entry never times out on its
own; when the endpoint it is pinned to goes away, kube-proxy must delete that entry or the
client stays blackholed. TCP: a rolling update of the servers behind a load balancer while
requests keep coming must lose (almost) none -- the servers drain with --delay-shutdown, and
kube-proxy stops sending new connections to terminating endpoints while ready ones exist.
"""

from __future__ import annotations

import pytest

from tests.e2e.service_behaviours.jig import eventually
from tests.e2e.service_behaviours.traffic import Stream, request

pytestmark = [pytest.mark.root, pytest.mark.kubectl, pytest.mark.slow]

SRC_PORT = 54321        # upstream's fixed client source port


def _udp_cycle(jig, type_: str) -> None:
    """The shared body of upstream's two "preserve UDP traffic when server pod cycles" tests."""
    client_node, server_node, _ = jig.workers()
    labels = {"testid": "svc-udp"}
    svc = jig.create_service(jig.service("svc-udp", labels, [{"port": 80, "name": "udp", "protocol": "UDP",
                                                              "targetPort": 80}], type_))
    if type_ == "NodePort":
        target = (jig.node_ip(server_node), svc["spec"]["ports"][0]["nodePort"])
    else:
        target = (svc["spec"]["clusterIP"], 80)
    client = jig.exec_pod("pod-client", client_node)
    stream = Stream(client, [request("udp", *target, payload="hostname", timeout=2, src_port=SRC_PORT)], 90, 0.5)
    try:
        for backend in ("pod-server-1", "pod-server-2"):
            jig.create_pods(jig.pod(backend, labels, server_node, ["netexec", "--udp-port=80"]))
            if backend == "pod-server-2":
                jig.delete("pod", "pod-server-1")
            jig.wait_endpoints("svc-udp", {backend: [80]})
            eventually(f"the client answered by {backend} (last: {stream.outcomes[-3:]})",
                       lambda b=backend: stream.answered(b), 60, 1)
    finally:
        stream.stop()


@pytest.mark.vm_subset
def test_should_be_able_to_preserve_udp_traffic_when_server_pod_cycles_for_a_clusterip_service(jig):
    """[sig-network] Conntrack should be able to preserve UDP traffic when server pod cycles for a ClusterIP service

    Upstream: conntrack.go. The client keeps sending from source port 54321; backend 1 answers;
    backend 2 comes and backend 1 goes: backend 2 answers the same client (the stale conntrack
    entry is gone).
    """
    _udp_cycle(jig, "ClusterIP")


def test_should_be_able_to_preserve_udp_traffic_when_server_pod_cycles_for_a_nodeport_service(jig):
    """[sig-network] Conntrack should be able to preserve UDP traffic when server pod cycles for a NodePort service

    Upstream: conntrack.go. The same through the server node's IP and node port.
    """
    _udp_cycle(jig, "NodePort")


DRAIN = 3       # --delay-shutdown and grace period (upstream 60 s)
VERSIONS = 1    # rolling updates (upstream 5)


def _daemon_pod(jig, name: str, labels: dict, node: str, version: int) -> dict:
    return jig.pod(f"{name}-{node}-v{version}", {**labels, "version": str(version)}, node,
                   ["netexec", "--http-port=80", f"--delay-shutdown={DRAIN}"], ports=[{"containerPort": 80}],
                   terminationGracePeriodSeconds=DRAIN)


def _rolling_update(jig, outside, policy: str, min_success: float = 0.95) -> None:
    """testRollingUpdateLBConnectivityDisruption. Upstream rolls a DaemonSet; this test
    (written before netemu had a DaemonSet controller) replaces the per-node pods itself the
    way that rollout does with maxUnavailable 1 (10% of 3 nodes, rounded up): one node at a
    time, the old pod deleted (draining for DRAIN s) and gone before the new one starts there."""
    name, labels = "test-lb-rolling-update", {"name": "test-lb-rolling-update"}
    nodes = jig.workers()
    jig.create_pods(*[_daemon_pod(jig, name, labels, n, 0) for n in nodes])
    jig.create_service(jig.service(name, labels, type_="LoadBalancer", externalTrafficPolicy=policy))
    vip = jig.load_balancer_ip(name)
    jig.route_from(outside, vip, nodes[0])
    stream = Stream(outside, [request("http", vip, 80, path="/echo?msg=hello", timeout=5)], 600, 0.05)
    try:
        eventually("the load balancer answering", lambda: stream.answered("hello"), 30)
        for version in range(1, VERSIONS + 1):
            for node in nodes:
                old = f"{name}-{node}-v{version - 1}"
                jig.delete("pod", old, wait=False)
                eventually(f"{old} gone", lambda o=old: o not in {p["metadata"]["name"] for p in jig.pods()},
                           DRAIN + 30)
                jig.create_pods(_daemon_pod(jig, name, labels, node, version))
            t = stream.outcomes[-1]["t"] if stream.outcomes else 0
            eventually("the load balancer answering", lambda: any(o.get("ok") == "hello" for o in stream.since(t)), 30)
    finally:
        outcomes = stream.stop()
    ok = sum(1 for o in outcomes if o.get("ok") == "hello")
    assert outcomes and ok / len(outcomes) >= min_success, (
        f"success rate {ok}/{len(outcomes)} below {min_success}: "
        f"{[o for o in outcomes if o.get('ok') != 'hello'][:10]}")


def test_should_not_have_connectivity_disruption_during_rolling_update_with_externaltrafficpolicy_cluster(jig, outside):
    """[sig-network] LoadBalancers [Feature:LoadBalancer] should not have connectivity disruption during rolling update with externalTrafficPolicy=Cluster [Slow]

    Upstream: loadbalancer.go. New connections to the VIP one after the other (50 ms apart)
    while the servers are replaced node by node (upstream: 5 rounds, 60 s drains; one round of
    3 s drains here): at least 95% are answered (upstream's bar).
    """
    _rolling_update(jig, outside, "Cluster")


def test_should_not_have_connectivity_disruption_during_rolling_update_with_externaltrafficpolicy_local(jig, outside):
    """[sig-network] LoadBalancers [Feature:LoadBalancer] should not have connectivity disruption during rolling update with externalTrafficPolicy=Local [Slow]

    Upstream: loadbalancer.go. The same with externalTrafficPolicy Local: while the VIP's node
    replaces its own server, the terminating one keeps serving (local fallback).
    """
    _rolling_update(jig, outside, "Local")
