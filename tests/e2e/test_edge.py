"""The emulated cloud on a real cluster (issue 14, parts 3 and 4): `netemu up --edge` puts an
internet segment and a provider load balancer in front of the nodes, and `netemu node add /
remove` start and terminate node VMs under a cloud node-lifecycle controller.

- an internet client reaches a LoadBalancer Service through the provider LB, which spreads its
  connections over the nodes' NodePorts; with externalTrafficPolicy Cluster the backend sees a
  node's address; with Local only nodes passing the health-check NodePort get connections and
  the backend sees the client's own address; a client outside loadBalancerSourceRanges gets
  nothing (the cloud firewall drops it);
- a node added to the running cluster joins (Ready, its pods reachable from the other nodes and
  through the LB); removing it deletes the Node (the cloud controller) and its pods are
  rescheduled on the others, still served through the LB.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from netemu.emulator import external
from netemu.testing.cluster import netemu_argv, wait_until
from netemu.testing.edge import healthy_targets
from netemu.traffic.spec import LoadSpec

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.kubectl,
              pytest.mark.netemu_cluster(nodes=2, args=["--edge", "--apiserver-arg=--node-monitor-grace-period=6s",
                                                          # the defaults, said: the flag reaches the supervisor
                                                          "--lb-health-check=interval=2,timeout=1,rise=2,fall=2"])]
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def deployment(name, replicas=1, **pod_spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "terminationGracePeriodSeconds": 1, **pod_spec,
                         # no readiness probe: on a loaded machine a slow probe would take the
                         # endpoint away for a moment, and the refusals would not be the edge's
                         "containers": [{"name": "agnhost", "image": AGNHOST, "args": ["netexec", "--http-port=8080"]}]}}}}


def lb(name, app, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "selector": {"app": app}, **spec,
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


@pytest.fixture(scope="module")
def world(netemu_cluster):
    c = netemu_cluster
    c.apply(deployment("one", nodeSelector={"kubernetes.io/hostname": "worker"}),
            lb("lb-cluster", "one"), lb("lb-local", "one", externalTrafficPolicy="Local"),
            lb("lb-ranges", "one", loadBalancerSourceRanges=["203.0.113.10/32"]))
    c.wait_ready("app=one", 1)
    doc = c.doc()
    inside = external.ensure(str(c.state_dir))                   # the first client: 203.0.113.10
    outsider = external.ensure(str(c.state_dir), "outsider")
    assert inside.ip == "203.0.113.10" and outsider.ip != inside.ip
    for name in ("lb-cluster", "lb-local", "lb-ranges"):
        wait_until(f"{name} has its LoadBalancer IP", lambda: c.get("svc", name)["status"]["loadBalancer"].get("ingress"), 30)
    nodes = {n["metadata"]["name"]: next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
             for n in c.get("nodes")["items"]}
    return {"edge": doc["edge"], "inside": inside, "outsider": outsider, "nodes": nodes}


def listener_nodes(world, service: str) -> set[str]:
    """The node IPs the LB sends ``service``'s new connections to once they passed their
    health checks (nothing while it fails open to every node)."""
    return {world["nodes"][n] for n in healthy_targets(world["edge"], f"default/{service}") if n in world["nodes"]}


def send(cluster, service, source="external", n=40, probes=12):
    return cluster.traffic(source, f"svc/{service}", LoadSpec(connections=n, concurrency=4, clientip_probes=probes,
                                                              timeout=2.0))


def test_the_edge_routes_internet_clients_through_the_lb_host(netemu_cluster, world):
    edge = world["edge"]
    assert world["inside"].gateway == edge["gateway"] == "203.0.113.1"
    for node in netemu_cluster.doc()["nodes"].values():
        routes = subprocess.run(["ip", "-n", node["netns"], "route", "show", edge["internet_cidr"]],
                                capture_output=True, text=True).stdout
        assert f"via {edge['node_ip']}" in routes, (node, routes)


def test_etp_cluster_spreads_over_nodes_and_the_backend_sees_a_node(netemu_cluster, world):
    wait_until("both nodes pass lb-cluster's checks",
               lambda: listener_nodes(world, "lb-cluster") == set(world["nodes"].values()), 30)
    r = send(netemu_cluster, "lb-cluster")
    assert r.ok == 40 and not r.errors, r.errors
    seen = {ip for ips in r.clientips.values() for ip in ips}
    assert world["inside"].ip not in seen
    # the local node masquerades to its cni0 address, the other to its InternalIP: both nodes got connections
    assert any(ip in world["nodes"].values() for ip in seen) and any(ip.startswith("10.244.") for ip in seen), seen


def test_etp_local_only_nodes_with_endpoints_and_the_client_address_kept(netemu_cluster, world):
    wait_until("the LB sends lb-local only to worker", lambda: listener_nodes(world, "lb-local") == {world["nodes"]["worker"]}, 30)
    r = send(netemu_cluster, "lb-local")
    assert r.ok == 40 and not r.errors, r.errors
    assert {ip for ips in r.clientips.values() for ip in ips} == {world["inside"].ip}


def test_netemu_traffic_from_external_reports_the_address_each_backend_saw(netemu_cluster, world):
    """What a user runs: `netemu traffic --from external` through the provider LB, its --json
    saying which client address the backend saw (agnhost /clientip): the internet client's own
    with ETP Local, a node's with ETP Cluster."""
    c = netemu_cluster
    wait_until("the LB sends lb-local only to worker", lambda: listener_nodes(world, "lb-local") == {world["nodes"]["worker"]}, 30)

    def run(service):
        proc = c.netemu("traffic", "--from", "external", "--to", f"svc/{service}", "--connections", "12",
                        "--clientip-probes", "6", "--json", "--state-dir", str(c.state_dir), timeout=120)
        doc = json.loads(proc.stdout)
        assert doc["ok"] == 12 and not doc["errors"], doc["errors"]
        assert doc["target"]["ip"] in {i["ip"] for i in c.get("svc", service)["status"]["loadBalancer"]["ingress"]}
        return {ip for ips in doc["clientips"].values() for ip in ips}
    assert run("lb-local") == {world["inside"].ip}
    wait_until("both nodes pass lb-cluster's checks",
               lambda: listener_nodes(world, "lb-cluster") == set(world["nodes"].values()), 30)
    seen = run("lb-cluster")
    assert seen and world["inside"].ip not in seen, seen


def test_source_ranges_let_only_the_listed_client_in(netemu_cluster, world):
    assert send(netemu_cluster, "lb-ranges", n=8).ok == 8
    refused = send(netemu_cluster, "lb-ranges", source="external/outsider", n=4, probes=0)
    assert refused.ok == 0 and set(refused.errors) <= {"timeout", "connect timeout"}, refused.errors


SCENARIO = """\
name: edge-settle
duration: 5
seed: 1
cluster: {nodes: 2, edge: true}
manifests:
  - {apiVersion: apps/v1, kind: Deployment, metadata: {name: settle}, spec: {replicas: 1, selector: {matchLabels: {app: settle}},
     template: {metadata: {labels: {app: settle}}, spec: {nodeSelector: {kubernetes.io/hostname: worker2},
       terminationGracePeriodSeconds: 1, containers: [{name: a, image: "%s", args: [netexec, --http-port=8080]}]}}}}
  - {apiVersion: v1, kind: Service, metadata: {name: settle}, spec: {type: LoadBalancer, externalTrafficPolicy: Local,
     selector: {app: settle}, ports: [{name: http, port: 80, targetPort: 8080}]}}
traffic:
  - {name: lb, from: external, to: "svc/settle:80", via: loadbalancer, start: 0, requests: 60, rate: 30, clientip_probes: 3}
""" % AGNHOST


def test_status_and_an_experiment_wait_for_the_lb_to_send_where_the_endpoints_are(netemu_cluster, world, tmp_path):
    """An experiment's settle barrier waits for the provider LB too: its phase starting at t=0
    through a fresh ETP Local Service loses nothing (without that wait, the LB still failing
    open sent ~40% to the node without the endpoint, dropped there). `netemu status` shows the
    LB's listeners from the same report the barrier reads."""
    c = netemu_cluster
    (tmp_path / "s.yaml").write_text(SCENARIO)
    c.netemu("experiment", "run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--state-dir",
             str(c.state_dir), timeout=240)
    phase = json.loads((tmp_path / "out" / "phases.json").read_text())["lb"]
    assert phase["ok"] == 60 and not phase["errors"], phase["errors"]
    assert {ip for ips in phase["clientips"].values() for ip in ips} == {world["inside"].ip}
    wait_until("the LB sends lb-local only to worker", lambda: listener_nodes(world, "lb-local") == {world["nodes"]["worker"]}, 30)
    report = json.loads((c.state_dir / "loadbalancer.json").read_text())
    (lis,) = [l for l in report["listeners"] if l["service"] == "default/lb-local"]
    assert lis["targets"] == ["worker"] and lis["local"] and not lis["fail_open"]
    out = subprocess.run([*netemu_argv("status", "--state-dir", str(c.state_dir))], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "250"}, timeout=60).stdout
    assert "load balancers" in out and any("default/lb-local" in line and "healthCheckNodePort" in line
                                           for line in out.splitlines()), out


def test_node_add_joins_and_node_remove_reschedules(netemu_cluster, world):
    c = netemu_cluster
    c.netemu("node", "add", "worker3", "--zone", "zone-b", "--state-dir", str(c.state_dir))
    node = c.get("node", "worker3")
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "zone-b" and node["spec"].get("podCIDR")
    world["nodes"]["worker3"] = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    prefer_b = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": {
        "matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-b"]}]}}]}}
    c.apply(deployment("movers", 2, affinity=prefer_b), lb("lb-movers", "movers"))
    pods = c.wait_ready("app=movers", 2)
    assert {p["spec"]["nodeName"] for p in pods} == {"worker3"}
    wait_until("the LB knows worker3", lambda: world["nodes"]["worker3"] in listener_nodes(world, "lb-movers"), 30)
    # the other nodes' kube-proxies and routes to worker3's podCIDR follow within a sync or two
    wait_until("worker reaches the pods on worker3",
               lambda: send(c, "lb-movers", source="node/worker", n=10, probes=0).ok == 10, 30)
    wait_until("the LB reaches them", lambda: send(c, "lb-movers", n=20, probes=0).ok == 20, 30)
    c.netemu("node", "remove", "worker3", "--wait", "--timeout", "90", "--state-dir", str(c.state_dir), timeout=120)
    assert "worker3" not in {n["metadata"]["name"] for n in c.get("nodes")["items"]}
    moved = c.wait_ready("app=movers", 2, timeout=90)
    assert {p["spec"]["nodeName"] for p in moved} <= {"worker", "worker2"}
    wait_until("the LB forgot worker3", lambda: world["nodes"]["worker3"] not in listener_nodes(world, "lb-movers"), 30)
    wait_until("the moved pods served through the LB", lambda: send(c, "lb-movers", n=20, probes=0).ok == 20, 30)
    assert not [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
                if n.endswith("-worker3") and n.startswith(f"nen-{c.doc()['id']}")]
