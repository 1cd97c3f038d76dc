"""The IPVS planner beyond upstream's cases: the incremental cache equals a plan from scratch after
any sequence of changes and its Delta carries exactly the difference; the save/restore spellings
of ipsets and ``ipvsadm -Sn``; ``netemu proxy render --mode ipvs``."""

from __future__ import annotations

import random

import pytest

from netemu.agent.proxy.ipvs import ipvsadm, sets as S
from netemu.agent.proxy.ipvs.cache import PlanCache, plan
from netemu.agent.proxy.ipvs.planner import node_context
from netemu.agent.proxy.ipvs.state import FLAG_PERSISTENT, RealServer, VirtualServer, VSKey
from netemu.agent.proxy.model import (EndpointInfo, NodeInfo, ProxyConfig, ServiceName, ServicePortInfo,
                                      ServicePortName)
from netemu.cli.main import main

NODE = NodeInfo("n1", ("172.18.0.2",), "10.244.0.0/16")
CONFIG = ProxyConfig()
CTX = node_context(NODE, CONFIG, ("172.18.0.2", "10.244.0.1"))


def random_world(rng: random.Random, n: int):
    services, endpoints = {}, {}
    for i in range(n):
        spn = ServicePortName("ns", f"s{i}", "p", rng.choice(["TCP", "UDP"]))
        kind = rng.choice(["ClusterIP", "NodePort", "LB", "ext"])
        info = ServicePortInfo(
            name=spn, cluster_ip=f"10.96.{i // 250}.{i % 250 + 1}", port=80 + rng.randrange(3),
            protocol=spn.protocol, node_port=30000 + i if kind in ("NodePort", "LB") else 0,
            external_ips=(f"192.0.2.{rng.randrange(1, 4)}",) if kind == "ext" else (),
            load_balancer_vips=(f"172.18.255.{i % 250 + 1}",) if kind == "LB" else (),
            load_balancer_source_ranges=("203.0.113.0/24",) if kind == "LB" and rng.random() < 0.5 else (),
            external_policy_local=kind != "ClusterIP" and rng.random() < 0.3,
            session_affinity=rng.choice(["None", "ClientIP"]))
        services[spn] = info
        endpoints[spn] = tuple(EndpointInfo(f"10.244.{rng.randrange(3)}.{j + 2}", 8080, ready=rng.random() < 0.8,
                                            is_local=rng.random() < 0.4)
                               for j in range(rng.randrange(0, 4)))
    return services, endpoints


def apply_delta(before, delta, after_plan):
    """The previous plan with a Delta applied: what the kernel holds after a partial sync."""
    services, reals = dict(before.services), dict(before.reals)
    for key, svc in delta.services.items():
        if svc is None:
            services.pop(key, None)
            reals.pop(key, None)
        else:
            services[key], reals[key] = svc.server, svc.reals
    ipsets = {name: set(entries) for name, entries in before.ipsets.items()}
    for name, entries in delta.added.items():
        ipsets[name] |= entries
    for name, entries in delta.removed.items():
        ipsets[name] -= entries
    bind = (set(before.bind) | delta.bind_added) - delta.bind_removed
    ipsets[S.IPVS_IPS] = set(bind)
    rules = delta.iptables if delta.iptables is not None else before.iptables
    return services, reals, ipsets, bind, rules


class NoScan(dict):
    """A Service map a one-Service refresh may look up but not walk (that would cost O(cluster))."""

    def __iter__(self):
        raise AssertionError("the whole Service map was scanned")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tracker_ports", [False, True])
def test_partial_refreshes_equal_a_plan_from_scratch_and_deltas_carry_the_difference(seed, tracker_ports):
    """With ``ports`` (the tracker's service_ports: each updated Service's ports before and
    after), a refresh finds the changed ports without walking the map."""
    rng = random.Random(seed)
    services, endpoints = random_world(rng, 40)
    cache = PlanCache()
    cache.refresh(services, endpoints, CTX, CONFIG)
    for _ in range(15):
        before = cache.plan()
        previous = set(services)
        changed = set()
        for _ in range(rng.randrange(1, 4)):
            spn = rng.choice(sorted(services))
            changed.add(spn.service)
            roll = rng.random()
            if roll < 0.3:
                del services[spn]
            elif roll < 0.6:
                endpoints[spn] = endpoints.get(spn, ())[1:] + (EndpointInfo(f"10.244.9.{rng.randrange(250)}", 8080),)
            else:
                new, new_eps = random_world(rng, 45)
                key = sorted(new)[rng.randrange(len(new))]
                if roll < 0.75:       # a port the Service did not have
                    spn = ServicePortName(spn.namespace, spn.name, f"q{rng.randrange(99)}", spn.protocol)
                services[spn] = new[key].__class__(**{**{f: getattr(new[key], f) for f in new[key].__slots__},
                                                      "name": spn, "protocol": spn.protocol})
                endpoints[spn] = new_eps[key]
        if tracker_ports:
            ports = {name: {spn for spn in previous | set(services) if spn.service == name} for name in changed}
            delta = cache.refresh(NoScan(services), endpoints, CTX, CONFIG, changed, ports=ports)
        else:
            delta = cache.refresh(services, endpoints, CTX, CONFIG, changed)
        assert not delta.rebuilt
        want = plan(services, endpoints, CTX, CONFIG)
        got = cache.plan()
        assert (got.services, got.reals, got.bind, got.ipsets, got.iptables, got.no_local) == \
               (want.services, want.reals, want.bind, want.ipsets, want.iptables, want.no_local)
        s, r, ipsets, bind, rules = apply_delta(before, delta, want)
        assert (s, r, bind, rules) == (want.services, want.reals, set(want.bind), want.iptables)
        assert ipsets == {name: set(e) for name, e in want.ipsets.items()}


def test_an_unchanged_refresh_is_an_empty_delta_and_a_new_context_rebuilds():
    services, endpoints = random_world(random.Random(7), 10)
    cache = PlanCache()
    cache.refresh(services, endpoints, CTX, CONFIG)
    assert cache.refresh(services, endpoints, CTX, CONFIG, {ServiceName("ns", "s3")}).empty
    other = node_context(NODE, CONFIG, ("172.18.0.9",))
    assert cache.refresh(services, endpoints, other, CONFIG, {ServiceName("ns", "s3")}).rebuilt


def test_two_ports_wanting_one_virtual_server_the_first_in_order_wins_until_it_goes():
    a = ServicePortInfo(ServicePortName("a", "x", "p", "TCP"), "10.96.0.1", 80, external_ips=("192.0.2.1",))
    b = ServicePortInfo(ServicePortName("b", "x", "p", "TCP"), "10.96.0.2", 80, external_ips=("192.0.2.1",),
                        session_affinity="ClientIP")
    eps = {a.name: (EndpointInfo("10.244.0.5", 80),), b.name: (EndpointInfo("10.244.0.6", 80),)}
    cache = PlanCache()
    cache.refresh({a.name: a, b.name: b}, eps, CTX, CONFIG)
    key = VSKey("TCP", "192.0.2.1", 80)
    assert cache.plan().reals[key] == (RealServer("10.244.0.5", 80),)
    delta = cache.refresh({b.name: b}, eps, CTX, CONFIG, {ServiceName("a", "x")})
    assert delta.services[key].server.flags == FLAG_PERSISTENT
    assert cache.plan().reals[key] == (RealServer("10.244.0.6", 80),)


# ---- spellings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("set_type, ours, theirs", [
    (S.HASH_IP_PORT, "10.96.0.1,tcp:443", "10.96.0.1,tcp:443"),
    (S.HASH_IP_PORT_NET, "1.2.3.4,tcp:80,10.0.0.0/8", "1.2.3.4,tcp:80,10.0.0.0/8"),
    (S.HASH_IP_PORT_NET, "1.2.3.4,tcp:80,5.6.7.8/32", "1.2.3.4,tcp:80,5.6.7.8"),
    (S.HASH_IP_PORT, "2001:0db8::0001,sctp:3001", "2001:db8::1,sctp:3001"),
    (S.BITMAP_PORT, "30080", "30080"),
])
def test_our_entries_and_ipset_saves_spelling_compare_equal(set_type, ours, theirs):
    assert S.canonical(set_type, ours) == S.canonical(set_type, theirs)


def test_ipset_save_text_reads_back():
    text = S.save_text({S.CLUSTER_IP: {"10.96.0.1,tcp:443"}, S.NODE_PORT_TCP: {"30080", "30001"}}, False)
    assert "create KUBE-NODE-PORT-TCP bitmap:port range 0-65535 comment\nadd KUBE-NODE-PORT-TCP 30001\n" \
           "add KUBE-NODE-PORT-TCP 30080" in text
    types, members = S.parse_save(text + "create other hash:ip family inet\nadd other 1.1.1.1\n")
    assert types[S.CLUSTER_IP] == "hash:ip,port" and members[S.NODE_PORT_TCP] == {"30001", "30080"}


def test_ipv6_sets_are_named_kube_6_within_31_characters():
    assert S.name_for(S.NODE_PORT_LOCAL_SCTP, True) == "KUBE-6-NODE-PORT-LOCAL-SCTP-HAS"
    assert S.name_for(S.CLUSTER_IP, True) == "KUBE-6-CLUSTER-IP" and S.name_for(S.CLUSTER_IP, False) == S.CLUSTER_IP


def test_ipvsadm_form_reads_back():
    key6 = VSKey("UDP", "fd00::10", 53)
    key4 = VSKey("SCTP", "10.96.0.9", 9)
    services = {key6: VirtualServer(key6, "wrr"), key4: VirtualServer(key4, "rr", FLAG_PERSISTENT, 60)}
    reals = {key6: (RealServer("fd00::2", 5353, 3),), key4: (RealServer("10.244.0.2", 99, 0),)}
    text = ipvsadm.save_text(services, reals)
    assert text.splitlines() == ["-A --sctp-service 10.96.0.9:9 -s rr -p 60",
                                 "-a --sctp-service 10.96.0.9:9 -r 10.244.0.2:99 -m -w 0",
                                 "-A -u [fd00::10]:53 -s wrr", "-a -u [fd00::10]:53 -r [fd00::2]:5353 -m -w 3"]
    assert ipvsadm.parse(text) == (services, {k: list(v) for k, v in reals.items()})
    with pytest.raises(ipvsadm.IpvsadmError, match="line 1"):
        ipvsadm.parse("-A -t 10.0.0.1 -s rr")


# ---- netemu proxy render --mode ipvs ------------------------------------------------------------

MANIFEST = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.50
  ports: [{name: http, port: 80, protocol: TCP, nodePort: 30080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [10.244.1.5], nodeName: worker}, {addresses: [10.244.2.7]}]
"""


def test_proxy_render_prints_ipvsadm_then_ipset_then_iptables(tmp_path, capsys):
    path = tmp_path / "web.yaml"
    path.write_text(MANIFEST)
    rc = main(["proxy", "render", "--mode", "ipvs", "--node", "worker", "--node-ip", "172.18.0.3",
               "--node-ip", "192.168.9.9", "--nodeport-addresses", "172.18.0.0/16", "--ipvs-scheduler", "wrr",
               "-f", str(path)])
    out, err = capsys.readouterr()
    assert rc == 0
    lines = out.splitlines()
    assert lines[:6] == ["-A -t 10.96.0.50:80 -s wrr",
                         "-a -t 10.96.0.50:80 -r 10.244.1.5:8080 -m -w 1",
                         "-a -t 10.96.0.50:80 -r 10.244.2.7:8080 -m -w 1",
                         "-A -t 172.18.0.3:30080 -s wrr",
                         "-a -t 172.18.0.3:30080 -r 10.244.1.5:8080 -m -w 1",
                         "-a -t 172.18.0.3:30080 -r 10.244.2.7:8080 -m -w 1"]
    assert lines[6].startswith("create KUBE-LOOP-BACK ") and "add KUBE-NODE-PORT-TCP 30080" in lines
    assert lines.index("*nat") > lines.index("add KUBE-IPVS-IPS 10.96.0.50")
    assert "2 virtual servers, 4 real servers" in err


def test_proxy_render_refuses_a_bad_nodeport_cidr_and_a_scheduler_of_no_kernel(tmp_path, capsys):
    path = tmp_path / "web.yaml"
    path.write_text(MANIFEST)
    base = ["proxy", "render", "--mode", "ipvs", "--node", "w", "-f", str(path)]
    assert main([*base, "--nodeport-addresses", "10.0.0.0/33"]) == 2
    assert "not a CIDR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--ipvs-scheduler", "fastest"])
