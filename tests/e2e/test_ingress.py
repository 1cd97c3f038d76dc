"""The ingress controller on a real cluster (issue 14, part 2): `netemu up --addons
coredns,ingress-nginx` runs it as a pod behind a LoadBalancer Service, with the IngressClass
`netemu` as the default class, and it routes as ingress-nginx does:

- an Ingress without a class gets `netemu` (the API server's DefaultIngressClass admission) and
  its status.loadBalancer carries the controller Service's LoadBalancer IP;
- two rules, by host and by path, reach two Services, balanced over their endpoints (the
  controller's access log names each pod it sent to); longest path first; unknown hosts 404;
  a catch-all defaultBackend;
- a backend without endpoints answers 503 at once;
- TLS from an external client host with SNI: the Secret's certificate for its host (verified
  against it), the fake certificate for others; plain HTTP to a TLS host is redirected (308);
- from the internet through the cloud (`--edge`): the provider LB sends the controller's
  LoadBalancer IP only to the node running the controller (ETP Local, health-checked), and the
  controller sees (and logs) the client's own address;
- bad Ingresses are refused with upstream's words.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import time

import pytest

from netemu.agent.runtime.names import pod_netns_of
from netemu.agent.runtime.nsenter import socket_in_netns
from netemu.emulator import external
from netemu.testing.cluster import wait_until
from netemu.testing.edge import healthy_targets

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.kubectl,
              pytest.mark.netemu_cluster(nodes=2, args=["--addons", "coredns,ingress-nginx", "--edge"])]
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def deployment(name, replicas=2):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "agnhost", "image": AGNHOST, "args": ["netexec", "--http-port=8080"],
                                         "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                                                            "periodSeconds": 1}}]}}}}


def service(name, selector=None):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": selector or name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def ingress(name, rules, **spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"rules": rules, **spec}}


def path(p, svc, kind="Prefix"):
    return {"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": {"number": 80}}}}


def self_signed(host: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))


@pytest.fixture(scope="module")
def world(netemu_cluster, tmp_path_factory):
    c = netemu_cluster
    cert, key = self_signed("alpha.example.com")
    tmp = tmp_path_factory.mktemp("tls")
    (tmp / "tls.crt").write_bytes(cert)
    (tmp / "tls.key").write_bytes(key)
    c.kubectl("create", "secret", "tls", "alpha-tls", f"--cert={tmp / 'tls.crt'}", f"--key={tmp / 'tls.key'}")
    c.apply(deployment("alpha"), deployment("beta"), service("alpha"), service("beta"), service("empty", "nothing"),
            ingress("by-host", [{"host": "alpha.example.com", "http": {"paths": [path("/", "alpha")]}}],
                    tls=[{"hosts": ["alpha.example.com"], "secretName": "alpha-tls"}]),
            ingress("by-path", [{"host": "shop.example.com", "http": {"paths": [
                path("/", "alpha"), path("/beta", "beta"), path("/empty", "empty", "Exact")]}}]),
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
             "spec": {"terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "c", "image": AGNHOST, "args": ["pause"]}]}})
    c.wait_ready("app=alpha", 2)
    c.wait_ready("app=beta", 2)
    wait_until("client running", lambda: c.get("pod", "client")["status"].get("phase") == "Running", 60)
    svc = c.get("svc", "-n", "ingress-nginx", "ingress-nginx-controller")
    controller = c.get("pods", "-n", "ingress-nginx")["items"][0]
    ext = external.ensure(str(c.state_dir))
    node_ip = next(a["address"] for a in c.get("node", controller["spec"]["nodeName"])["status"]["addresses"]
                   if a["type"] == "InternalIP")
    return {"client": pod_netns_of(c.get("pod", "client")), "vip": svc["spec"]["clusterIP"],
            "lb": svc["status"]["loadBalancer"]["ingress"][0]["ip"], "controller": controller,
            "ext": ext, "node_ip": node_ip, "cert": tmp / "tls.crt", "edge": c.doc()["edge"],
            "ports": {p["name"]: p["nodePort"] for p in svc["spec"]["ports"]}}


def curl(netns, *args):
    out = subprocess.run(["ip", "netns", "exec", netns, "curl", "-s", "--max-time", "5", *args],
                         capture_output=True, text=True, timeout=30)
    return out.stdout


def http(world, host, target, scheme="http"):
    """(status, body) of one GET through the controller's ClusterIP, from the client pod (https:
    SNI for ``host``, its certificate verified)."""
    if scheme == "https":
        args = ["--cacert", str(world["cert"]), "--resolve", f"{host}:443:{world['vip']}", f"https://{host}{target}"]
    else:
        args = ["-H", f"Host: {host}", f"http://{world['vip']}{target}"]
    out = curl(world["client"], "-o", "-", "-w", "\n%{http_code}", *args)
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


def pod_names(cluster, app):
    return sorted(p["metadata"]["name"] for p in cluster.ready_pods(f"app={app}"))


def test_the_controller_runs_with_the_default_class_and_fills_ingress_status(netemu_cluster, world):
    c = netemu_cluster
    cls = c.get("ingressclass", "netemu")
    assert cls["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"
    assert cls["spec"]["controller"] == "k8s.io/ingress-nginx"
    for name in ("by-host", "by-path"):
        ing = wait_until(f"{name} status", lambda: (lambda i: i if (i.get("status") or {}).get("loadBalancer", {})
                                                    .get("ingress") else None)(c.get("ingress", name)), 30)
        assert ing["spec"]["ingressClassName"] == "netemu"
        assert ing["status"]["loadBalancer"]["ingress"] == [{"ip": world["lb"]}]


def test_rules_by_host_and_by_path_reach_two_services_over_their_endpoints(netemu_cluster, world):
    c = netemu_cluster
    seen = {http(world, "alpha.example.com", "/hostname", "https")[1] for _ in range(8)}
    assert sorted(seen) == pod_names(c, "alpha")
    assert http(world, "shop.example.com", "/hostname")[1] in pod_names(c, "alpha")
    beta = {http(world, "shop.example.com", "/beta/x")[0] for _ in range(2)}
    assert beta == {200}                                 # agnhost answers "NOW: ..." on unknown paths
    beta_ips = {p["status"]["podIP"] for p in c.ready_pods("app=beta")}
    wait_until("the access log naming a beta pod", lambda: any(       # the log is written every 0.2 s
        f"[default-beta-80] [] {ip}:8080" in c.kubectl("logs", "-n", "ingress-nginx",
                                                       world["controller"]["metadata"]["name"]).stdout
        for ip in beta_ips), 10)
    assert http(world, "nobody.example.com", "/")[0] == 404
    clientip = http(world, "shop.example.com", "/clientip")[1]
    assert clientip.split(":")[0] == world["controller"]["status"]["podIP"]


def test_a_backend_without_endpoints_is_503_at_once(world):
    start = time.monotonic()
    assert http(world, "shop.example.com", "/empty")[0] == 503
    assert time.monotonic() - start < 2
    assert http(world, "shop.example.com", "/empty/more")[0] == 200     # Exact: falls to "/" (alpha)


def test_a_catch_all_default_backend_takes_unknown_hosts(netemu_cluster, world):
    c = netemu_cluster
    c.apply({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "catch-all"},
             "spec": {"defaultBackend": {"service": {"name": "beta", "port": {"number": 80}}}}})
    wait_until("catch-all routed", lambda: http(world, "nobody.example.com", "/hostname")[1] in pod_names(c, "beta"), 20)
    c.kubectl("delete", "ingress", "catch-all")


def tls_peer(world, server_name: str | None, verify: bool):
    """The certificate the controller shows an external client (TLS to node IP : https NodePort)."""
    sock = socket_in_netns(world["ext"].netns, socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(True)
    sock.settimeout(5)
    ctx = ssl.create_default_context(cafile=str(world["cert"])) if verify else ssl._create_unverified_context()
    if not verify:
        ctx.check_hostname = False
    with ctx.wrap_socket(sock, server_hostname=server_name) as tls:
        tls.connect((world["node_ip"], world["ports"]["https"]))
        der = tls.getpeercert(binary_form=True)
        tls.sendall(f"GET /hostname HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
    from cryptography import x509
    return x509.load_der_x509_certificate(der).subject.rfc4514_string(), data.decode(errors="replace")


def test_tls_with_sni_from_an_external_client(netemu_cluster, world):
    subject, answer = tls_peer(world, "alpha.example.com", verify=True)
    assert subject == "CN=alpha.example.com"
    assert answer.startswith("HTTP/1.1 200") and answer.rsplit("\r\n\r\n", 1)[1] in pod_names(netemu_cluster, "alpha")
    subject, _ = tls_peer(world, "shop.example.com", verify=False)
    assert "Kubernetes Ingress Controller Fake Certificate" in subject
    port = world["ports"]["http"]
    redirect = curl(world["ext"].netns, "-i", "-H", "Host: alpha.example.com",
                    f"http://{world['node_ip']}:{port}/hostname")
    assert redirect.startswith("HTTP/1.1 308") and "Location: https://alpha.example.com/hostname" in redirect


def test_bad_ingresses_are_refused_with_upstreams_words(netemu_cluster):
    bad = ingress("bad", [{"host": "10.0.0.1", "http": {"paths": [
        {"path": "relative", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {}}}},
        {"path": "/x", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}])
    import yaml
    out = netemu_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert out.returncode != 0
    for words in ('spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address',
                  'spec.rules[0].http.paths[0].path: Invalid value: "relative": must be an absolute path',
                  "spec.rules[0].http.paths[0].backend: Required value: port name or number is required",
                  "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified"):
        assert words in out.stderr, out.stderr


def test_an_internet_client_reaches_the_ingress_through_the_provider_lb(netemu_cluster, world):
    """The whole cloud path: internet client -> LB IP:443 (the provider LB, ETP Local: only the
    controller's node passes the health check) -> the controller (TLS by SNI) -> a backend."""
    c = netemu_cluster
    controller = world["controller"]
    key = "ingress-nginx/ingress-nginx-controller"
    wait_until("the LB sends the controller's traffic to its node only",
               lambda: healthy_targets(world["edge"], key) == {controller["spec"]["nodeName"]}, 30)
    ext = world["ext"]
    assert ext.ip.startswith("203.0.113.")                               # an internet client
    for _ in range(4):
        out = curl(ext.netns, "-o", "-", "-w", "\n%{http_code}", "--cacert", str(world["cert"]),
                   "--resolve", f"alpha.example.com:443:{world['lb']}", "https://alpha.example.com/hostname")
        body, _, code = out.rpartition("\n")
        assert code == "200" and body in pod_names(c, "alpha"), out
    # ingress-nginx's access log starts with $remote_addr: the client's own address, kept by the LB
    wait_until("the access log naming the internet client", lambda: f'{ext.ip} - - "GET /hostname' in c.kubectl(
        "logs", "-n", "ingress-nginx", controller["metadata"]["name"]).stdout, 10)
