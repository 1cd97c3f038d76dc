"""The iptables Proxier with a fake command runner and a recording builder (no kernel)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from netemu.agent.proxy.commands import Result
from netemu.agent.proxy.xtables.apply import detect_backend, resolve_backend
from netemu.agent.proxy.model import NodeInfo, ServiceName
from netemu.agent.proxy.iptables.proxier import IptablesProxier
from tests.unit.test_proxy_tracker import eps, svc

NODE = NodeInfo(name="node1", ips=("172.18.0.2",), cluster_cidr="10.244.0.0/16")


class FakeExec:
    """Records every argv; iptables-restore fails while ``fail_restore`` is set."""

    def __init__(self, version="iptables v1.8.9 (nf_tables)"):
        self.calls: list[tuple[list[str], str | None]] = []
        self.fail_restore = False
        self.version = version

    def __call__(self, argv, input=None):
        self.calls.append((argv, input))
        if argv[-1] == "--version":
            return Result(0, self.version + "\n")
        if argv[0].endswith("-restore") and self.fail_restore:
            return Result(2, "", "iptables-restore: line 7 failed")
        if argv[0] == "conntrack":
            return Result(1, "", "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.")
        return Result(0)

    def argvs(self, first=None):
        return [a for a, _ in self.calls if first is None or a[0] == first]


@dataclass
class FakeRuleSet:
    text: str
    chains: dict
    rule_counts: dict
    written_counts: dict
    no_local_endpoints: dict


class RecordingBuilder:
    def __init__(self):
        self.calls = []

    def __call__(self, services, endpoints, node, config, *, changed=None, previous_chains=None):
        self.calls.append({"services": dict(services), "endpoints": dict(endpoints),
                           "changed": changed, "previous_chains": previous_chains})
        text = f"*nat\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n# {len(self.calls)}\n"
        return FakeRuleSet(text, {"nat": {f"chain{len(self.calls)}"}}, {"nat": 1, "filter": 0},
                           {"nat": 1, "filter": 0}, {"internal": 0, "external": 0})


def make(backend="iptables"):
    fake, builder = FakeExec(), RecordingBuilder()
    proxier = IptablesProxier(NODE, backend=backend, exec_=fake, build=builder)
    return proxier, fake, builder


def test_backend_detection():
    assert detect_backend("iptables v1.8.9 (nf_tables)") == "nft"
    assert detect_backend("iptables v1.8.9 (legacy)") == "legacy"
    assert detect_backend("iptables v1.6.1") == "legacy"
    assert resolve_backend("iptables", FakeExec("iptables v1.8.9 (legacy)")) == "legacy"
    assert resolve_backend("nft", FakeExec("iptables v1.8.9 (legacy)")) == "nft"
    with pytest.raises(ValueError):
        resolve_backend("ipchains")


def test_no_sync_before_both_kinds_are_listed():
    proxier, fake, builder = make()
    proxier.on_service_add(svc())
    assert proxier.sync().skipped
    assert builder.calls == [] and fake.argvs("iptables-nft-restore") == []


def test_first_sync_is_full_with_jumps_and_one_noflush_counters_restore():
    proxier, fake, builder = make()
    proxier.load([svc()], [eps()])
    result = proxier.sync()
    assert result.ok and result.full
    assert builder.calls[0]["changed"] is None
    restores = fake.argvs("iptables-nft-restore")
    assert len(restores) == 1
    assert "--noflush" in restores[0] and "--counters" in restores[0]
    checks = [a for a in fake.argvs("iptables-nft") if "-C" in a]
    assert any("PREROUTING" in a and "KUBE-SERVICES" in a for a in checks)
    assert proxier.metrics.rules_total.labels(table="nat")._value.get() == 1


def test_later_syncs_are_partial_with_the_changed_services_only():
    proxier, fake, builder = make()
    proxier.load([svc(), svc("other", ip="10.96.0.11")], [eps()])
    proxier.sync()
    fake.calls.clear()
    proxier.on_slice_update(eps(), eps(ips=("10.244.1.10", "10.244.1.11")))
    result = proxier.sync()
    assert result.ok and not result.full
    assert builder.calls[-1]["changed"] == {ServiceName("default", "web")}
    assert builder.calls[-1]["previous_chains"] == {"nat": {"chain1"}}
    assert [a for a in fake.argvs("iptables-nft") if "-C" in a] == []   # jumps: full syncs only


def test_failed_restore_forces_a_full_sync_and_keeps_the_conntrack_cleanup():
    proxier, fake, builder = make()
    dns = svc("dns", ip="10.96.0.53", ports=(("dns", 53, "UDP"),))
    two = eps("dns", ips=("10.244.1.10", "10.244.1.11"), port=("dns", 53, "UDP"))
    proxier.load([dns], [two])
    assert proxier.sync().ok
    fake.calls.clear()
    fake.fail_restore = True
    proxier.on_slice_update(two, eps("dns", ips=("10.244.1.10",), port=("dns", 53, "UDP")))
    failed = proxier.sync()
    assert not failed.ok and "line 7" in failed.error
    assert fake.argvs("conntrack") == []               # rules not in: entries must stay for now
    fake.fail_restore = False
    retry = proxier.sync()
    assert retry.ok and retry.full
    assert builder.calls[-1]["changed"] is None
    assert ["conntrack", "-D", "--orig-dst", "10.96.0.53", "--dst-nat", "10.244.1.11", "-p", "udp"] \
        in fake.argvs("conntrack")
    text = proxier.metrics.text().decode()
    assert "kubeproxy_sync_proxy_rules_iptables_restore_failures_total 1.0" in text


def test_deleting_a_udp_service_clears_its_cluster_ip():
    proxier, fake, builder = make()
    dns = svc("dns", ip="10.96.0.53", ports=(("dns", 53, "UDP"),))
    proxier.load([dns], [])
    proxier.sync()
    proxier.on_service_delete(dns)
    proxier.sync()
    assert ["conntrack", "-D", "--orig-dst", "10.96.0.53", "-p", "udp"] in fake.argvs("conntrack")


def test_builder_exception_does_not_kill_the_proxy():
    proxier, fake, builder = make()
    proxier.load([svc()], [])

    def broken(*a, **k):
        raise KeyError("bug")

    proxier.build = broken
    assert not proxier.sync().ok
    proxier.build = builder
    assert proxier.sync().full


def test_metrics_have_upstream_names():
    proxier, fake, builder = make()
    proxier.load([svc()], [eps(trigger="2020-01-01T00:00:00Z")])
    proxier.sync()
    text = proxier.metrics.text().decode()
    for name in ("kubeproxy_sync_proxy_rules_duration_seconds_count 1.0",
                 "kubeproxy_sync_full_proxy_rules_duration_seconds_count 1.0",
                 "kubeproxy_sync_partial_proxy_rules_duration_seconds_count 0.0",
                 "kubeproxy_network_programming_duration_seconds_count 1.0",
                 'kubeproxy_sync_proxy_rules_iptables_total{table="nat"} 1.0',
                 "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                 "kubeproxy_sync_proxy_rules_endpoint_changes_total 1.0",
                 "kubeproxy_sync_proxy_rules_service_changes_total 1.0",
                 "kubeproxy_sync_proxy_rules_endpoint_changes_pending 0.0"):
        assert name in text, name


def test_sync_loop_syncs_after_events_and_retries_a_failure():
    import threading

    from netemu.agent.proxy.model import ProxyConfig

    fake = FakeExec()
    synced = threading.Semaphore(0)

    class Signalling(RecordingBuilder):
        def __call__(self, *a, **k):
            out = super().__call__(*a, **k)
            synced.release()
            return out

    proxier = IptablesProxier(NODE, ProxyConfig(min_sync_period=0.0, sync_period=0.05),
                              exec_=fake, build=Signalling())
    proxier.load([svc()], [eps()])
    proxier.sync_loop()
    try:
        assert synced.acquire(timeout=10)                 # initial sync
        fake.fail_restore = True
        proxier.on_slice_update(eps(), eps(ips=("10.244.1.10", "10.244.1.11")))
        assert synced.acquire(timeout=10)                 # the failing sync ...
        fake.fail_restore = False
        assert synced.acquire(timeout=10)                 # ... is retried after sync_period
        for _ in range(50):
            if not proxier.need_full_sync:
                break
            synced.acquire(timeout=1)
        assert proxier.need_full_sync is False
    finally:
        proxier.stop()


def _restored(fake):
    return [text for argv, text in fake.calls if argv[0].endswith("-restore")]


def test_real_builder_partial_sync_restores_only_the_changed_service_with_its_cache():
    """With our builder the proxier keeps a BuildCache: a one-Service change restores that
    Service's chains (the builder's delta), never KUBE-SERVICES; a failed restore invalidates
    the cache, and the full resync after it writes everything again."""
    fake = FakeExec()
    proxier = IptablesProxier(NODE, backend="nft", exec_=fake)
    assert proxier.cache is not None
    other = eps("other", ips=("10.244.2.10",))
    proxier.load([svc(), svc("other", ip="10.96.0.11")], [eps(), other])
    assert proxier.sync().full
    full_text = _restored(fake)[-1]
    assert "-A KUBE-SERVICES" in full_text and "-I PREROUTING" in full_text

    fake.calls.clear()
    proxier.on_slice_update(eps(), eps(ips=("10.244.1.10", "10.244.1.11")))
    result = proxier.sync()
    assert result.ok and not result.full
    [delta] = _restored(fake)
    assert "KUBE-SERVICES" not in delta and "10.244.1.11" in delta and "10.244.2.10" not in delta
    assert proxier.metrics.rules_total.labels(table="nat")._value.get() == result.rules["nat"]

    fake.fail_restore = True
    proxier.on_slice_update(other, eps("other", ips=("10.244.2.11",)))
    assert not proxier.sync().ok
    assert proxier.cache.entries == {}                       # invalidated: kernel state unknown
    fake.fail_restore = False
    fake.calls.clear()
    retry = proxier.sync()
    assert retry.ok and retry.full
    assert "-A KUBE-SERVICES" in _restored(fake)[-1] and "10.244.2.11" in _restored(fake)[-1]


def test_partial_syncs_restore_a_build_whole_unless_it_has_a_delta():
    """Only the builder's delta (our builder's BuildCache) leaves unchanged top-level chains out;
    an injected builder's text, or any build with trim_unchanged=False, is restored whole, as
    upstream restores every sync."""
    proxier, fake, builder = make()
    proxier.load([svc()], [eps()])
    assert proxier.sync().full
    fake.calls.clear()
    proxier.on_slice_update(eps(), eps(ips=("10.244.1.10", "10.244.1.11")))
    assert not proxier.sync().full
    assert _restored(fake) == ["*nat\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n# 2\n"]

    fake = FakeExec()
    untrimmed = IptablesProxier(NODE, backend="nft", exec_=fake, trim_unchanged=False)
    untrimmed.load([svc()], [eps()])
    assert untrimmed.sync().full
    fake.calls.clear()
    untrimmed.on_slice_update(eps(), eps(ips=("10.244.1.10", "10.244.1.11")))
    assert not untrimmed.sync().full
    [text] = _restored(fake)
    assert "-A KUBE-SERVICES" in text and ":KUBE-NODEPORTS" in text and "10.244.1.11" in text


class RecordingHealth:
    def __init__(self, fail=False):
        self.services, self.endpoints, self.fail = None, None, fail

    def sync_services(self, ports):
        if self.fail:
            raise OSError("bind failed")
        self.services = dict(ports)

    def sync_endpoints(self, counts):
        self.endpoints = dict(counts)


def test_health_checks_follow_each_successful_sync():
    """Upstream syncProxyRules ends with SyncServices(HealthCheckNodePorts) and
    SyncEndpoints(LocalReadyEndpoints); a health-check failure never fails the sync."""
    proxier, fake, builder = make()
    proxier.health = RecordingHealth()
    local = svc(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=31000,
                ports=(("http", 80, "TCP"),))
    proxier.load([local], [eps(port=("http", 8080, "TCP"))])
    assert proxier.sync().ok
    assert proxier.health.services == {ServiceName("default", "web"): 31000}
    assert proxier.health.endpoints == {ServiceName("default", "web"): 1}
    proxier.on_slice_update(eps(port=("http", 8080, "TCP")), eps(port=("http", 8080, "TCP"), serving=False))
    proxier.sync()
    assert proxier.health.endpoints == {}
    proxier.health = RecordingHealth(fail=True)
    proxier.on_service_delete(local)
    assert proxier.sync().ok
