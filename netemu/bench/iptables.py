"""Benchmark of the pure rule builder (no kernel, no root): how long syncProxyRules' CPU half takes.

For each scale (Services x endpoints), in one run:
  parse   - Service/EndpointSlice dicts -> model maps (the trackers do this per change)
  cold    - full build with an empty chain-name cache (first sync after start)
  warm    - full build again (every later full sync; median of --repeats)
  partial - one Service changed (one endpoint replaced), KEP-3453 partial build
  cached  - warm full / partial builds again with a BuildCache kept across syncs
Ratios are taken within the run (warm/cold, partial/warm, warm against the 0.5 s budget).
Times are CPU seconds of this process (time.process_time): the builder is pure CPU, and on a
shared machine wall-clock time mostly measures the neighbours.
Kernel-side costs (restore, delta restore) are measured by scripts/bench_proxy.py.

    .venv/bin/python -m netemu.bench.iptables [--scales 1000,5000,10000] [--endpoints 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from netemu.agent.proxy import hashing
from netemu.agent.proxy.iptables.builder import BuildCache, build
from netemu.agent.proxy.model import NodeInfo, ProxyConfig, ServiceName, endpoints_by_service_port, service_port_map

NODE = NodeInfo("bench", ("172.18.0.2",), "10.244.0.0/16")
BUDGET_S = 0.5


def _objects(n: int, eps: int, shift: int = 0) -> tuple[list[dict], list[dict]]:
    services, slices = [], []
    for i in range(n):
        services.append({"metadata": {"namespace": f"ns{i % 50}", "name": f"svc{i}"},
                         "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                                  "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        addrs = []
        for k in range(eps):
            j = i * (eps + 1) + k + 1 + shift
            addrs.append({"addresses": [f"10.{128 + j // 65536}.{j // 256 % 256}.{j % 256}"], "nodeName": "other"})
        slices.append({"metadata": {"namespace": f"ns{i % 50}", "name": f"svc{i}-x",
                                    "labels": {"kubernetes.io/service-name": f"svc{i}"}},
                       "addressType": "IPv4", "endpoints": addrs,
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    return services, slices


def _timed(fn, *args, **kw):
    t0 = time.process_time()
    out = fn(*args, **kw)
    return time.process_time() - t0, out


def bench(n: int, eps: int, repeats: int) -> dict:
    services, slices = _objects(n, eps)
    parse_s, (sm, em) = _timed(lambda: (service_port_map(services, NODE), endpoints_by_service_port(slices, NODE)))
    hashing.port_proto_hash.cache_clear()
    hashing.endpoint_chain.cache_clear()
    cfg = ProxyConfig()
    cold_s, full = _timed(build, sm, em, NODE, cfg)
    warm = [_timed(build, sm, em, NODE, cfg)[0] for _ in range(repeats)]
    # one Service changes: its first endpoint is replaced by the spare address
    changed_slice = _objects(1, eps, shift=1)[1][0]
    em2 = dict(em)
    em2.update(endpoints_by_service_port([changed_slice], NODE))
    partial = [_timed(build, sm, em2, NODE, cfg, changed={ServiceName("ns0", "svc0")},
                      previous_chains=full.chains)[0] for _ in range(repeats)]
    part_rs = build(sm, em2, NODE, cfg, changed={ServiceName("ns0", "svc0")}, previous_chains=full.chains)
    cache = BuildCache()
    build(sm, em, NODE, cfg, cache=cache)
    warm_cached = [_timed(build, sm, em, NODE, cfg, cache=cache)[0] for _ in range(repeats)]
    partial_cached = [_timed(build, sm, em2, NODE, cfg, changed={ServiceName("ns0", "svc0")},
                             previous_chains=full.chains, cache=cache)[0] for _ in range(repeats)]
    return {"services": n, "endpoints": n * eps, "nat_rules": full.rule_counts["nat"],
            "mib": len(full.text) / 2**20, "parse": parse_s, "cold": cold_s, "warm": statistics.median(warm),
            "partial": statistics.median(partial), "partial_rules": part_rs.written_counts["nat"],
            "large": full.large_cluster, "warm_cached": statistics.median(warm_cached),
            "partial_cached": statistics.median(partial_cached)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1000,5000,10000")
    ap.add_argument("--endpoints", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    print("| services | endpoints | nat rules | text MiB | parse (s) | build cold (s) | build warm (s) "
          "| partial build (s) | partial/warm | warm/budget 0.5 s | warm, cached (s) | partial, cached (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.scales.split(",")):
        r = bench(n, args.endpoints, args.repeats)
        print(f"| {r['services']} | {r['endpoints']} | {r['nat_rules']} | {r['mib']:.1f} | {r['parse']:.3f} "
              f"| {r['cold']:.3f} | {r['warm']:.3f} | {r['partial']:.3f} ({r['partial_rules']} rules) "
              f"| {r['partial'] / r['warm']:.2f} | {r['warm'] / BUDGET_S:.2f} "
              f"| {r['warm_cached']:.3f} | {r['partial_cached']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
