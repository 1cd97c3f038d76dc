"""Unready and terminating endpoints (test/e2e/network/service.go, kubernetes v1.32).

The servers are agnhost netexec --delay-shutdown=N with an N s grace period: deleted, they keep
serving for N s while their pod is terminating (and, with a /readyz probe, unready). kube-proxy
uses terminating endpoints only when no ready one is left (KEP-1669), and publishNotReadyAddresses
makes unready ones ready. Upstream loops 5 times with 5 s pauses over each check; 3 times with
1 s here (the rules do not change while the pod terminates). Every pod is force-deleted after
the test, so the long grace periods cost nothing.
"""

from __future__ import annotations

import pytest

from tests.e2e.service_behaviours.jig import eventually, settle
from tests.e2e.service_behaviours.traffic import exec_hostname_test, never_answers, wait_reachable, wait_unreachable

pytestmark = [pytest.mark.root, pytest.mark.kubectl, pytest.mark.slow]

ROUNDS = 3


def _webserver(jig, name: str, node: str, grace: int, labels: dict, probes: bool = False):
    """The delay-shutdown server upstream's tests build (readiness /readyz, liveness /healthz)."""
    http = lambda path: {"httpGet": {"path": path, "port": 80}, "periodSeconds": 1}  # noqa: E731
    extra = {"readinessProbe": http("/readyz"), "livenessProbe": http("/healthz")} if probes else {}
    pod = jig.pod(name, labels, node, ["netexec", "--http-port=80", f"--delay-shutdown={grace}"],
                  ports=[{"containerPort": 80}], terminationGracePeriodSeconds=grace, **extra)
    return jig.create_pods(pod)[0]


def _not_ready(jig, name: str) -> None:
    """podutil.IsPodReady false: the Ready condition itself (a terminating pod may stay Ready)."""
    def ready_condition():
        conds = (jig.get("pod", name).get("status") or {}).get("conditions") or []
        return next((c["status"] for c in conds if c["type"] == "Ready"), "Unknown")
    eventually(f"pod {name}'s Ready condition False", lambda: ready_condition() == "False", 60)


def test_should_create_endpoints_for_unready_pods(jig):
    """[sig-network] Services should create endpoints for unready pods

    Upstream: service.go. A never-ready pod (readiness /bin/false) behind a Service with
    publishNotReadyAddresses answers; scaled to 0 it terminates (preStop sleep 100, grace 100):
    with publishNotReadyAddresses off it is unreachable, back on it answers again; by the
    Service's DNS name, as upstream curls it.
    """
    labels = {"testid": "tolerate-unready"}
    svc = jig.create_service(jig.service("tolerate-unready", labels, publishNotReadyAddresses=True))
    pod = jig.pod("slow-terminating-unready-pod", labels, None, ["netexec", "--http-port=80"],
                  ports=[{"containerPort": 80, "protocol": "TCP"}], terminationGracePeriodSeconds=100,
                  readinessProbe={"exec": {"command": ["/bin/false"]}},
                  lifecycle={"preStop": {"exec": {"command": ["/bin/sleep", "100"]}}})
    jig.apply({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "slow-terminating-unready-pod"},
               "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels}, "spec": pod["spec"]}}})
    client = jig.exec_pod("execpod")
    ip = f"{svc['metadata']['name']}.{jig.ns}.svc.cluster.local"
    wait_reachable(client, ip, 80, timeout=60)
    jig.kubectl("scale", "replicaset", "slow-terminating-unready-pod", "--replicas=0")
    jig.update_service("tolerate-unready", lambda s: s["spec"].update(publishNotReadyAddresses=False))
    wait_unreachable(client, ip, 80)
    jig.update_service("tolerate-unready", lambda s: s["spec"].update(publishNotReadyAddresses=True))
    wait_reachable(client, ip, 80, timeout=10)        # still serving: its preStop hook holds SIGTERM back


def _publish_not_ready(jig, publish: bool):
    node0, node1, _ = jig.workers()
    name = "svc-tolerate-unready" if publish else "svc-not-tolerate-unready"
    labels = {"testid": name}
    svc = jig.create_service(jig.service(name, labels, type_="NodePort", publishNotReadyAddresses=publish))
    _webserver(jig, "webserver-pod", node0, 300, labels, probes=True)
    jig.wait_endpoints(name, {"webserver-pod": [80]})
    client = jig.exec_pod("pause-pod-1", node1)
    jig.delete("pod", "webserver-pod", wait=False)
    _not_ready(jig, "webserver-pod")
    port = svc["spec"]["ports"][0]["nodePort"]
    targets = [(svc["spec"]["clusterIP"], 80), (jig.node_ip(node0), port), (jig.node_ip(node1), port)]
    return client, targets


@pytest.mark.vm_subset
def test_should_be_able_to_connect_to_terminating_and_unready_endpoints_if_publishnotreadyaddresses_is_true(jig):
    """[sig-network] Services should be able to connect to terminating and unready endpoints if PublishNotReadyAddresses is true

    Upstream: service.go. The deleted, unready server still answers on the ClusterIP and on
    both nodes' node port: publishNotReadyAddresses keeps it a ready endpoint.
    """
    client, targets = _publish_not_ready(jig, True)
    for _ in range(ROUNDS):
        for ip, port in targets:
            exec_hostname_test(client, ip, port, "webserver-pod")
        settle(1)


@pytest.mark.vm_subset
def test_should_not_be_able_to_connect_to_terminating_and_unready_endpoints_if_publishnotreadyaddresses_is_false(jig):
    """[sig-network] Services should not be able to connect to terminating and unready endpoints if PublishNotReadyAddresses is false

    Upstream: service.go. Without publishNotReadyAddresses the deleted, unready server is
    neither ready nor serving: nothing answers any more.
    """
    client, targets = _publish_not_ready(jig, False)
    for ip, port in targets[1:]:
        wait_unreachable(client, ip, port)
    for _ in range(ROUNDS):
        for ip, port in targets:
            never_answers(client, ip, port, 1)
        settle(1)


def _terminating_only(jig, type_: str = "ClusterIP", **spec):
    """One server on node0 (no readiness probe: serving while terminating), deleted; two nodes
    are enough (a cluster of two runs it too)."""
    node0, node1 = jig.workers()[:2]
    labels = {"testid": "svc-proxy-terminating"}
    svc = jig.create_service(jig.service("svc-proxy-terminating", labels, type_=type_, **spec))
    _webserver(jig, "echo-hostname-0", node0, 100, labels)
    jig.wait_endpoints("svc-proxy-terminating", {"echo-hostname-0": [80]})
    pod0, pod1 = jig.exec_pod("pause-pod-0", node0), jig.exec_pod("pause-pod-1", node1)
    jig.delete("pod", "echo-hostname-0", wait=False)
    eventually("echo-hostname-0 terminating", lambda: jig.get("pod", "echo-hostname-0")["metadata"].get(
        "deletionTimestamp"), 30)
    return svc, pod0, pod1


@pytest.mark.vm_subset
def test_should_fallback_to_terminating_endpoints_when_there_are_no_ready_endpoints_with_internaltrafficpolicy_cluster(jig):
    """[sig-network] Services should fallback to terminating endpoints when there are no ready endpoints with internalTrafficPolicy=Cluster

    Upstream: service.go. The only endpoint is terminating (still serving): clients on both
    nodes keep reaching it through the ClusterIP.
    """
    svc, pod0, pod1 = _terminating_only(jig)
    ip = svc["spec"]["clusterIP"]
    wait_reachable(pod1, ip, 80, expect="echo-hostname-0")
    for _ in range(ROUNDS):
        exec_hostname_test(pod0, ip, 80, "echo-hostname-0")
        exec_hostname_test(pod1, ip, 80, "echo-hostname-0")
        settle(1)


def test_should_fallback_to_local_terminating_endpoints_when_there_are_no_ready_endpoints_with_internaltrafficpolicy_local(jig):
    """[sig-network] Services should fallback to local terminating endpoints when there are no ready endpoints with internalTrafficPolicy=Local

    Upstream: service.go. With internalTrafficPolicy Local only the server's own node falls
    back to it; the other node has no local endpoint and gets no answer.
    """
    svc, pod0, pod1 = _terminating_only(jig, internalTrafficPolicy="Local")
    ip = svc["spec"]["clusterIP"]
    for _ in range(ROUNDS):
        exec_hostname_test(pod0, ip, 80, "echo-hostname-0")
        never_answers(pod1, ip, 80, 1)
        settle(1)


@pytest.mark.vm_subset
def test_should_fallback_to_terminating_endpoints_when_there_are_no_ready_endpoints_with_externalltrafficpolicy_cluster(jig):
    """[sig-network] Services should fallback to terminating endpoints when there are no ready endpoints with externallTrafficPolicy=Cluster

    Upstream: service.go (its spelling). NodePort, externalTrafficPolicy Cluster: both
    clients reach the terminating server through node0's node port.
    """
    svc, pod0, pod1 = _terminating_only(jig, "NodePort")
    target = (jig.node_ip(jig.workers()[0]), svc["spec"]["ports"][0]["nodePort"])
    for _ in range(ROUNDS):
        exec_hostname_test(pod0, *target, "echo-hostname-0")
        exec_hostname_test(pod1, *target, "echo-hostname-0")
        settle(1)


@pytest.mark.vm_subset
def test_should_fallback_to_local_terminating_endpoints_when_there_are_no_ready_endpoints_with_externaltrafficpolicy_local(jig):
    """[sig-network] Services should fallback to local terminating endpoints when there are no ready endpoints with externalTrafficPolicy=Local

    Upstream: service.go. NodePort, externalTrafficPolicy Local: node1's node port has no
    local endpoint (pod0 -> node1 fails); node0's answers both clients.
    """
    svc, pod0, pod1 = _terminating_only(jig, "NodePort", externalTrafficPolicy="Local")
    node0, node1, _ = jig.workers()
    port = svc["spec"]["ports"][0]["nodePort"]
    for _ in range(ROUNDS):
        never_answers(pod0, jig.node_ip(node1), port, 1)
        exec_hostname_test(pod0, jig.node_ip(node0), port, "echo-hostname-0")
        exec_hostname_test(pod1, jig.node_ip(node0), port, "echo-hostname-0")
        settle(1)
