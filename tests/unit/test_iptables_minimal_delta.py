"""The restore a partial sync sends (builder.minimal_delta): only the chains whose rules changed,
and the kernel ends up exactly as after upstream's partial restore (every chain of a changed
Service, every top-level chain), over random histories.

The kernel is modelled the way ``iptables-restore --noflush`` treats the text: ``:C`` creates or
flushes a chain, ``-A C`` appends to it (it must exist), ``-X C`` deletes it.
"""

from __future__ import annotations

import random

import pytest

from netemu.agent.proxy.commands import Result
from netemu.agent.proxy.iptables import BuildCache, build
from netemu.agent.proxy.iptables.builder import EMPTY_RESTORE, minimal_delta
from netemu.agent.proxy.iptables.proxier import IptablesProxier
from netemu.agent.proxy.model import NodeInfo, ProxyConfig, endpoints_by_service_port, service_port_map

from .test_iptables_properties import NODE, cluster, next_maps
from .test_proxy_tracker import eps, svc


def restore(kernel: dict, text: str) -> None:
    table = ""
    for line in text.split("\n"):
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            kernel[(table, line[1:].split(" ", 1)[0])] = []
        elif line.startswith("-A "):
            kernel[(table, line.split(" ", 2)[1])].append(line)   # KeyError: appended to no chain
        elif line.startswith("-X "):
            del kernel[(table, line.split()[1])]


@pytest.mark.parametrize("seed", range(30))
def test_minimal_deltas_leave_the_kernel_as_upstreams_partial_restores_do(seed):
    rng = random.Random(9000 + seed)
    services, slices = cluster(rng, rng.randint(2, 30))
    cfg = ProxyConfig(large_cluster_threshold=rng.choice([1000, 30]), nfacct=rng.random() < 0.5)
    cache = BuildCache()
    sm, em = service_port_map(services, NODE), endpoints_by_service_port(slices, NODE)
    previous = build(sm, em, NODE, cfg, cache=cache)
    kernel: dict = {}
    restore(kernel, previous.text)
    upstream = {key: list(rules) for key, rules in kernel.items()}
    for step in range(12):
        changed, sm2, em2 = next_maps(rng, services, slices, step, NODE, sm, em)
        cached = build(sm2, em2, NODE, cfg, changed=changed, previous_chains=previous.chains, cache=cache)
        text = minimal_delta(cached)
        if cached.delta is not None:
            assert len(text) <= len(cached.delta)
        restore(kernel, text if text is not None else cached.text)
        restore(upstream, cached.text)            # upstream: every chain of a changed Service
        assert kernel == upstream, step
        previous, sm, em = cached, sm2, em2


def _big(ready: int, not_ready: int = 0) -> tuple[list[dict], list[dict]]:
    sl = eps(ips=tuple(f"10.244.1.{k}" for k in range(1, ready + 1)))
    for k in range(not_ready):
        sl["endpoints"].append({"addresses": [f"10.244.2.{k + 1}"], "conditions": {"ready": False, "serving": False},
                                "nodeName": "node1"})
    return [svc()], [sl]


def test_a_pod_turning_ready_restores_its_services_balancing_chain_and_its_own_chain_only():
    node = NodeInfo("node1", ("172.18.0.2",), "10.244.0.0/16")
    cache = BuildCache()
    services, slices = _big(50, 1)
    first = build(service_port_map(services, node), endpoints_by_service_port(slices, node), node, cache=cache)
    services, slices = _big(51)          # 10.244.2.1 is gone, 10.244.1.51 is ready: one chain in, one out
    after = build(service_port_map(services, node), endpoints_by_service_port(slices, node), node,
                  changed={("default", "web")}, previous_chains=first.chains, cache=cache)
    declared = [line for line in minimal_delta(after).splitlines() if line.startswith(":")]
    assert len(declared) == 2 and declared[0].startswith(":KUBE-SVC-")    # the SVC chain, the new SEP
    assert after.delta.count("\n:KUBE-SEP-") == 51                      # upstream writes all of them


def test_an_endpoint_that_is_not_ready_yet_spawns_no_restore():
    calls = []

    def fake(argv, input=None):
        calls.append(argv[0])
        return Result(0)
    proxier = IptablesProxier(NodeInfo("node1", ("172.18.0.2",), "10.244.0.0/16"), exec_=fake, backend="nft",
                              monitor_canaries=False)
    services, slices = _big(3)
    proxier.load(services, slices)
    assert proxier.sync().ok
    restores = calls.count("iptables-nft-restore")
    _, grown = _big(3, 1)
    proxier.on_slice_update(slices[0], grown[0])
    result = proxier.sync()
    assert result.ok and not result.full and result.changed
    assert calls.count("iptables-nft-restore") == restores                # no rule changed: no exec
    _, ready = _big(4)
    proxier.on_slice_update(grown[0], ready[0])
    assert proxier.sync().ok and calls.count("iptables-nft-restore") == restores + 1
