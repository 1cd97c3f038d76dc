"""Service type changes and node ports (test/e2e/network/service.go, kubernetes v1.32).

ExternalName <-> ClusterIP <-> NodePort: each change keeps or drops exactly what upstream's
registry strategy does (dropTypeDependentFields), and the node's rules follow: a Service that
became ExternalName stops answering on its old ClusterIP and node port, and its name in the
cluster DNS becomes a CNAME to the target.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.service_behaviours.checks import check_service_reachability
from tests.e2e.service_behaviours.jig import eventually
from tests.e2e.service_behaviours.traffic import run, wait_unreachable

pytestmark = [pytest.mark.root, pytest.mark.kubectl, pytest.mark.slow]

DNS_IP = "10.96.0.10"
HTTP_9376 = [{"port": 80, "name": "http", "protocol": "TCP", "targetPort": 9376}]


def _external_name_service(jig, name: str, target: str = "foo.example.com"):
    """jig.CreateExternalNameService: type ExternalName, no selector, no ports."""
    svc = jig.service(name, None, None, "ExternalName", externalName=target)
    del svc["spec"]["ports"]
    return jig.create_service(svc)


def _service_pods(jig, name: str, count: int = 2):
    """jig.CreateServicePods: netexec on 9376 (TCP and UDP) behind the jig's selector."""
    return jig.replicas(name, count, {"testid": name}, ["netexec", "--http-port=9376", "--udp-port=9376"])


def _to_type(jig, name: str, type_: str):
    def change(s):
        s["spec"].update(type=type_, ports=HTTP_9376, selector={"testid": name})
        s["spec"].pop("externalName", None)
    return jig.update_service(name, change)


def _resolves_to_cname(jig, client, name: str, target: str) -> None:
    """checkExternalServiceReachability: the Service's name is a CNAME to its externalName."""
    fqdn = f"{name}.{jig.ns}.svc.cluster.local"
    def cname():
        got = run(client, [{"proto": "dns", "ip": DNS_IP, "port": 53, "name": fqdn, "timeout": 1}])[0].get("ok")
        return got if got and f"CNAME {target}" in got.splitlines() else None
    eventually(f"{fqdn} resolving to a CNAME to {target} through {DNS_IP}", cname, 30)


def _external_target(jig) -> str:
    """createAndGetExternalServiceFQDN: a working Service whose FQDN the ExternalName points at."""
    jig.create_service(jig.service("externalsvc", {"name": "externalsvc"}, [{"port": 80, "targetPort": 9376}]))
    jig.replicas("externalsvc", 2, {"name": "externalsvc"})
    return f"externalsvc.{jig.ns}.svc.cluster.local"


def test_should_be_able_to_change_the_type_from_externalname_to_clusterip(jig, clients):
    """[sig-network] Services should be able to change the type from ExternalName to ClusterIP [Conformance]

    Upstream: service.go. The update allocates a ClusterIP, which forwards to the new pods.
    """
    _external_name_service(jig, "externalname-service")
    svc = _to_type(jig, "externalname-service", "ClusterIP")
    assert svc["spec"]["clusterIP"] and "externalName" not in svc["spec"]
    _service_pods(jig, "externalname-service")
    check_service_reachability(jig, svc, clients[jig.workers()[0]])


def test_should_be_able_to_change_the_type_from_externalname_to_nodeport(jig, clients):
    """[sig-network] Services should be able to change the type from ExternalName to NodePort [Conformance]

    Upstream: service.go. A ClusterIP and a node port are allocated; both answer on every node.
    """
    _external_name_service(jig, "externalname-service")
    svc = _to_type(jig, "externalname-service", "NodePort")
    assert svc["spec"]["clusterIP"] and svc["spec"]["ports"][0]["nodePort"]
    _service_pods(jig, "externalname-service")
    check_service_reachability(jig, svc, clients[jig.workers()[1]])


def _to_external_name(jig, clients, name: str, type_: str) -> None:
    svc = jig.create_service(jig.service(name, {"testid": name}, HTTP_9376, type_))
    _service_pods(jig, name)
    client = clients[jig.workers()[-1]]
    check_service_reachability(jig, svc, client)
    target = _external_target(jig)
    changed = jig.update_service(name, lambda s: s["spec"].update(type="ExternalName", externalName=target))
    assert "clusterIP" not in changed["spec"], "Spec.ClusterIP was not cleared"
    assert all("nodePort" not in p for p in changed["spec"]["ports"]), "the node port was not released"
    # what kube-proxy must do: the old ClusterIP and node port stop forwarding
    wait_unreachable(client, svc["spec"]["clusterIP"], 80)
    if type_ == "NodePort":
        wait_unreachable(client, jig.node_ip(jig.workers()[0]), svc["spec"]["ports"][0]["nodePort"])
    _resolves_to_cname(jig, client, name, target)


def test_should_be_able_to_change_the_type_from_clusterip_to_externalname(jig, clients):
    """[sig-network] Services should be able to change the type from ClusterIP to ExternalName [Conformance]

    Upstream: service.go. The ClusterIP is cleared and stops forwarding; the name resolves to
    the externalName (a CNAME) in the cluster DNS.
    """
    _to_external_name(jig, clients, "clusterip-service", "ClusterIP")


def test_should_be_able_to_change_the_type_from_nodeport_to_externalname(jig, clients):
    """[sig-network] Services should be able to change the type from NodePort to ExternalName [Conformance]

    Upstream: service.go. ClusterIP cleared, node port released, neither forwards any more;
    the name resolves to the externalName (a CNAME) in the cluster DNS.
    """
    _to_external_name(jig, clients, "nodeport-service", "NodePort")


def test_should_be_able_to_update_service_type_to_nodeport_listening_on_same_port_number_but_different_protocols(
        jig, clients):
    """[sig-network] Services should be able to update service type to NodePort listening on same port number but different protocols

    Upstream: service.go. ClusterIP (TCP) -> NodePort (TCP) -> NodePort with TCP and UDP on
    port 80: two node ports allocated, both protocols answer everywhere.
    """
    name = "nodeport-update-service"
    jig.create_service(jig.service(name, {"testid": name}, [{"port": 80, "targetPort": 9376}]))
    tcp = {"name": "tcp-port", "port": 80, "protocol": "TCP", "targetPort": 9376}
    udp = {"name": "udp-port", "port": 80, "protocol": "UDP", "targetPort": 9376}
    svc = jig.update_service(name, lambda s: s["spec"].update(type="NodePort", ports=[tcp]))
    _service_pods(jig, name)
    client = clients[jig.workers()[0]]
    check_service_reachability(jig, svc, client)
    svc = jig.update_service(name, lambda s: s["spec"].update(type="NodePort", ports=[tcp, udp]))
    check_service_reachability(jig, svc, client)
    assert len(svc["spec"]["ports"]) == 2 and all(p.get("nodePort") for p in svc["spec"]["ports"]), svc["spec"]


def _kubectl_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, f"expected the API server to refuse: {proc.stdout}"
    return proc.stderr


def test_should_prevent_nodeport_collisions(jig):
    """[sig-network] Services should prevent NodePort collisions

    Upstream: service.go. A second Service asking for a node port in use is refused with
    "port is already allocated"; once the first is deleted, the same request succeeds.
    """
    first = jig.create_service(jig.service("nodeport-collision-1", {"a": "b"}, type_="NodePort"))
    port = first["spec"]["ports"][0]["nodePort"]
    second = jig.service("nodeport-collision-2", {"a": "b"}, [{"name": "http", "port": 80, "nodePort": port}],
                         "NodePort")
    err = _kubectl_error(jig.create(second, check=False))
    assert f"{port}" in err and "port is already allocated" in err, err
    jig.delete("service", "nodeport-collision-1")
    jig.create(second)


def test_should_check_nodeport_out_of_range(jig):
    """[sig-network] Services should check NodePort out-of-range

    Upstream: service.go. A node port outside 30000-32767 is refused on update and on create
    with "provided port is not in the valid range".
    """
    svc = jig.create_service(jig.service("nodeport-range-test", {"a": "b"}, type_="NodePort"))
    assert 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767
    bad = 2000
    svc["spec"]["ports"][0]["nodePort"] = bad
    err = _kubectl_error(jig.kubectl("replace", "-f", "-", input=json.dumps(svc), check=False))
    assert f"{bad}" in err and "port is not in the valid range" in err, err
    jig.delete("service", "nodeport-range-test")
    fresh = jig.service("nodeport-range-test", {"a": "b"}, [{"name": "http", "port": 80, "nodePort": bad}], "NodePort")
    err = _kubectl_error(jig.create(fresh, check=False))
    assert f"{bad}" in err and "port is not in the valid range" in err, err


def test_should_release_nodeports_on_delete(jig):
    """[sig-network] Services should release NodePorts on delete

    Upstream: service.go. After the delete nothing on a node listens on the port (kube-proxy
    holds no socket) and a new Service may ask for the same node port.
    """
    svc = jig.create_service(jig.service("nodeport-reuse", {"a": "b"}, type_="NodePort"))
    port = svc["spec"]["ports"][0]["nodePort"]
    jig.delete("service", "nodeport-reuse")
    node = jig.node_client(jig.workers()[0])

    def not_listening():
        out = subprocess.run(["ip", "netns", "exec", node.netns, "ss", "-Hant46", f"sport = :{port}"],
                             capture_output=True, text=True, check=True).stdout
        return "LISTEN" not in out
    eventually(f"node port {port} not in use on {node.node}", not_listening, 30)
    again = jig.service("nodeport-reuse", {"a": "b"}, [{"name": "http", "port": 80, "nodePort": port}], "NodePort")
    assert jig.create_service(again)["spec"]["ports"][0]["nodePort"] == port
