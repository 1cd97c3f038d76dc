"""Resolving --from/--to against a cluster snapshot (pure, made-up objects): Services by name and
port, the endpoints expected to answer under each traffic policy, the scope, and a clear error
for every mistake."""

from __future__ import annotations

import pytest

from netemu.traffic.cluster import Snapshot
from netemu.traffic.spec import SpecError

DOC = {"name": "t", "id": "ab12", "node_network": "172.31.40.0/24", "root_ip": "172.31.40.1",
       "nodes": {"control-plane": {"ip": "172.31.40.2", "netns": "nen-ab12-control-plane", "role": "control-plane"},
                 "worker": {"ip": "172.31.40.3", "netns": "nen-ab12-worker", "role": "worker"},
                 "worker2": {"ip": "172.31.40.4", "netns": "nen-ab12-worker2", "role": "worker"}}}


def pod(name, node, ip, uid, host_network=False, hostname=None):
    return {"metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"nodeName": node, "hostNetwork": host_network, **({"hostname": hostname} if hostname else {})},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


PODS = [pod("web-a", "worker", "10.244.1.5", "11111111-1111-1111-1111-111111111111"),
        pod("web-b", "worker2", "10.244.2.5", "22222222-2222-2222-2222-222222222222", hostname="bee"),
        pod("client", "worker", "10.244.1.9", "33333333-3333-3333-3333-333333333333"),
        pod("hostnet", "worker2", "172.31.40.4", "44444444-4444-4444-4444-444444444444", host_network=True)]


def svc(name, type_="ClusterIP", ip="10.96.0.50", ports=None, **spec):
    ports = ports or [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP",
                       **({"nodePort": 30080} if type_ != "ClusterIP" else {})}]
    status = spec.pop("status", {})
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": type_, "clusterIP": ip, "clusterIPs": [ip], "ports": ports, **spec}, "status": status}


def slice_(name, eps, port_name="http", proto="TCP"):
    return {"metadata": {"name": f"{name}-1", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": port_name, "port": 8080, "protocol": proto}],
            "endpoints": [{"addresses": [p["status"]["podIP"]], "nodeName": p["spec"]["nodeName"],
                           "conditions": {"ready": ready}, "targetRef": {"kind": "Pod", "name": p["metadata"]["name"]}}
                          for p, ready in eps]}


SERVICES = [svc("web"), svc("np", "NodePort", "10.96.0.60", externalTrafficPolicy="Local"),
            svc("lb", "LoadBalancer", "10.96.0.70", status={"loadBalancer": {"ingress": [{"ip": "172.31.40.200"}]}}),
            svc("itp", ip="10.96.0.80", internalTrafficPolicy="Local"),
            svc("multi", ip="10.96.0.90", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                                   {"name": "dns", "port": 53, "protocol": "UDP"}]),
            svc("headless", ip="None"), svc("ext", "ExternalName", None, externalName="example.org")]
SLICES = [slice_(n, [(PODS[0], True), (PODS[1], True)]) for n in ("web", "np", "lb", "itp", "multi")]
SLICES[0]["endpoints"].append({"addresses": ["10.244.2.99"], "nodeName": "worker2", "conditions": {"ready": False},
                               "targetRef": {"kind": "Pod", "name": "gone"}})


@pytest.fixture
def snap():
    return Snapshot(DOC, SERVICES, SLICES, PODS)


def test_sources(snap):
    client = snap.source("client", "default")
    assert (client.kind, client.netns, client.ip, client.node) == ("pod", "nep-33333333333", "10.244.1.9", "worker")
    assert snap.source("pod/client", "default") == client
    assert snap.source("hostnet", "default").netns == "nen-ab12-worker2"      # hostNetwork: the node's
    node = snap.source("node/worker", "default")
    assert (node.netns, node.ip) == ("nen-ab12-worker", "172.31.40.3")
    ext = snap.source("external", "default")
    assert (ext.kind, ext.netns, ext.ip) == ("external", "nex-ab12-external", None)
    assert snap.source("external/edge", "default").netns == "nex-ab12-edge"


@pytest.mark.parametrize("text, message", [
    ("nosuch", "no pod 'nosuch' in namespace default"), ("node/nosuch", "no node 'nosuch'"),
    ("external/Bad_Name", "external host name"), ("svc/web", "give POD, pod/POD")])
def test_bad_sources(snap, text, message):
    with pytest.raises(SpecError, match=message):
        snap.source(text, "default")


def test_cluster_ip_target_and_expected_endpoints(snap):
    client = snap.source("client", "default")
    r = snap.target("svc/web", "default", client, "http")
    assert (r.target.ip, r.target.port, r.via) == ("10.96.0.50", 80, "clusterip")
    assert r.expected == ["bee", "web-a"]             # hostnames; the not-ready endpoint left out
    assert snap.target("svc/web:http", "default", client, "http").target.port == 80
    assert snap.target("svc/multi:dns", "default", client, "udp").target.port == 53
    # internalTrafficPolicy Local: only the client node's endpoints
    assert snap.target("svc/itp", "default", client, "http").expected == ["web-a"]


def test_node_port_and_load_balancer(snap):
    ext = snap.source("external", "default")
    np = snap.target("svc/np", "default", ext, "http")                 # no LB: the NodePort of the first worker
    assert (np.target.ip, np.target.port, np.via) == ("172.31.40.3", 30080, "nodeport")
    assert np.expected == ["web-a"]                                    # ETP Local: that node's endpoints only
    np2 = snap.target("svc/np", "default", ext, "http", via="nodeport", node="worker2")
    assert np2.target.ip == "172.31.40.4" and np2.expected == ["bee"]
    lb = snap.target("svc/lb", "default", ext, "http")
    assert (lb.target.ip, lb.target.port, lb.via) == ("172.31.40.200", 80, "loadbalancer")


def test_direct_targets(snap):
    client = snap.source("client", "default")
    r = snap.target("pod/web-b:8080", "default", client, "http")
    assert (r.target.ip, r.expected) == ("10.244.2.5", ["bee"])
    assert snap.target("node/worker:30080", "default", client, "http").target.ip == "172.31.40.3"
    by_ip = snap.target("10.96.0.50:80", "default", client, "http")
    assert by_ip.expected == ["bee", "web-a"]                          # the Service that owns the address


@pytest.mark.parametrize("text, kw, message", [
    ("svc/nosuch", {}, "no service 'nosuch' in namespace default"),
    ("svc/web:81", {}, r"port 81 is not a port of service web \(it has 80/TCP \(http\)\)"),
    ("svc/multi", {}, "has 2 ports"),
    ("svc/multi:dns", {}, "is UDP, --proto http sends TCP"),
    ("svc/headless", {}, "headless"),
    ("svc/ext", {}, "ExternalName"),
    ("svc/web", {"via": "nodeport"}, "has no NodePort"),
    ("svc/web", {"via": "loadbalancer"}, "no LoadBalancer address"),
    ("svc/web", {"via": "bogus"}, "--via"),
    ("svc/np", {"node": "worker2"}, "--node goes with --via nodeport"),
    ("svc/np", {"via": "nodeport", "node": "nosuch"}, "no node 'nosuch'"),
    ("pod/web-a", {}, "needs a port number"),
    ("pod/web-a:80", {"via": "clusterip"}, "go with a svc/NAME target"),
    ("web", {}, "give svc/NAME"),
])
def test_bad_targets(snap, text, kw, message):
    with pytest.raises(SpecError, match=message):
        snap.target(text, "default", snap.source("client", "default"), "http", **kw)


def test_external_hosts_cannot_reach_a_cluster_ip(snap):
    ext = snap.source("external", "default")
    with pytest.raises(SpecError, match="not reachable from an external host"):
        snap.target("svc/web", "default", ext, "http")
    with pytest.raises(SpecError, match="not routable from an external host"):
        snap.target("svc/np", "default", ext, "http", via="clusterip")


def test_scope_is_the_emulations_addresses_only(snap):
    scope = snap.scope()
    for ip in ("10.96.0.50", "172.31.40.200", "10.244.1.5", "172.31.40.3", "172.31.40.2"):
        scope.check(ip)
    for ip in ("172.31.40.1", "8.8.8.8", "10.96.0.51", "192.168.1.1"):     # root namespace, outside, unused
        with pytest.raises(SpecError, match="not an address of cluster t"):
            scope.check(ip)
    scope.check("127.0.0.1")
