"""The iptables canary monitor (upstream ipt.Monitor) and the proxier's full resync after a
flush, against a fake kernel that keeps chains per table (no root)."""

from __future__ import annotations

import threading

from netemu.agent.proxy.commands import Result
from netemu.agent.proxy.xtables.apply import Iptables
from netemu.agent.proxy.iptables.canary import CanaryMonitor
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.agent.proxy.iptables.proxier import IptablesProxier
from tests.unit.test_proxy_tracker import eps, svc

NODE = NodeInfo(name="node1", ips=("172.18.0.2",), cluster_cidr="10.244.0.0/16")


BUILTIN = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}


class FakeKernel:
    """Chains per table from -N/-X and from restores' declarations; ``flush()`` empties it."""

    def __init__(self):
        self.chains: dict[str, set[str]] = {"mangle": set(), "nat": set(), "filter": set()}
        self.restores: list[str] = []
        self.busy = False        # -S answers exit 4 (xtables lock busy)

    def __call__(self, argv, input=None):
        if argv[-1] == "--version":
            return Result(0, "iptables v1.8.9 (nf_tables)\n")
        if argv[0].endswith("-restore"):
            self.restores.append(input)
            table = None
            for line in input.splitlines():
                if line.startswith("*"):
                    table = line[1:]
                elif line.startswith(":"):
                    self.chains[table].add(line[1:].split()[0])
                elif line.startswith("-X "):
                    self.chains[table].discard(line.split()[1])
            return Result(0)
        if argv[0].startswith("iptables-"):
            table = argv[argv.index("-t") + 1]
            for op in ("-N", "-S", "-X", "-C"):
                if op in argv:
                    chain = argv[argv.index(op) + 1]
                    break
            else:
                return Result(0)
            have = chain in self.chains[table] or chain in BUILTIN
            if op == "-N":
                self.chains[table].add(chain)
                return Result(1, "", "iptables: Chain already exists.") if have else Result(0)
            if op == "-S" and self.busy:
                return Result(4, "", "Another app is currently holding the xtables lock.")
            if op == "-X":
                self.chains[table].discard(chain)
            return Result(0 if have else 1, "", "" if have else "No chain/target/match by that name.")
        return Result(1, "", "0 flow entries have been deleted.")   # conntrack

    def flush(self, tables=("mangle", "nat", "filter")):
        for t in tables:
            self.chains[t] = set()


def test_monitor_ensures_canaries_and_sees_a_flush():
    kernel = FakeKernel()
    waits = []
    monitor = CanaryMonitor(Iptables("nft", kernel), sleep=waits.append)
    assert monitor.ensure()
    assert all("KUBE-PROXY-CANARY" in kernel.chains[t] for t in ("mangle", "nat", "filter"))
    assert not monitor.check()
    kernel.busy = True                     # a busy lock is not a missing chain
    kernel.flush()
    assert not monitor.check()
    kernel.busy = False
    assert monitor.check() and waits == []
    monitor.remove()
    assert not any("KUBE-PROXY-CANARY" in c for c in kernel.chains.values())


def test_monitor_waits_for_the_flush_to_finish_then_gives_up_after_the_timeout():
    kernel = FakeKernel()
    now = [0.0]

    def sleep(s):
        now[0] += s
        if now[0] >= 0.3:
            kernel.flush(("nat",))         # the flush reaches nat a little later; filter never
    monitor = CanaryMonitor(Iptables("nft", kernel), sleep=sleep, clock=lambda: now[0])
    monitor.ensure()
    kernel.flush(("mangle",))
    assert monitor.check()
    assert now[0] >= 5.0                   # waited for filter's canary until the timeout


def test_proxier_resyncs_in_full_after_a_flush():
    kernel = FakeKernel()
    proxier = IptablesProxier(NODE, ProxyConfig(), backend="nft", exec_=kernel)
    proxier.load([svc(), svc("other", ip="10.96.0.11")], [eps()])
    assert proxier.sync().full
    assert proxier.canary.ensure()
    proxier.on_slice_update(eps(), eps(ips=("10.244.1.10", "10.244.1.11")))
    assert not proxier.sync().full
    kernel.flush()                          # someone ran iptables -F/-X on every table
    assert proxier.canary.check()
    before = len(kernel.restores)
    proxier.force_full_sync()               # the monitor's reload
    assert len(kernel.restores) == before + 1
    text = kernel.restores[-1]
    assert "-A KUBE-SERVICES" in text and "10.244.1.11" in text and "-I PREROUTING" in text
    assert not proxier.need_full_sync


def test_sync_loop_runs_the_monitor_thread_and_stop_removes_the_canaries():
    kernel = FakeKernel()
    synced = threading.Event()
    proxier = IptablesProxier(NODE, ProxyConfig(min_sync_period=0.0, sync_period=0.05), backend="nft",
                              exec_=kernel)
    real = proxier.sync

    def sync():
        result = real()
        if result.ok and result.full and kernel.restores and len(kernel.restores) > 1:
            synced.set()
        return result
    proxier.sync = sync
    proxier.load([svc()], [eps()])
    proxier.sync_loop()
    try:
        for _ in range(200):
            if "KUBE-PROXY-CANARY" in kernel.chains["mangle"] and len(kernel.restores) >= 1:
                break
            threading.Event().wait(0.01)
        kernel.flush()
        assert synced.wait(10)              # the flush was noticed and a full sync followed
    finally:
        proxier.stop()
    assert "KUBE-PROXY-CANARY" not in kernel.chains["filter"]
