"""The IPVS applier and proxier against a fake kernel (netemu/testing/ipvs_fake.py): a sync sends
only what differs -- adds, removes, weight changes -- and nothing when nothing changed; removed
TCP real servers drain (weight 0, deleted when idle or out of time), UDP ones go at once; a full
sync cleans what a previous run left (upstream's cleanLegacyService, excludeCIDRs, the weight
reset of Test_syncEndpoint_updateWeightsOnRestart); a failed sync leaves the next one full."""

from __future__ import annotations

import pytest

from netemu.agent.proxy.ipvs import sets as S
from netemu.agent.proxy.ipvs.apply import ApplyError, sysctls
from netemu.agent.proxy.ipvs.proxier import IpvsProxier, make_proxier
from netemu.agent.proxy.ipvs.state import FLAG_PERSISTENT, RealServer, VirtualServer, VSKey
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.testing.ipvs_fake import FakeIpvsKernel, FakeNodeExec

NODE = NodeInfo("node1", ("172.18.0.2",), "10.244.0.0/16")
CIP = VSKey("TCP", "10.96.0.10", 80)
NP = VSKey("TCP", "172.18.0.2", 30080)


def service(name="web", ip="10.96.0.10", proto="TCP", node_port=30080, **spec):
    port = {"name": "http", "port": 80, "protocol": proto} | ({"nodePort": node_port} if node_port else {})
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": "1"},
            "spec": {"clusterIP": ip, "type": "NodePort" if node_port else "ClusterIP", "ports": [port], **spec}}


def endpoints(name="web", ips=("10.244.1.10",), proto="TCP", local=()):
    return {"metadata": {"name": f"{name}-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": proto}],
            "endpoints": [{"addresses": [ip], "nodeName": "node1" if ip in local else "node2"} for ip in ips]}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def world():
    kernel, exec_, clock = FakeIpvsKernel(), FakeNodeExec(), Clock()
    proxier = IpvsProxier(NODE, ProxyConfig(), kernel=kernel, exec_=exec_, clock=clock, graceful_timeout=300)
    return proxier, kernel, exec_, clock


def sent(kernel, exec_, since):
    """What the syncs after ``since`` (a mark()) sent: IPVS ops, ipset lines, restores, addresses."""
    batches, restores, address_changes, calls = since
    ops = [str(op) for b in kernel.batches[batches:] for op in b]
    ipset = [line for argv, text in exec_.calls[calls:] if argv[:3] == ["ipset", "-exist", "restore"]
             for line in text.splitlines()]
    return ops, ipset, exec_.restores[restores:], kernel.address_changes[address_changes:]


def mark(kernel, exec_):
    return len(kernel.batches), len(exec_.restores), len(kernel.address_changes), len(exec_.calls)


def test_first_sync_creates_everything_then_an_unchanged_sync_sends_nothing(world):
    proxier, kernel, exec_, _ = world
    proxier.load([service()], [endpoints(local=("10.244.1.10",))])
    result = proxier.sync()
    assert result.ok and result.full
    assert kernel.dummy and kernel.dummy_addrs == {"10.96.0.10"}
    assert kernel.weights() == {"10.96.0.10:80/TCP": {"10.244.1.10:8080": 1},
                                "172.18.0.2:30080/TCP": {"10.244.1.10:8080": 1},
                                "10.244.0.1:30080/TCP": {"10.244.1.10:8080": 1}}
    assert exec_.sets[S.CLUSTER_IP] == {"10.96.0.10,tcp:80"} and exec_.sets[S.NODE_PORT_TCP] == {"30080"}
    assert exec_.sets[S.LOOP_BACK] == {"10.244.1.10,tcp:8080,10.244.1.10"}
    assert len(exec_.restores) == 1 and "-I PREROUTING" in exec_.restores[0]
    assert exec_.sysctls == sysctls(kernel_release=None)
    before = mark(kernel, exec_)
    proxier.on_service_update(service(), service() | {"metadata": service()["metadata"] | {"resourceVersion": "2"}})
    proxier.need_full_sync = False
    assert proxier.sync().ok
    assert sent(kernel, exec_, before) == ([], [], [], [])


def test_an_added_endpoint_is_one_real_server_per_virtual_server_and_its_set_entry(world):
    proxier, kernel, exec_, _ = world
    one = endpoints(local=("10.244.1.10",))
    proxier.load([service()], [one])
    proxier.sync()
    before = mark(kernel, exec_)
    proxier.on_slice_update(one, endpoints(ips=("10.244.1.10", "10.244.0.7"), local=("10.244.1.10", "10.244.0.7")))
    result = proxier.sync()
    assert result.ok and not result.full
    ops, ipset, restores, addresses = sent(kernel, exec_, before)
    assert sorted(ops) == sorted(f"add real server 10.244.0.7:8080 (weight 1) of {k}"
                                 for k in ("10.96.0.10:80/TCP", "172.18.0.2:30080/TCP", "10.244.0.1:30080/TCP"))
    assert ipset == ["add KUBE-LOOP-BACK 10.244.0.7,tcp:8080,10.244.0.7"]
    assert restores == [] and addresses == []     # KUBE-LOOP-BACK held an entry: the chains are the same


def test_a_removed_tcp_endpoint_drains_then_goes_when_idle_or_out_of_time(world):
    proxier, kernel, exec_, clock = world
    proxier.load([service(node_port=None)], [endpoints(ips=("10.244.1.10", "10.244.1.11"))])
    proxier.sync()
    kernel.conns[(CIP, ("10.244.1.11", 8080))] = (2, 1)
    before = mark(kernel, exec_)
    proxier.on_slice_update(endpoints(ips=("10.244.1.10", "10.244.1.11")), endpoints(ips=("10.244.1.10",)))
    assert proxier.sync().ok
    ops, ipset, restores, _ = sent(kernel, exec_, before)
    assert ops == ["set real server 10.244.1.11:8080 (weight 0) of 10.96.0.10:80/TCP"] and ipset == restores == []
    assert kernel.weights()[str(CIP)] == {"10.244.1.10:8080": 1, "10.244.1.11:8080": 0}
    assert proxier.drain() == 0                                     # connections left: it stays
    kernel.conns[(CIP, ("10.244.1.11", 8080))] = (0, 0)
    assert proxier.drain() == 1 and kernel.weights()[str(CIP)] == {"10.244.1.10:8080": 1}
    # another one, whose client never closes: deleted when its time is up
    proxier.on_slice_update(endpoints(ips=("10.244.1.10",)), endpoints(ips=("10.244.1.12",)))
    kernel.conns[(CIP, ("10.244.1.10", 8080))] = (1, 0)
    proxier.sync()
    assert kernel.weights()[str(CIP)] == {"10.244.1.10:8080": 0, "10.244.1.12:8080": 1}
    clock.now += 299
    assert proxier.drain() == 0
    clock.now += 2
    assert proxier.drain() == 1 and kernel.weights()[str(CIP)] == {"10.244.1.12:8080": 1}
    assert proxier._counts()["real_servers"] == 1          # kept as servers come and go, never recounted


def test_an_endpoint_back_while_draining_gets_its_weight_back(world):
    proxier, kernel, exec_, _ = world
    two, one = endpoints(ips=("10.244.1.10", "10.244.1.11")), endpoints(ips=("10.244.1.10",))
    proxier.load([service(node_port=None)], [two])
    proxier.sync()
    kernel.conns[(CIP, ("10.244.1.11", 8080))] = (1, 0)
    proxier.on_slice_update(two, one)
    proxier.sync()
    before = mark(kernel, exec_)
    proxier.on_slice_update(one, two)
    proxier.sync()
    assert sent(kernel, exec_, before)[0] == ["set real server 10.244.1.11:8080 (weight 1) of 10.96.0.10:80/TCP"]
    kernel.conns.clear()
    assert proxier.drain() == 0 and kernel.weights()[str(CIP)] == {"10.244.1.10:8080": 1, "10.244.1.11:8080": 1}


def test_a_removed_udp_endpoint_is_deleted_at_once_and_its_conntrack_entries_cleared(world):
    proxier, kernel, exec_, _ = world
    two = endpoints(ips=("10.244.1.10", "10.244.1.11"), proto="UDP")
    proxier.load([service(proto="UDP", node_port=None)], [two])
    proxier.sync()
    kernel.conns[(VSKey("UDP", "10.96.0.10", 80), ("10.244.1.11", 8080))] = (0, 5)
    before = mark(kernel, exec_)
    proxier.on_slice_update(two, endpoints(ips=("10.244.1.10",), proto="UDP"))
    result = proxier.sync()
    assert sent(kernel, exec_, before)[0] == ["del real server 10.244.1.11:8080 (weight 1) of 10.96.0.10:80/UDP"]
    assert ["conntrack", "-D", "--orig-dst", "10.96.0.10", "--dst-nat", "10.244.1.11", "-p", "udp"] in \
        exec_.argvs("conntrack") and result.conntrack_commands == 1


def test_a_deleted_service_removes_its_servers_entries_and_address(world):
    proxier, kernel, exec_, _ = world
    proxier.load([service(), service("db", "10.96.0.20", node_port=None)], [endpoints(), endpoints("db")])
    proxier.sync()
    before = mark(kernel, exec_)
    proxier.on_service_delete(service())
    counts = proxier.sync().rules
    assert counts == {"virtual_servers": 1, "real_servers": 1, "ipset_entries": sum(map(len, exec_.sets.values()))}
    ops, ipset, restores, addresses = sent(kernel, exec_, before)
    assert sorted(ops) == sorted(f"del virtual server {k}" for k in ("10.96.0.10:80/TCP", "172.18.0.2:30080/TCP",
                                                                     "10.244.0.1:30080/TCP"))
    assert sorted(ipset) == ["del KUBE-CLUSTER-IP 10.96.0.10,tcp:80", "del KUBE-NODE-PORT-TCP 30080"]
    assert addresses == [([], ["10.96.0.10"])] and kernel.dummy_addrs == {"10.96.0.20"}
    # KUBE-NODE-PORT-TCP emptied: its rule goes, so the fixed chains are restored once
    assert len(restores) == 1 and "KUBE-NODE-PORT-TCP" not in restores[0]


def test_affinity_and_scheduler_changes_update_the_virtual_server_in_place(world):
    proxier, kernel, exec_, _ = world
    plain = service(node_port=None)
    proxier.load([plain], [endpoints()])
    proxier.sync()
    before = mark(kernel, exec_)
    sticky = service(node_port=None, sessionAffinity="ClientIP",
                     sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}})
    proxier.on_service_update(plain, sticky)
    proxier.sync()
    assert sent(kernel, exec_, before)[0] == ["set virtual server 10.96.0.10:80/TCP"]
    assert kernel.services_[CIP] == VirtualServer(CIP, "rr", FLAG_PERSISTENT, 30)


def test_a_full_sync_cleans_a_previous_runs_leftovers_but_not_other_ranges_and_families():
    kernel, exec_ = FakeIpvsKernel(), FakeNodeExec()
    stale, foreign, other_family = VSKey("UDP", "6.6.6.6", 58), VSKey("UDP", "3.3.3.3", 55), VSKey("TCP", "fd00::1", 80)
    for key in (stale, foreign, other_family, CIP):
        kernel.services_[key], kernel.reals_[key] = VirtualServer(key), {}
    kernel.reals_[CIP][("10.244.1.10", 8080)] = RealServer("10.244.1.10", 8080, 0)     # a weight left at 0
    kernel.reals_[CIP][("10.244.9.9", 8080)] = RealServer("10.244.9.9", 8080, 1)       # an endpoint gone since
    kernel.conns[(CIP, ("10.244.9.9", 8080))] = (1, 0)                                   # ... still in use
    kernel.dummy, kernel.dummy_addrs = True, {"10.96.0.10", "10.96.9.9"}
    exec_.set_types[S.CLUSTER_IP], exec_.sets[S.CLUSTER_IP] = "hash:ip,port", {"10.96.9.9,tcp:80"}
    proxier = IpvsProxier(NODE, ProxyConfig(), kernel=kernel, exec_=exec_, exclude_cidrs=("3.3.3.0/24",))
    proxier.load([service(node_port=None)], [endpoints()])
    assert proxier.sync().ok
    assert set(kernel.services_) == {CIP, foreign, other_family}
    assert kernel.weights()[str(CIP)] == {"10.244.1.10:8080": 1, "10.244.9.9:8080": 0}
    assert kernel.dummy_addrs == {"10.96.0.10"}
    assert exec_.sets[S.CLUSTER_IP] == {"10.96.0.10,tcp:80"}
    kernel.conns.clear()
    assert proxier.drain() == 1 and kernel.weights()[str(CIP)] == {"10.244.1.10:8080": 1}


def test_a_failed_sync_changes_what_it_reached_and_the_next_one_is_full(world):
    proxier, kernel, exec_, _ = world
    proxier.load([service()], [endpoints()])
    proxier.sync()
    exec_.fail = "ipset restore"
    proxier.on_slice_update(endpoints(), endpoints(ips=("10.244.1.10", "10.244.0.7"), local=("10.244.0.7",)))
    result = proxier.sync()
    assert not result.ok and "ipset restore failed" in result.error and proxier.need_full_sync
    exec_.fail = None
    reads = kernel.reads
    result = proxier.sync()
    assert result.ok and result.full and kernel.reads > reads
    assert exec_.sets[S.LOOP_BACK] == {"10.244.0.7,tcp:8080,10.244.0.7"}
    assert kernel.weights()[str(CIP)] == {"10.244.1.10:8080": 1, "10.244.0.7:8080": 1}


def test_the_applier_refuses_a_partial_apply_without_a_mirror():
    from netemu.agent.proxy.ipvs.apply import Applier
    from netemu.agent.proxy.ipvs.cache import Delta
    from netemu.agent.proxy.xtables.apply import Iptables

    exec_ = FakeNodeExec()
    applier = Applier(FakeIpvsKernel(), exec_, Iptables("nft", exec_), NODE)
    with pytest.raises(ApplyError, match="full apply must come first"):
        applier.apply_delta(Delta({}, {}, {}, set(), set(), None, False))


@pytest.mark.parametrize("release, reuse", [("6.1.0-21-amd64", None), ("5.4.0", "0"), ("3.10.0", None)])
def test_upstreams_sysctls_follow_the_kernel_version(release, reuse):
    values = sysctls(strict_arp=True, kernel_release=release)
    assert values["net.ipv4.vs.conntrack"] == values["net.ipv4.vs.expire_nodest_conn"] == "1"
    assert values["net.ipv4.conf.all.arp_announce"] == "2"
    assert values.get("net.ipv4.vs.conn_reuse_mode") == reuse


def test_ipvs_metrics_are_upstreams_ipvs_set(world):
    proxier, *_ = world
    proxier.load([service(externalTrafficPolicy="Local")], [endpoints()])
    proxier.sync()
    text = proxier.metrics.text().decode()
    assert 'kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="external"} 1.0' in text
    assert "kubeproxy_sync_proxy_rules_iptables_restore_failures_total" in text
    assert "kubeproxy_sync_full_proxy_rules_duration_seconds" not in text
    assert "kubeproxy_sync_proxy_rules_iptables_total" not in text


def test_the_hook_takes_the_modes_flags():
    exec_ = FakeNodeExec()
    proxier = make_proxier(NODE, ProxyConfig(), exec_=exec_, kernel=FakeIpvsKernel(), ipvs_scheduler="sh",
                           nodeport_addresses=["172.18.0.0/16"])
    proxier.load([service()], [endpoints()])
    proxier.sync()
    assert {vs.scheduler for vs in proxier.kernel.services_.values()} == {"sh"}
    assert set(proxier.kernel.services_) == {CIP, NP}
    with pytest.raises(ValueError, match="not a CIDR"):
        make_proxier(NODE, ProxyConfig(), exec_=exec_, kernel=FakeIpvsKernel(), nodeport_addresses=["x"])


def test_the_hooks_other_upstream_flags():
    exec_, kernel = FakeNodeExec(), FakeIpvsKernel()
    proxier = make_proxier(NODE, ProxyConfig(), exec_=exec_, kernel=kernel, ipvs_strict_arp=True,
                           ipvs_exclude_cidrs=["3.3.3.0/24,4.4.4.4/32"], ipvs_tcp_timeout="15m",
                           ipvs_tcpfin_timeout="1m30s", ipvs_udp_timeout="5")
    proxier.load([], [])
    proxier.sync()
    assert kernel.timeouts == (900, 90, 5) and exec_.sysctls["net.ipv4.conf.all.arp_ignore"] == "1"
    assert [str(n) for n in proxier.applier.exclude] == ["3.3.3.0/24", "4.4.4.4/32"]
    for bad in ({"ipvs_tcp_timeout": "soon"}, {"ipvs_exclude_cidrs": ["3.3.3.0/33"]}):
        with pytest.raises(ValueError, match="--ipvs-"):
            make_proxier(NODE, ProxyConfig(), exec_=exec_, kernel=FakeIpvsKernel(), **bad)


def test_no_conntrack_cleanup_leaves_the_udp_entries():
    """--no-conntrack-cleanup (ProxyConfig.conntrack_cleanup False) holds for the IPVS mode too."""
    kernel, exec_ = FakeIpvsKernel(), FakeNodeExec()
    proxier = IpvsProxier(NODE, ProxyConfig(conntrack_cleanup=False), kernel=kernel, exec_=exec_)
    two = endpoints(ips=("10.244.1.10", "10.244.1.11"), proto="UDP")
    proxier.load([service(proto="UDP", node_port=None)], [two])
    proxier.sync()
    proxier.on_slice_update(two, endpoints(ips=("10.244.1.10",), proto="UDP"))
    result = proxier.sync()
    assert result.ok and result.conntrack_commands == 0 and not exec_.argvs("conntrack")
