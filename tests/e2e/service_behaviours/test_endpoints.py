"""Upstream's basic Service tests (test/e2e/network/service.go, kubernetes v1.32): endpoints
follow pods, traffic follows endpoints, on every port, protocol and node.

Timeouts are upstream's lag timeouts cut to 30 s (netemu's kube-proxy syncs within ~1 s, its
min sync period); pods run agnhost netexec / serve-hostname as upstream's do.
"""

from __future__ import annotations

import pytest

from tests.e2e import _cluster as c
from tests.e2e.service_behaviours.checks import check_service_reachability
from tests.e2e.service_behaviours.jig import AGNHOST, eventually
from tests.e2e.service_behaviours.traffic import (
    always_answers, answers, outcome, serve_hostname_down, serve_hostname_up, wait_reachable,
    wait_unreachable,
)

pytestmark = [pytest.mark.root, pytest.mark.kubectl, pytest.mark.slow]


def _answers_only(client, ip, port, names, count=30, **kw):
    """Eventually every answer comes from one of ``names`` and all of them answer."""
    eventually(f"{ip}:{port} answered by exactly {sorted(names)}",
               lambda: set(answers(client, ip, port, count, timeout=1, **kw)) == set(names))


@pytest.mark.vm_subset
def test_should_serve_a_basic_endpoint_from_pods(jig, clients):
    """[sig-network] Services should serve a basic endpoint from pods [Conformance]

    Upstream: service.go. No pod, one, two, one, none: the EndpointSlices list exactly the
    pods on port 80 each time, and the ClusterIP forwards to exactly those pods.
    """
    svc = jig.create_service(jig.service("endpoint-test2", {"testid": "endpoint-test2"}))
    ip, client = svc["spec"]["clusterIP"], clients[jig.workers()[0]]
    jig.wait_endpoints("endpoint-test2", {})
    labels = {"testid": "endpoint-test2"}
    jig.create_pods(jig.pod("pod1", labels, ports=[{"containerPort": 80}]))
    jig.wait_endpoints("endpoint-test2", {"pod1": [80]})
    _answers_only(client, ip, 80, {"pod1"})
    jig.create_pods(jig.pod("pod2", labels, ports=[{"containerPort": 80}]))
    jig.wait_endpoints("endpoint-test2", {"pod1": [80], "pod2": [80]})
    _answers_only(client, ip, 80, {"pod1", "pod2"})
    jig.delete("pod", "pod1")
    jig.wait_endpoints("endpoint-test2", {"pod2": [80]})
    _answers_only(client, ip, 80, {"pod2"})
    jig.delete("pod", "pod2")
    jig.wait_endpoints("endpoint-test2", {})
    wait_unreachable(client, ip, 80, errors=("refused",))


@pytest.mark.vm_subset
def test_should_serve_multiport_endpoints_from_pods(jig, clients):
    """[sig-network] Services should serve multiport endpoints from pods [Conformance]

    Upstream: service.go. Two service ports with named target ports (svc1 -> 100 on pod1,
    svc2 -> 101 on pod2): each port's endpoints and traffic follow its own pod.
    """
    ports = [{"name": "portname1", "port": 80, "targetPort": "svc1"},
             {"name": "portname2", "port": 81, "targetPort": "svc2"}]
    svc = jig.create_service(jig.service("multi-endpoint-test", {"testid": "multi"}, ports))
    ip, client = svc["spec"]["clusterIP"], clients[jig.workers()[1]]
    jig.wait_endpoints("multi-endpoint-test", {})
    jig.create_pods(jig.pod("pod1", {"testid": "multi"}, args=["netexec", "--http-port=100"],
                            ports=[{"name": "svc1", "containerPort": 100}]))
    jig.wait_endpoints("multi-endpoint-test", {"pod1": [100]})
    jig.create_pods(jig.pod("pod2", {"testid": "multi"}, args=["netexec", "--http-port=101"],
                            ports=[{"name": "svc2", "containerPort": 101}]))
    jig.wait_endpoints("multi-endpoint-test", {"pod1": [100], "pod2": [101]})
    wait_reachable(client, ip, 80, expect="pod1")
    wait_reachable(client, ip, 81, expect="pod2")
    always_answers(client, ip, 80, "pod1", 10)
    always_answers(client, ip, 81, "pod2", 10)
    jig.delete("pod", "pod1")
    jig.wait_endpoints("multi-endpoint-test", {"pod2": [101]})
    jig.delete("pod", "pod2")
    jig.wait_endpoints("multi-endpoint-test", {})


def test_should_be_updated_after_adding_or_deleting_ports(jig, clients):
    """[sig-network] Services should be updated after adding or deleting ports

    Upstream: service.go. A port added to the Service starts forwarding to the pod that has
    its named target port; a port removed stops forwarding while the other keeps working.
    """
    p1 = {"name": "portname1", "port": 80, "targetPort": "svc1"}
    p2 = {"name": "portname2", "port": 81, "targetPort": "svc2"}
    svc = jig.create_service(jig.service("edit-port-test", {"testid": "edit"}, [p1]))
    ip, client = svc["spec"]["clusterIP"], clients[jig.workers()[-1]]
    jig.create_pods(jig.pod("pod1", {"testid": "edit"}, args=["netexec", "--http-port=100"],
                            ports=[{"name": "svc1", "containerPort": 100}]))
    jig.wait_endpoints("edit-port-test", {"pod1": [100]})
    wait_reachable(client, ip, 80, expect="pod1")
    jig.update_service("edit-port-test", lambda s: s["spec"].update(ports=[p1, p2]))
    jig.create_pods(jig.pod("pod2", {"testid": "edit"}, args=["netexec", "--http-port=101"],
                            ports=[{"name": "svc2", "containerPort": 101}]))
    jig.wait_endpoints("edit-port-test", {"pod1": [100], "pod2": [101]})
    wait_reachable(client, ip, 81, expect="pod2")
    jig.update_service("edit-port-test", lambda s: s["spec"].update(ports=[p1]))
    jig.wait_endpoints("edit-port-test", {"pod1": [100]})
    wait_unreachable(client, ip, 81)
    always_answers(client, ip, 80, "pod1", 5)


@pytest.mark.vm_subset
def test_should_serve_endpoints_on_same_port_and_different_protocols(jig, clients):
    """[sig-network] Services should serve endpoints on same port and different protocols [Conformance]

    Upstream: service.go. TCP 80 and UDP 80 on one Service reach the pod's TCP and UDP
    servers; with only TCP left the UDP port stops forwarding, and the other way round.
    """
    tcp = {"name": "tcp-port", "port": 80, "targetPort": 80, "protocol": "TCP"}
    udp = {"name": "udp-port", "port": 80, "targetPort": 80, "protocol": "UDP"}
    labels = {"app": "multiport"}
    svc = jig.create_service(jig.service("multiprotocol-test", labels, [tcp, udp], labels=labels))
    ip, client = svc["spec"]["clusterIP"], clients[jig.workers()[0]]
    jig.create_pods(jig.pod("pod1", labels, args=["netexec", "--http-port=80", "--udp-port=80"],
                            ports=[{"name": "tcp-port", "containerPort": 80, "protocol": "TCP"},
                                   {"name": "udp-port", "containerPort": 80, "protocol": "UDP"}]))
    jig.wait_endpoints("multiprotocol-test", {"pod1": [80]})
    wait_reachable(client, ip, 80, "http", expect="pod1")
    wait_reachable(client, ip, 80, "udp", expect="pod1")
    jig.update_service("multiprotocol-test", lambda s: s["spec"].update(ports=[tcp]))
    wait_unreachable(client, ip, 80, "udp")
    wait_reachable(client, ip, 80, "http", expect="pod1")
    jig.update_service("multiprotocol-test", lambda s: s["spec"].update(ports=[udp]))
    wait_unreachable(client, ip, 80, "http")
    wait_reachable(client, ip, 80, "udp", expect="pod1")


@pytest.mark.vm_subset
def test_should_preserve_source_pod_ip_for_traffic_thru_service_cluster_ip(jig):
    """[sig-network] Services should preserve source pod IP for traffic thru service cluster IP [LinuxOnly]

    Upstream: service.go. Pause pods on two different nodes (a Deployment with pod
    anti-affinity, as upstream's createPausePodDeployment) see their own pod IP echoed by the
    server behind the ClusterIP: no SNAT for pod-to-Service traffic.
    """
    labels = {"testid": "sourceip-test"}
    svc = jig.create_service(jig.service("sourceip-test", labels, [{"port": 8080, "targetPort": 8080}]))
    jig.create_pods(jig.pod("echo-sourceip", labels, args=["netexec", "--http-port", "8080"]))
    jig.wait_endpoints("sourceip-test", {"echo-sourceip": [8080]})
    pause = {"deployment": "agnhost-pause"}
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": pause}, "topologyKey": "kubernetes.io/hostname"}]}}
    jig.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pause-pod"},
               "spec": {"replicas": 2, "selector": {"matchLabels": pause},
                        "template": {"metadata": {"labels": pause}, "spec": {
                            "affinity": anti, "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "agnhost-pause", "image": AGNHOST, "args": ["pause"]}]}}}})
    pods = eventually("2 ready pause pods", lambda: (lambda ps: ps if len(ps) == 2 else None)(
        [p for p in jig.pods("deployment=agnhost-pause") if c.ready(p)]), 60)
    assert pods[0]["spec"]["nodeName"] != pods[1]["spec"]["nodeName"]
    for pod in pods:
        source = wait_reachable(jig.client(pod), svc["spec"]["clusterIP"], 8080, path="/clientip")
        assert source.rsplit(":", 1)[0] == pod["status"]["podIP"], (pod["metadata"]["name"], source)


@pytest.mark.vm_subset
def test_should_allow_pods_to_hairpin_back_to_themselves_through_services(jig):
    """[sig-network] Services should allow pods to hairpin back to themselves through services

    Upstream: service.go. A pod reaches itself through its own Service's ClusterIP.
    """
    labels = {"testid": "hairpin-test"}
    svc = jig.create_service(jig.service("hairpin-test", labels, [{"port": 8080, "targetPort": 8080}]))
    (pod,) = jig.create_pods(jig.pod("hairpin", labels, args=["netexec", "--http-port", "8080"]))
    jig.wait_endpoints("hairpin-test", {"hairpin": [8080]})
    assert wait_reachable(jig.client(pod), svc["spec"]["clusterIP"], 8080) == "hairpin"


def _serve_hostname_service(jig, name, replicas=3):
    """StartServeHostnameService: a Service 80 -> 9376 and serve-hostname replicas behind it."""
    svc = jig.create_service(jig.service(name, {"name": name}, [{"port": 80, "targetPort": 9376, "protocol": "TCP"}]))
    pods = jig.replicas(name, replicas, {"name": name})
    return sorted(p["metadata"]["name"] for p in pods), svc["spec"]["clusterIP"]


def _stop_serve_hostname_service(jig, name):
    jig.delete("replicaset", name)
    jig.delete("service", name)


def _up_from_host_and_pod(jig, clients, names, ip, port=80):
    """verifyServeHostnameServiceUp: from a host-network exec pod and from a pod."""
    node = jig.workers()[0]
    serve_hostname_up([jig.node_client(node), clients[node]], ip, port, names)


def test_should_be_able_to_up_and_down_services(jig, clients):
    """[sig-network] Services should be able to up and down services

    Upstream: service.go. Two Services of 3 replicas answer from every replica; the first is
    stopped and goes down while the second stays up; a third comes up on a different IP.
    """
    names1, ip1 = _serve_hostname_service(jig, "up-down-1")
    names2, ip2 = _serve_hostname_service(jig, "up-down-2")
    _up_from_host_and_pod(jig, clients, names1, ip1)
    _up_from_host_and_pod(jig, clients, names2, ip2)
    _stop_serve_hostname_service(jig, "up-down-1")
    serve_hostname_down(jig.node_client(jig.workers()[0]), ip1, 80)
    _up_from_host_and_pod(jig, clients, names2, ip2)
    names3, ip3 = _serve_hostname_service(jig, "up-down-3")
    assert ip3 != ip2, f"service IPs conflict: {ip2}"
    _up_from_host_and_pod(jig, clients, names2, ip2)
    _up_from_host_and_pod(jig, clients, names3, ip3)


def test_should_work_after_the_service_has_been_recreated(jig, clients):
    """[sig-network] Services should work after the service has been recreated

    Upstream: service.go. Delete the Service of a running pod, wait until it is gone,
    create it again: the new ClusterIP forwards to the same pod.
    """
    names, ip = _serve_hostname_service(jig, "service-deletion", 1)
    _up_from_host_and_pod(jig, clients, names, ip)
    jig.delete("service", "service-deletion")
    svc = jig.create_service(jig.service("service-deletion", {"name": "service-deletion"},
                                         [{"port": 80, "targetPort": 9376, "protocol": "TCP"}]))
    _up_from_host_and_pod(jig, clients, names, svc["spec"]["clusterIP"])


@pytest.mark.vm_subset
def test_should_be_rejected_when_no_endpoints_exist(jig):
    """[sig-network] Services should be rejected when no endpoints exist

    Upstream: service.go. A Service without endpoints: a connect from a pod is refused at
    once (kube-proxy's REJECT, ICMP port unreachable), not left to time out.
    """
    svc = jig.create_service(jig.service("no-pods", {"testid": "no-pods"}))
    client = jig.exec_pod("execpod-noendpoints", jig.workers()[0])
    assert wait_unreachable(client, svc["spec"]["clusterIP"], 80, "tcp", errors=("refused",)) == "refused"


@pytest.mark.vm_subset
def test_should_be_able_to_create_a_functioning_nodeport_service(jig, clients):
    """[sig-network] Services should be able to create a functioning NodePort service [Conformance]

    Upstream: service.go. A NodePort Service with 2 pods answers by its name and ClusterIP
    and on every node's InternalIP at the node port.
    """
    labels = {"testid": "nodeport-test"}
    svc = jig.create_service(jig.service("nodeport-test", labels, [{"port": 80, "name": "http", "protocol": "TCP",
                                                                    "targetPort": 9376}], "NodePort"))
    jig.replicas("nodeport-test", 2, labels, ["netexec", "--http-port=9376", "--udp-port=9376"])
    answered = check_service_reachability(jig, svc, clients[jig.workers()[-1]])
    assert len(answered) == 2 + len(jig.workers())      # its name, its ClusterIP, every node


@pytest.mark.vm_subset
def test_should_be_possible_to_connect_to_a_service_via_externalip_when_the_external_ip_is_not_assigned_to_a_node(
        jig, clients):
    """[sig-network] Services should be possible to connect to a service via ExternalIP when the external IP is not assigned to a node

    Upstream: service.go. A ClusterIP Service with externalIPs [203.0.113.250] (documentation
    range, on no interface) answers on the external IP from a pod.
    """
    labels = {"testid": "externalip-test"}
    svc = jig.create_service(jig.service("externalip-test", labels, [{"port": 80, "name": "http", "protocol": "TCP",
                                                                      "targetPort": 9376}],
                                         externalIPs=["203.0.113.250"]))
    jig.replicas("externalip-test", 2, labels, ["netexec", "--http-port=9376", "--udp-port=9376"])
    check_service_reachability(jig, svc, clients[jig.workers()[1]])
    assert outcome(clients[jig.workers()[1]], "203.0.113.250", 80).get("ok")
