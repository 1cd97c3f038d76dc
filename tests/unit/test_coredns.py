"""The built-in CoreDNS without sockets: Corefile parsing, the kubernetes plugin's answers
(ported from coredns plugin/kubernetes handler_test.go / parse.go / reverse.go, CoreDNS 1.11),
the cache, truncation, the image and its configMap file."""

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from netemu.agent.runtime.coredns.corefile import CorefileError, parse
from netemu.agent.runtime.coredns.handler import Cache, Handler
from netemu.agent.runtime.coredns.zone import NOT_OURS, ClusterZone
from netemu.agent.runtime.images import Builtin, Unsupported, resolve
from netemu.agent.runtime.volumes import configmap_file
from netemu.emulator import addons

KUBEADM = addons.manifest("coredns")[3]["data"]["Corefile"]


def svc(name, ip="10.96.0.50", ns="default", ports=(("http", 80, "TCP"),), **spec):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], **spec,
                     "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]}}


def eps(service, endpoints, ns="default", ports=(("http", 8080, "TCP"),), name=None):
    return {"metadata": {"name": name or f"{service}-x", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]}


def ep(ip, ready=True, hostname=None, pod=None):
    out = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        out["hostname"] = hostname
    if pod:
        out["targetRef"] = {"kind": "Pod", "name": pod}
    return out


@pytest.fixture
def zone():
    z = ClusterZone(parse(KUBEADM)[0].kubernetes, ("10.244.0.7",), clock=lambda: 1700000000)
    for ns in ("default", "kube-system"):
        z.set_namespace({"metadata": {"name": ns}})
    z.set_service(svc("web"))
    z.set_service(svc("hl", "None"))
    z.set_service(svc("ext", None, type="ExternalName", externalName="db.example.com"))
    z.set_service(svc("kube-dns", "10.96.0.10", "kube-system", (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"))))
    z.set_slice(eps("kube-dns", [ep("10.244.0.7")], "kube-system", (("dns", 53, "UDP"),)))
    z.set_slice(eps("hl", [ep("10.244.1.5"), ep("10.244.2.5", ready=False), ep("10.244.2.6", hostname="db-0")]))
    return z


def ask(zone, name, qtype):
    reply = zone.lookup(name, getattr(QTYPE, qtype))
    if reply is NOT_OURS:
        return NOT_OURS
    return (RCODE.get(reply.rcode), sorted(str(rr.rdata) for rr in reply.answer),
            [QTYPE.get(rr.rtype) for rr in reply.authority], sorted(str(rr.rdata) for rr in reply.additional))


def test_kubeadm_corefile_parses_with_every_plugin():
    (server,) = parse(KUBEADM)
    assert server.zones == ["."] and server.port == 53
    k = server.kubernetes
    assert k.zones == ["cluster.local.", "in-addr.arpa.", "ip6.arpa."] and k.pods == "insecure"
    assert k.fallthrough == ["in-addr.arpa.", "ip6.arpa."] and k.ttl == 5
    assert (server.health, server.lameduck, server.ready, server.prometheus) == (":8080", 5.0, ":8181", ":9153")
    assert server.cache == 30 and server.loadbalance and server.errors and server.forward[0] == "."


@pytest.mark.parametrize("text, words", [
    (".:53 {\n  kubernetes cluster.local\n  frobnicate\n}\n", "Corefile:3 - Error during parsing: Unknown directive 'frobnicate'"),
    (".:53 {\n  rewrite name a b\n}\n", "plugin 'rewrite' is not built into netemu's CoreDNS"),
    (".:53 {\n kubernetes cluster.local {\n  pods sometimes\n }\n}\n", "wrong value for pods: sometimes"),
    (".:53 {\n kubernetes cluster.local {\n  ttl 99999\n }\n}\n", "ttl must be in range [0, 3600]"),
    (".:53 {\n errors\n", "Unexpected EOF"),
])
def test_corefile_errors_say_where_and_what(text, words):
    with pytest.raises(CorefileError, match=None) as info:
        parse(text)
    assert words in str(info.value)


def test_service_a_records_and_nodata_nxdomain_carry_the_soa(zone):
    assert ask(zone, "web.default.svc.cluster.local.", "A") == ("NOERROR", ["10.96.0.50"], [], [])
    assert ask(zone, "WEB.Default.svc.cluster.local.", "A")[1] == ["10.96.0.50"]
    assert ask(zone, "web.default.svc.cluster.local.", "AAAA") == ("NOERROR", [], ["SOA"], [])
    assert ask(zone, "web.default.svc.cluster.local.", "MX") == ("NOERROR", [], ["SOA"], [])
    assert ask(zone, "nope.default.svc.cluster.local.", "A") == ("NXDOMAIN", [], ["SOA"], [])
    assert ask(zone, "web.nons.svc.cluster.local.", "A")[0] == "NXDOMAIN"        # no such namespace
    assert ask(zone, "default.svc.cluster.local.", "A") == ("NOERROR", [], ["SOA"], [])   # the namespace
    assert ask(zone, "svc.cluster.local.", "A")[0] == "NOERROR"
    assert ask(zone, "web.default.svk.cluster.local.", "A")[0] == "NXDOMAIN"     # neither svc nor pod
    assert ask(zone, "a.b.c.d.web.default.svc.cluster.local.", "A")[0] == "NXDOMAIN"


def test_headless_answers_ready_endpoints_and_endpoint_names(zone):
    assert ask(zone, "hl.default.svc.cluster.local.", "A")[1] == ["10.244.1.5", "10.244.2.6"]
    assert ask(zone, "db-0.hl.default.svc.cluster.local.", "A")[1] == ["10.244.2.6"]
    assert ask(zone, "10-244-1-5.hl.default.svc.cluster.local.", "A")[1] == ["10.244.1.5"]
    assert ask(zone, "10-244-2-5.hl.default.svc.cluster.local.", "A")[0] == "NXDOMAIN"   # not ready
    zone.set_slice(eps("hl", [ep("10.244.1.5", ready=False)]))
    assert ask(zone, "hl.default.svc.cluster.local.", "A")[0] == "NXDOMAIN"


def test_srv_for_named_ports_clusterip_and_headless(zone):
    rc, answer, _, extra = ask(zone, "_http._tcp.web.default.svc.cluster.local.", "SRV")
    assert (rc, answer, extra) == ("NOERROR", ["0 100 80 web.default.svc.cluster.local."], ["10.96.0.50"])
    rc, answer, _, extra = ask(zone, "_http._tcp.hl.default.svc.cluster.local.", "SRV")
    assert answer == ["0 50 8080 10-244-1-5.hl.default.svc.cluster.local.",
                      "0 50 8080 db-0.hl.default.svc.cluster.local."]
    assert extra == ["10.244.1.5", "10.244.2.6"]
    assert ask(zone, "_dns._udp.kube-dns.kube-system.svc.cluster.local.", "SRV")[1] == \
        ["0 100 53 kube-dns.kube-system.svc.cluster.local."]
    assert ask(zone, "_dns._tcp.kube-dns.kube-system.svc.cluster.local.", "SRV")[0] == "NXDOMAIN"
    assert ask(zone, "_nope._tcp.web.default.svc.cluster.local.", "SRV")[0] == "NXDOMAIN"
    # every port; 53/UDP and 53/TCP are one record (CoreDNS dedups target+port after weighing both)
    assert ask(zone, "kube-dns.kube-system.svc.cluster.local.", "SRV")[1] == \
        ["0 50 53 kube-dns.kube-system.svc.cluster.local."]


def test_external_name_is_a_cname(zone):
    assert ask(zone, "ext.default.svc.cluster.local.", "A")[1] == ["db.example.com."]
    assert ask(zone, "ext.default.svc.cluster.local.", "SRV") == ("NOERROR", [], ["SOA"], [])


def test_pod_records_by_mode(zone):
    assert ask(zone, "10-244-1-5.default.pod.cluster.local.", "A")[1] == ["10.244.1.5"]
    assert ask(zone, "10-244-1-5.nons.pod.cluster.local.", "A")[0] == "NXDOMAIN"
    assert ask(zone, "not-an-ip.default.pod.cluster.local.", "A")[0] == "NXDOMAIN"
    zone.config.pods = "verified"
    assert ask(zone, "10-244-1-5.default.pod.cluster.local.", "A")[0] == "NXDOMAIN"
    zone.set_pod(None, {"metadata": {"namespace": "default"}, "status": {"podIP": "10.244.1.5"}})
    assert ask(zone, "10-244-1-5.default.pod.cluster.local.", "A")[1] == ["10.244.1.5"]
    zone.config.pods = "disabled"
    assert ask(zone, "10-244-1-5.default.pod.cluster.local.", "A")[0] == "NXDOMAIN"


def test_reverse_for_cluster_ips_and_endpoints_falls_through_otherwise(zone):
    assert ask(zone, "50.0.96.10.in-addr.arpa.", "PTR")[1] == ["web.default.svc.cluster.local."]
    assert ask(zone, "6.2.244.10.in-addr.arpa.", "PTR")[1] == ["db-0.hl.default.svc.cluster.local."]
    assert ask(zone, "9.9.9.9.in-addr.arpa.", "PTR") is NOT_OURS
    assert ask(zone, "example.org.", "A") is NOT_OURS


def test_apex_soa_ns_and_dns_version(zone):
    assert ask(zone, "cluster.local.", "NS") == ("NOERROR", ["ns.dns.cluster.local."], [], ["10.96.0.10"])
    assert ask(zone, "ns.dns.cluster.local.", "A")[1] == ["10.96.0.10"]
    assert ask(zone, "dns-version.cluster.local.", "TXT")[1] == ['"1.1.0"']
    soa = zone.lookup("cluster.local.", QTYPE.SOA).answer[0].rdata
    assert (str(soa.mname), str(soa.rname), soa.times) == \
        ("ns.dns.cluster.local.", "hostmaster.cluster.local.", (1700000000, 7200, 1800, 86400, 5))


def test_deleting_a_service_makes_it_nxdomain(zone):
    zone.set_service(svc("web"), deleted=True)
    assert ask(zone, "web.default.svc.cluster.local.", "A")[0] == "NXDOMAIN"


def handler(corefile=KUBEADM):
    (server,) = parse(corefile)
    z = ClusterZone(server.kubernetes, ())
    z.set_namespace({"metadata": {"name": "default"}})
    return Handler(server, z), z


def test_handler_answers_forwards_to_servfail_and_rejects_garbage():
    h, z = handler()
    z.set_service(svc("web"))
    reply = DNSRecord.parse(h.answer(DNSRecord.question("web.default.svc.cluster.local", "A").pack(), "udp", ("10.244.1.3", 5)))
    assert reply.header.aa and reply.header.ra and str(reply.rr[0].rdata) == "10.96.0.50"
    out = DNSRecord.parse(h.answer(DNSRecord.question("example.org", "A").pack(), "udp", ("10.244.1.3", 5)))
    assert RCODE.get(out.header.rcode) == "SERVFAIL" and not out.header.aa
    assert h.answer(b"\x01\x02", "udp", ("1.2.3.4", 5)) is None
    assert RCODE.get(DNSRecord.parse(h.answer(b"\x00\x07" + b"\x01\x00" + b"\x00\x05" + b"\x00" * 6,
                                              "udp", ("1.2.3.4", 5))).header.rcode) == "FORMERR"


def test_big_answers_are_truncated_over_udp_unless_edns_allows():
    h, z = handler(KUBEADM.replace("loadbalance", ""))
    z.set_service(svc("hl", "None"))
    z.set_slice(eps("hl", [ep(f"10.244.{i // 200}.{i % 200 + 1}") for i in range(60)]))
    q = DNSRecord.question("hl.default.svc.cluster.local", "A")
    small = DNSRecord.parse(h.answer(q.pack(), "udp", ("1.2.3.4", 5)))
    assert small.header.tc and not small.rr
    assert len(DNSRecord.parse(h.answer(q.pack(), "tcp", ("1.2.3.4", 5))).rr) == 60
    q.add_ar(EDNS0(udp_len=4096))
    big = DNSRecord.parse(h.answer(q.pack(), "udp", ("1.2.3.4", 5)))
    assert not big.header.tc and len(big.rr) == 60


def test_cache_keeps_answers_their_ttl_counting_down_and_not_servfail():
    now = [100.0]
    cache = Cache(30, clock=lambda: now[0])
    h, z = handler()
    z.set_service(svc("web"))
    reply = z.lookup("web.default.svc.cluster.local.", QTYPE.A)
    cache.put(("k",), reply)
    now[0] += 3
    assert cache.get(("k",)).answer[0].ttl == 2
    now[0] += 2.5
    assert cache.get(("k",)) is None
    cache.put(("n",), z.lookup("x.default.svc.cluster.local.", QTYPE.A))
    assert cache.get(("n",)).rcode == RCODE.NXDOMAIN
    cache.put(("s",), h._forward("example.org.", QTYPE.A))
    assert cache.get(("s",)) is None


def test_coredns_image_and_its_configmap_corefile():
    dep = addons.manifest("coredns")[4]
    pod = {"metadata": {"namespace": "kube-system"}, "spec": dep["spec"]["template"]["spec"]}
    container = pod["spec"]["containers"][0]
    how = resolve(container)
    assert how == Builtin("coredns", {"conf": "/etc/coredns/Corefile", "dns.port": "53", "pidfile": ""})
    assert configmap_file(pod, container, "/etc/coredns/Corefile") == ("kube-system", "coredns", "Corefile")
    assert configmap_file(pod, container, "/etc/coredns/other") is None
    assert isinstance(resolve(dict(container, args=["-frob"])), Unsupported)


def test_lameduck_keeps_health_ok_and_fails_ready_as_coredns_1_11():
    """CoreDNS 1.11's health plugin is "always healthy" through the lameduck (the liveness probe
    must not restart a pod shutting down); the ready plugin stops answering OK."""
    from types import SimpleNamespace

    from netemu.agent.runtime.coredns.app import CoreDNS
    from netemu.agent.runtime.httpserve import Request
    app = CoreDNS(SimpleNamespace(), {})

    def codes():
        get = lambda path: Request("GET", path, "HTTP/1.1", {}, b"", ("10.244.0.9", 40000))  # noqa: E731
        return app._health(get("/health")).status, app._ready(get("/ready")).status
    assert codes() == (200, 200)
    app.lameduck_until = True
    assert codes() == (200, 503)
