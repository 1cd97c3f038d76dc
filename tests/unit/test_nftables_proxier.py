"""The nftables Proxier against a fake kernel: transactions per sync, failures, the monitor,
a system that cannot run the mode, metrics."""

from __future__ import annotations

import pytest

from netemu.agent.proxy import modes
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.agent.proxy.nftables.apply import Nft
from netemu.testing.nftkernel import FakeNftKernel
from tests.unit.nft_upstream_cases import ep, eps, port, svc

NODE = NodeInfo("n1", ("172.18.0.2",), "10.244.0.0/16")


def make(kernel, **kw):
    clock = [1000.0]
    proxier = modes.choose("nftables").hook("proxier")(
        NODE, ProxyConfig(), exec_=kernel, nft_backend="nft", service_cidr=["10.96.0.0/12"],
        wall_clock=lambda: clock[0], **kw)
    return proxier, clock


def web(name="web", ip="10.96.0.10", *eps_ips):
    return (svc("default", name, clusterIP=ip, ports=[port("http", 80)]),
            eps("default", name, [ep(i) for i in eps_ips], [{"name": "http", "port": 8080, "protocol": "TCP"}]))


def test_first_sync_is_one_transaction_then_partial_ones_carry_only_the_change():
    kernel = FakeNftKernel()
    proxier, clock = make(kernel)
    s1, e1 = web("web", "10.96.0.10", "10.244.1.5")
    proxier.load([s1], [e1])
    first = proxier.sync()
    assert first.ok and first.full and len(kernel.transactions) == 1
    table = kernel.table()
    assert "service-ips" in table.sets and any(c.startswith("endpoint-") for c in table.chains)
    assert ('10.96.0.10', 'tcp', '80') in table.sets["service-ips"].elements
    checks = [c for c, _ in kernel.calls if c[:2] == ["nft", "-c"]]
    assert checks, "the system was checked before the first transaction"

    s2, e2 = web("api", "10.96.0.11", "10.244.2.7")
    proxier.on_service_add(s2)
    proxier.on_slice_add(e2)
    second = proxier.sync()
    assert second.ok and not second.full
    text = kernel.transactions[-1]
    assert "api" in text and "web" not in text and "add table" not in text
    assert ('10.96.0.11', 'tcp', '80') in kernel.table().sets["service-ips"].elements

    proxier.on_service_delete(s2)
    proxier.sync()
    assert ('10.96.0.11', 'tcp', '80') not in kernel.table().sets["service-ips"].elements
    stale = [c for c in kernel.table().chains if "default/api" in c]
    assert stale and all(not kernel.table().chains[c].rules for c in stale)    # flushed, not yet deleted
    clock[0] += 2
    proxier.sync()
    assert not [c for c in kernel.table().chains if "default/api" in c]        # deleted a second later


def test_a_failed_transaction_changes_nothing_and_the_next_sync_is_full():
    kernel = FakeNftKernel()
    proxier, _ = make(kernel)
    s1, e1 = web("web", "10.96.0.10", "10.244.1.5")
    proxier.load([s1], [e1])
    assert proxier.sync().ok
    before = kernel.table().dump()
    s2, e2 = web("api", "10.96.0.11", "10.244.2.7")
    proxier.on_service_add(s2)
    proxier.on_slice_add(e2)
    kernel.fail_next = 1
    failed = proxier.sync()
    assert not failed.ok and "Device or resource busy" in failed.error
    assert kernel.table().dump() == before
    assert proxier.need_full_sync
    retry = proxier.sync()
    assert retry.ok and retry.full and ('10.96.0.11', 'tcp', '80') in kernel.table().sets["service-ips"].elements
    text = proxier.metrics.text().decode()
    assert "kubeproxy_sync_proxy_rules_nftables_sync_failures_total 1.0" in text
    assert "iptables" not in text


def test_the_monitor_notices_a_deleted_table_and_a_full_sync_recreates_it():
    kernel = FakeNftKernel()
    proxier, _ = make(kernel)
    s1, e1 = web("web", "10.96.0.10", "10.244.1.5")
    proxier.load([s1], [e1])
    assert not proxier.monitor.check()           # before the first sync: nothing to watch
    proxier.sync()
    assert not proxier.monitor.check()
    kernel(["nft", "delete", "table", "ip", "kube-proxy"])
    assert proxier.monitor.check()
    proxier.force_full_sync()
    assert kernel.table() is not None and ('10.96.0.10', 'tcp', '80') in kernel.table().sets["service-ips"].elements


@pytest.mark.parametrize("missing,named", [("numgen", "numgen"), ("fib saddr", "fib"),
                                           ("dynamic,timeout", "dynamic sets"), ("masquerade", "masquerade")])
def test_a_kernel_without_a_needed_feature_gets_one_error_naming_it_and_no_table(missing, named):
    kernel = FakeNftKernel()
    kernel.missing = (missing,)
    proxier, _ = make(kernel)
    s1, e1 = web("web", "10.96.0.10", "10.244.1.5")
    proxier.load([s1], [e1])
    result = proxier.sync()
    assert not result.ok and named in result.error and "cannot do" in result.error
    assert kernel.tables == {} and kernel.transactions == []


def test_an_old_nft_is_refused_by_name():
    kernel = FakeNftKernel("nftables v0.9.8 (E.D.S.)")
    proxier, _ = make(kernel)
    proxier.load(*map(list, zip(web("web", "10.96.0.10", "10.244.1.5"))))
    result = proxier.sync()
    assert not result.ok and "nft >= 1.0.1" in result.error and "v0.9.8" in result.error
    assert kernel.tables == {}


def test_service_cidr_change_takes_a_full_sync_with_the_new_drop_rule():
    kernel = FakeNftKernel()
    proxier, _ = make(kernel)
    proxier.load(*map(list, zip(web("web", "10.96.0.10", "10.244.1.5"))))
    proxier.sync()
    proxier.set_service_cidrs(["10.96.0.0/16"])
    assert proxier.sync().full
    rules = [r for r, _ in kernel.table().chains["cluster-ips-check"].rules]
    assert "ip daddr { 10.96.0.0/16 } drop" in rules


def test_nodeports_default_to_the_primary_node_ip_as_upstream():
    kernel = FakeNftKernel()
    proxier, _ = make(kernel)
    assert proxier.config.nodeport_addresses == ("172.18.0.2/32",)
    with pytest.raises(ValueError, match="--service-cidr 'x' is not a CIDR"):
        modes.choose("nftables").hook("proxier")(NODE, ProxyConfig(), exec_=kernel, service_cidr=["x"])


def test_libnftables_backend_only_in_this_namespace():
    kernel = FakeNftKernel()
    assert Nft(kernel, "auto").backend == "nft"          # an Exec elsewhere: the nft binary
    with pytest.raises(ValueError, match="libnftables"):
        Nft(kernel, "libnftables")
