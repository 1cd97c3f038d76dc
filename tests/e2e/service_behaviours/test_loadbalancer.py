"""LoadBalancer Services (kubernetes v1.32 test/e2e/network/loadbalancer.go and service.go).

netemu's cloud controller gives a LoadBalancer Service a VIP from the top of the node network
and kube-proxy captures it on every node; what a cloud load balancer adds -- a route from the
outside to a node -- is a /32 route in the outside client's namespace (netemu's external host on
the node network, neither node nor pod), towards a node the load balancer would pick. Upstream's
test runner stands outside the cluster the same way.
"""

from __future__ import annotations

import pytest

from tests.e2e.service_behaviours.checks import check_service_reachability
from tests.e2e.service_behaviours.jig import AGNHOST, eventually
from tests.e2e.service_behaviours.traffic import Client, answers, outcome, wait_reachable, wait_unreachable

pytestmark = [pytest.mark.root, pytest.mark.kubectl, pytest.mark.slow]


def _deployment(jig, name: str, labels: dict, replicas: int = 1):
    """e2edeployment.NewDeployment as upstream's LB tests make it: netexec on 80 (TCP and UDP),
    readiness GET /hostName every 3 s."""
    spec = {"terminationGracePeriodSeconds": 1, "containers": [{
        "name": name, "image": AGNHOST,
        "args": ["netexec", "--http-port=80", "--udp-port=80"],
        "readinessProbe": {"periodSeconds": 3, "httpGet": {"port": 80, "path": "/hostName"}}}]}
    jig.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
               "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels}, "spec": spec}}})


def _scale(jig, name: str, replicas: int, labels: dict) -> None:
    jig.kubectl("scale", "deployment", name, f"--replicas={replicas}")
    sel = ",".join(f"{k}={v}" for k, v in labels.items())
    eventually(f"{name} at {replicas} ready replicas", lambda: len(
        [p for p in jig.pods(sel) if not p["metadata"].get("deletionTimestamp") and
         any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]) == replicas
        and len(jig.pods(sel)) == replicas, 60)


def _reach_lb(jig, outside: Client, ip: str, port: int, via: str | None = None) -> str:
    jig.route_from(outside, ip, via or jig.workers()[0])
    return wait_reachable(outside, ip, port)


def test_should_be_able_to_change_the_type_and_ports_of_a_tcp_service(jig, outside):
    """[sig-network] LoadBalancers [Feature:LoadBalancer] should be able to change the type and ports of a TCP service [Slow]

    Upstream: loadbalancer.go. ClusterIP -> NodePort -> LoadBalancer (node port kept), a new
    node port and a new service port (VIP kept, still reachable from outside), no backends
    (refused), a backend again, back to ClusterIP (node port cleared, VIP released and dead).
    """
    name, labels = "mutability-test-tcp", {"testid": "mutability-test-tcp"}
    svc = jig.create_service(jig.service(name, labels))
    _deployment(jig, name, labels)
    client = jig.exec_pod("execpod")
    check_service_reachability(jig, svc, client)
    svc = jig.update_service(name, lambda s: s["spec"].update(type="NodePort"))
    node_port = svc["spec"]["ports"][0]["nodePort"]
    check_service_reachability(jig, svc, client)
    jig.update_service(name, lambda s: s["spec"].update(type="LoadBalancer"))
    vip = jig.load_balancer_ip(name)
    svc = jig.get("service", name)
    assert svc["spec"]["ports"][0]["nodePort"] == node_port, "Spec.Ports[0].NodePort changed"
    check_service_reachability(jig, svc, client)
    _reach_lb(jig, outside, vip, 80)

    new_port = 30000 + (node_port - 30000 + 1) % 2768
    svc = jig.update_service(name, lambda s: s["spec"]["ports"][0].update(nodePort=new_port))
    assert svc["spec"]["ports"][0]["nodePort"] == new_port and jig.load_balancer_ip(name) == vip
    wait_reachable(outside, vip, 80)
    wait_reachable(client, jig.node_ip(jig.workers()[1]), new_port)

    svc = jig.update_service(name, lambda s: s["spec"]["ports"][0].update(port=81))
    assert svc["spec"]["ports"][0]["nodePort"] == new_port and jig.load_balancer_ip(name) == vip
    wait_reachable(outside, vip, 81)

    _scale(jig, name, 0, labels)
    wait_unreachable(outside, vip, 81, errors=("refused",))
    _scale(jig, name, 1, labels)
    wait_reachable(outside, vip, 81)

    svc = jig.update_service(name, lambda s: s["spec"].update(type="ClusterIP"))
    assert "nodePort" not in svc["spec"]["ports"][0], "Spec.Ports[0].NodePort was not cleared"
    eventually("the load balancer gone", lambda: not (jig.get("service", name).get("status") or {}).get(
        "loadBalancer", {}).get("ingress"))
    wait_unreachable(outside, vip, 81)


@pytest.mark.vm_subset
def test_should_only_allow_access_from_service_loadbalancer_source_ranges(jig, outside):
    """[sig-network] LoadBalancers [Feature:LoadBalancer] should only allow access from service loadbalancer source ranges [Slow]

    Upstream: loadbalancer.go. Ranges allowing only acceptPod (its pod and host IPs): the
    outside and dropPod are cut off; "0.0.0.0/1,128.0.0.0/1" lets all in; "255.0.0.0/32" none;
    cleared, all again. Pods reach the VIP through their own node's rules.
    """
    name, labels = "lb-sourcerange", {"testid": "lb-sourcerange"}
    jig.create_service(jig.service(name, labels, type_="LoadBalancer"))
    _deployment(jig, name, labels)
    node0, node1, _ = jig.workers()
    accept, drop = jig.exec_pod("execpod-accept", node0), jig.exec_pod("execpod-drop", node1)
    vip = jig.load_balancer_ip(name)

    def expect(outside_ok: bool, accept_ok: bool, drop_ok: bool) -> None:
        for client, ok in ((outside, outside_ok), (accept, accept_ok), (drop, drop_ok)):
            (wait_reachable if ok else wait_unreachable)(client, vip, 80)

    _reach_lb(jig, outside, vip, 80, node1)
    expect(True, True, True)
    jig.update_service(name, lambda s: s["spec"].update(
        loadBalancerSourceRanges=[f"{accept.ip}/32", f"{jig.node_ip(node0)}/32"]))
    expect(False, True, False)
    jig.update_service(name, lambda s: s["spec"].update(loadBalancerSourceRanges=["0.0.0.0/1", "128.0.0.0/1"]))
    expect(True, True, True)
    jig.update_service(name, lambda s: s["spec"].update(loadBalancerSourceRanges=["255.0.0.0/32"]))
    expect(False, False, False)
    jig.update_service(name, lambda s: s["spec"].update(loadBalancerSourceRanges=None))
    expect(True, True, True)


def test_should_be_able_to_create_loadbalancer_service_without_nodeport_and_change_it(jig, outside):
    """[sig-network] LoadBalancers [Feature:LoadBalancer] should be able to create LoadBalancer Service without NodePort and change it [Slow]

    Upstream: loadbalancer.go. allocateLoadBalancerNodePorts=false: a VIP and no node port,
    reachable; set to true: a node port appears, the VIP stays and still answers.
    """
    name, labels = "reallocate-nodeport-test", {"testid": "reallocate-nodeport-test"}
    jig.create_service(jig.service(name, labels))
    _deployment(jig, name, labels)
    svc = jig.update_service(name, lambda s: s["spec"].update(type="LoadBalancer", allocateLoadBalancerNodePorts=False))
    vip = jig.load_balancer_ip(name)
    assert "nodePort" not in svc["spec"]["ports"][0], "NodePort allocated when not expected"
    _reach_lb(jig, outside, vip, 80)
    svc = jig.update_service(name, lambda s: s["spec"].update(allocateLoadBalancerNodePorts=True))
    assert svc["spec"]["ports"][0].get("nodePort"), "NodePort not allocated"
    assert jig.load_balancer_ip(name) == vip
    wait_reachable(outside, vip, 80)


def _health(client: Client, ip: str, port: int) -> int | None:
    """The health-check node port's HTTP status (200 / 503), None if nothing answered."""
    got = outcome(client, ip, port, path="/healthz")
    return 200 if "ok" in got else int(got["error"].split("-")[1]) if got["error"].startswith("http-") else None


def _health_is(jig, client: Client, node: str, port: int, status: int, threshold: int = 2) -> None:
    """testHTTPHealthCheckNodePortFromTestContainer: ``threshold`` answers of ``status``."""
    seen: list = []

    def probe():
        seen.append(_health(client, jig.node_ip(node), port))
        return seen[-threshold:] == [status] * threshold
    try:
        eventually(f"health check {node} {jig.node_ip(node)}:{port} answering {status} x{threshold}", probe, 30, 0.3)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; answers seen: {seen}") from None


def test_should_only_target_nodes_with_endpoints(jig, outside, clients):
    """[sig-network] LoadBalancers ExternalTrafficPolicy: Local [Feature:LoadBalancer] [Slow] should only target nodes with endpoints

    Upstream: loadbalancer.go. One endpoint at a time on each node in turn: the VIP answers
    through that node, and the health-check node port says 200 there and 503 on the others.
    """
    name, labels = "external-local-nodes", {"testid": "external-local-nodes"}
    svc = jig.create_service(jig.service(name, labels, [{"name": "http", "port": 8081, "targetPort": 80}],
                                         "LoadBalancer", externalTrafficPolicy="Local"))
    hc = svc["spec"]["healthCheckNodePort"]
    vip, probe_from = jig.load_balancer_ip(name), clients[jig.workers()[0]]
    for endpoint_node in jig.workers():
        jig.create_pods(jig.pod(name, labels, endpoint_node, ["netexec", "--http-port=80"]))
        jig.wait_endpoints(name, {name: [80]})
        jig.route_from(outside, vip, endpoint_node)       # the load balancer follows the health checks
        for node in jig.workers():
            wait_reachable(outside, vip, 8081)
            _health_is(jig, probe_from, node, hc, 200 if node == endpoint_node else 503)
        jig.delete("pod", name, grace=0)
        jig.wait_endpoints(name, {})


@pytest.mark.vm_subset
def test_should_work_for_type_loadbalancer(jig, outside, clients):
    """[sig-network] LoadBalancers ExternalTrafficPolicy: Local [Feature:LoadBalancer] [Slow] should work for type=LoadBalancer

    Upstream: loadbalancer.go. The server behind the VIP sees the outside client's own IP; once
    the Service is ClusterIP again, its old health-check node port no longer answers 200.
    """
    name, labels = "external-local-lb", {"testid": "external-local-lb"}
    svc = jig.create_service(jig.service(name, labels, type_="LoadBalancer", externalTrafficPolicy="Local"))
    hc = svc["spec"]["healthCheckNodePort"]
    assert hc, "Service HealthCheck NodePort was not allocated"
    (pod,) = jig.create_pods(jig.pod(name, labels, jig.workers()[1], ["netexec", "--http-port=80"]))
    vip = jig.load_balancer_ip(name)
    jig.route_from(outside, vip, pod["spec"]["nodeName"])
    source = eventually("the client IP through the VIP", lambda: answers(outside, vip, 80, path="/clientip")[0])
    assert source.rsplit(":", 1)[0] == outside.ip, f"Source IP was NOT preserved: {source}"
    jig.update_service(name, lambda s: s["spec"].update(type="ClusterIP"))
    for node in jig.workers():
        eventually(f"no healthy answer on {node}:{hc}", lambda: _health(clients[node], jig.node_ip(node), hc) != 200)


def test_should_fail_health_check_node_port_if_there_are_only_terminating_endpoints(jig):
    """[sig-network] Services should fail health check node port if there are only terminating endpoints

    Upstream: service.go. A terminating (still serving) endpoint is not ready: the health check
    says 503 while the node port keeps forwarding to it.
    """
    name, labels = "svc-proxy-terminating", {"testid": "svc-proxy-terminating"}
    node0 = jig.workers()[0]
    svc = jig.create_service(jig.service(name, labels, type_="LoadBalancer", externalTrafficPolicy="Local"))
    jig.create_pods(jig.pod("echo-hostname-0", labels, node0, ["netexec", "--http-port", "80", "--delay-shutdown", "100"],
                            terminationGracePeriodSeconds=100))
    jig.wait_endpoints(name, {"echo-hostname-0": [80]})
    pod0 = jig.exec_pod("pause-pod-0", node0)
    hc = svc["spec"]["healthCheckNodePort"]
    _health_is(jig, pod0, node0, hc, 200, 1)
    jig.delete("pod", "echo-hostname-0", wait=False)
    _health_is(jig, pod0, node0, hc, 503, 1)
    assert answers(pod0, jig.node_ip(node0), svc["spec"]["ports"][0]["nodePort"]) == ["echo-hostname-0"]
