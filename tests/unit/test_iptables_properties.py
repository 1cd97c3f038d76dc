"""Invariants of the builder over many generated clusters (fixed seeds, so failures reproduce):

- every jump target exists and has rules, no declared chain is left unused (upstream's
  checkIPTablesRuleJumps);
- a partial sync with every Service marked changed writes exactly the full sync's text;
- a partial sync with nothing changed reports the same totals and chains as a full sync
  (the counting path for skipped Services agrees with the writing path);
- the text loads back through the dump parser with the counts the RuleSet claims.
"""

from __future__ import annotations

import random

import pytest

from netemu.agent.proxy.iptables import BuildCache, build
from netemu.agent.proxy.xtables.dump import parse
from netemu.agent.proxy.model import (EndpointInfo, NodeInfo, ProxyConfig, ServiceName, endpoints_by_service_port,
                                      service_port_map)

from .test_iptables_builder import check_jumps

NODE = NodeInfo("n1", ("192.168.0.2",), "10.0.0.0/8", {"topology.kubernetes.io/zone": "a"})


def cluster(rng: random.Random, n: int) -> tuple[list[dict], list[dict]]:
    services, slices = [], []
    for i in range(n):
        kind = rng.choice(["ClusterIP", "NodePort", "LoadBalancer"])
        spec = {"type": kind, "clusterIP": f"172.30.{i // 200}.{i % 200 + 1}",
                "ports": [{"name": f"p{k}", "port": 80 + k, "protocol": rng.choice(["TCP", "UDP", "SCTP"]),
                           **({"nodePort": 30000 + i * 4 + k} if kind != "ClusterIP" else {})}
                          for k in range(rng.randint(1, 2))]}
        if rng.random() < 0.3:
            spec["externalIPs"] = [f"192.168.99.{i % 250 + 1}"]
        if kind != "ClusterIP" and rng.random() < 0.5:
            spec["externalTrafficPolicy"] = "Local"
            spec["healthCheckNodePort"] = 32000 + i
        if rng.random() < 0.3:
            spec["internalTrafficPolicy"] = "Local"
        if rng.random() < 0.3:
            spec["sessionAffinity"] = "ClientIP"
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": rng.randint(1, 10800)}}
        svc = {"metadata": {"namespace": f"ns{i % 3}", "name": f"s{i}"}, "spec": spec}
        if kind == "LoadBalancer":
            svc["status"] = {"loadBalancer": {"ingress": [{"ip": f"1.2.{i // 250}.{i % 250 + 1}"}]}}
            if rng.random() < 0.5:
                spec["loadBalancerSourceRanges"] = rng.sample(["203.0.113.0/25", "192.168.0.0/16", "10.9.0.0/16"], 2)
        services.append(svc)
        endpoints = []
        for j in range(rng.choice([0, 1, 2, 3, 5])):
            cond = rng.choice([{}, {"ready": False, "serving": True, "terminating": True},
                               {"ready": False, "serving": False, "terminating": True}, {"ready": True}])
            ep = {"addresses": [f"10.{i % 250}.{j}.{rng.randint(1, 250)}"], "conditions": cond,
                  "nodeName": rng.choice(["n1", "n2", None])}
            if rng.random() < 0.2:
                ep["hints"] = {"forZones": [{"name": rng.choice(["a", "b"])}]}
            endpoints.append(ep)
        slices.append({"metadata": {"namespace": f"ns{i % 3}", "name": f"s{i}-x",
                                    "labels": {"kubernetes.io/service-name": f"s{i}"}},
                       "addressType": "IPv4", "endpoints": endpoints,
                       "ports": [{"name": p["name"], "port": 8000 + k, "protocol": p["protocol"]}
                                 for k, p in enumerate(spec["ports"])]})
    return services, slices


@pytest.mark.parametrize("seed", range(40))
def test_invariants_hold_for_generated_clusters(seed):
    rng = random.Random(seed)
    services, slices = cluster(rng, rng.randint(1, 40))
    cfg = ProxyConfig(masquerade_all=rng.random() < 0.2, nfacct=rng.random() < 0.5,
                      large_cluster_threshold=rng.choice([1000, 5]))
    sm, em = service_port_map(services, NODE), endpoints_by_service_port(slices, NODE)
    full = build(sm, em, NODE, cfg)
    check_jumps(full.text)

    everything = {ServiceName(s["metadata"]["namespace"], s["metadata"]["name"]) for s in services}
    assert build(sm, em, NODE, cfg, changed=everything).text == full.text

    none = build(sm, em, NODE, cfg, changed=set(), previous_chains=full.chains)
    assert none.rule_counts == full.rule_counts and none.chains == full.chains
    assert none.deleted_chains == ()

    tables = parse(full.text, strict=True).tables
    assert {name: sum(len(c.rules) for c in t.chains.values()) for name, t in tables.items()} == full.rule_counts
    assert set(tables["nat"].chains) == set(full.chains["nat"])


@pytest.mark.parametrize("seed", range(40))
def test_build_cache_never_changes_the_output(seed):
    rng = random.Random(1000 + seed)
    services, slices = cluster(rng, rng.randint(1, 40))
    cfg = ProxyConfig(large_cluster_threshold=rng.choice([1000, 8]))
    sm, em = service_port_map(services, NODE), endpoints_by_service_port(slices, NODE)
    cache = BuildCache()
    full = build(sm, em, NODE, cfg)
    assert build(sm, em, NODE, cfg, cache=cache) == full          # cold cache
    assert build(sm, em, NODE, cfg, cache=cache) == full          # every entry reused

    # one Service's endpoints change (a new tuple): partial syncs agree with and without cache
    target = rng.choice(sorted(sm))
    em2 = dict(em)
    em2[target] = tuple(em.get(target, ()))[1:]
    changed = {target.service}
    plain = build(sm, em2, NODE, cfg, changed=changed, previous_chains=full.chains)
    cached = build(sm, em2, NODE, cfg, changed=changed, previous_chains=full.chains, cache=cache)
    assert cached == plain
    # a Service removed: its entry is dropped and its chains are stale
    sm3 = {k: v for k, v in sm.items() if k.service != target.service}
    assert build(sm3, em2, NODE, cfg, cache=cache, previous_chains=full.chains) == \
        build(sm3, em2, NODE, cfg, previous_chains=full.chains)
    # another node or config starts the cache over
    other = NodeInfo("n2", ("192.168.0.3",), "10.0.0.0/8")
    assert build(sm, em, other, cfg, cache=cache) == build(sm, em, other, cfg)


def _mutate(rng: random.Random, services: list[dict], slices: list[dict], step: int) -> set[ServiceName]:
    """One random change of the kind informers deliver; returns the Services it touched."""
    i = rng.randrange(len(services))
    name = ServiceName(services[i]["metadata"]["namespace"], services[i]["metadata"]["name"])
    what = rng.choice(["endpoint", "endpoint", "no-endpoints", "type", "remove", "add", "ports"])
    if what == "endpoint":
        eps = slices[i]["endpoints"]
        slices[i]["endpoints"] = eps[1:] + [{"addresses": [f"10.250.{step % 250}.{rng.randint(1, 250)}"],
                                             "conditions": {"ready": True}, "nodeName": rng.choice(["n1", "n2"])}]
    elif what == "no-endpoints":
        slices[i]["endpoints"] = []
    elif what == "type":
        spec = services[i]["spec"]
        spec["type"] = "NodePort"
        for k, port in enumerate(spec["ports"]):
            port["nodePort"] = 31000 + step * 3 + k
    elif what == "ports":
        services[i]["spec"]["ports"][0]["port"] += 1
    elif what == "remove" and len(services) > 1:
        del services[i], slices[i]
    else:
        extra_s, extra_sl = cluster(rng, 1)
        extra_s[0]["metadata"]["name"] = extra_sl[0]["metadata"]["labels"]["kubernetes.io/service-name"] = f"new{step}"
        extra_s[0]["spec"]["clusterIP"] = f"172.31.{step // 200}.{step % 200 + 1}"
        services.append(extra_s[0])
        slices.append(extra_sl[0])
        name = ServiceName(extra_s[0]["metadata"]["namespace"], f"new{step}")
    return {name}


@pytest.mark.parametrize("seed", range(30))
def test_cached_partial_builds_equal_uncached_over_a_history_of_changes(seed):
    """A BuildCache followed through a random history (endpoint changes, Services gaining or
    losing all endpoints, becoming NodePorts, changing ports, removed, added): every partial
    build equals the uncached partial build (text, counts, chains, deleted chains), and its
    delta equals that text trimmed against the previous build by an independent oracle."""
    rng = random.Random(5000 + seed)
    services, slices = cluster(rng, rng.randint(2, 30))
    cfg = ProxyConfig(large_cluster_threshold=rng.choice([1000, 30]), nfacct=rng.random() < 0.5)
    node = NodeInfo("n1", ("192.168.0.2",), "10.0.0.0/8", {"topology.kubernetes.io/zone": "a"})
    cache = BuildCache()
    sm, em = service_port_map(services, node), endpoints_by_service_port(slices, node)
    previous = build(sm, em, node, cfg, cache=cache)
    assert previous == build(sm, em, node, cfg)
    for step in range(12):
        changed, sm2, em2 = next_maps(rng, services, slices, step, node, sm, em)
        plain = build(sm2, em2, node, cfg, changed=changed, previous_chains=previous.chains)
        cached = build(sm2, em2, node, cfg, changed=changed, previous_chains=previous.chains, cache=cache)
        assert cached == plain
        assert cached.no_local_endpoints == plain.no_local_endpoints
        if cached.delta is not None:
            assert cached.delta == trim_against(previous.text, plain.text)
        previous, sm, em = cached, sm2, em2
    assert build(sm, em, node, cfg, cache=cache) == build(sm, em, node, cfg)   # and a full build


def next_maps(rng: random.Random, services: list[dict], slices: list[dict], step: int, node: NodeInfo,
              sm: dict, em: dict) -> tuple[set, dict, dict]:
    """One step of a random history: mutate 1-3 Services, return (changed, service map,
    endpoints map), where unchanged Services keep their very objects, as the change trackers do."""
    changed = set()
    for _ in range(rng.choice([1, 1, 2, 3])):
        changed |= _mutate(rng, services, slices, step)
    sm2, em2 = service_port_map(services, node), endpoints_by_service_port(slices, node)
    sm2 = {k: (sm[k] if sm.get(k) == v and k.service not in changed else v) for k, v in sm2.items()}
    em2 = {k: (em[k] if em.get(k) == v and k.service not in changed else v) for k, v in em2.items()}
    return changed, sm2, em2


def trim_against(previous: str, text: str) -> str:
    """The oracle for the builder's delta: ``text`` without the declarations and rules of the
    top-level chains whose rules are the same in ``previous`` (what the kernel holds once
    ``previous`` was restored), found by reading both texts."""
    from netemu.agent.proxy.iptables.chains import FILTER_TOP_CHAINS, KUBELET_FIREWALL, NAT_TOP_CHAINS

    top = {"filter": (*FILTER_TOP_CHAINS, KUBELET_FIREWALL), "nat": NAT_TOP_CHAINS}
    before, now = parse(previous, strict=True), parse(text, strict=True)

    def rules(dump, table, chain):
        c = dump.chain(table, chain)
        return None if c is None else [r.raw for r in c.rules]

    same = {(t, c) for t, chains in top.items() for c in chains
            if rules(now, t, c) is not None and rules(now, t, c) == rules(before, t, c)}
    out, table = [], ""
    for line in text.split("\n"):
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith((":", "-A ")) and (table, line.lstrip(":").split(" ")[0 if line[0] == ":" else 1]) in same:
            continue
        out.append(line)
    return "\n".join(out)


def test_cache_notices_changes_outside_changed():
    """A caller that names the wrong Service still gets the uncached builder's output: the
    cache's C-speed comparison catches the difference and checks every port."""
    rng = random.Random(7)
    services, slices = cluster(rng, 12)
    sm, em = service_port_map(services, NODE), endpoints_by_service_port(slices, NODE)
    cache = BuildCache()
    full = build(sm, em, NODE, cache=cache)
    target = sorted(sm)[3]
    em2 = dict(em)
    em2[target] = tuple(em.get(target, ()))[:1]
    wrong = {ServiceName("nowhere", "nothing")}
    assert build(sm, em2, NODE, changed=wrong, previous_chains=full.chains, cache=cache) == \
        build(sm, em2, NODE, changed=wrong, previous_chains=full.chains)


def test_one_service_partial_build_renders_only_that_service(monkeypatch):
    """The point of the cache: a partial build renders the changed Service and nothing else,
    and its delta holds only that Service's chains."""
    from netemu.agent.proxy.iptables import cache as cache_mod

    rng = random.Random(11)
    services, slices = cluster(rng, 30)
    sm, em = service_port_map(services, NODE), endpoints_by_service_port(slices, NODE)
    target = next(k for k in sorted(sm) if not sm[k].internal_policy_local)
    em[target] = (EndpointInfo("10.99.0.1", 80), EndpointInfo("10.99.0.2", 80))
    cache = BuildCache()
    full = build(sm, em, NODE, cache=cache)
    em2 = dict(em)
    em2[target] = tuple(em[target])[1:]
    rendered = []
    real = cache_mod.make_entry
    monkeypatch.setattr(cache_mod, "make_entry", lambda spn, *a: rendered.append(spn) or real(spn, *a))
    part = build(sm, em2, NODE, changed={target.service}, previous_chains=full.chains, cache=cache)
    assert rendered == [target]
    assert "KUBE-SERVICES" not in part.delta and "KUBE-NODEPORTS" not in part.delta
    assert part.delta.startswith("*filter\nCOMMIT\n*nat\n:KUBE-")
    assert part.deleted_chains and all(f"-X {c}" in part.delta for c in part.deleted_chains)
