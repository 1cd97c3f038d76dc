"""Tracer at scale: a correctness test on a many-Service dump, and (run as a module) the benchmark.

    .venv/bin/python -m tests.unit.test_trace_bench            # --scales 1000,10000 --repeats 3

The benchmark compares, in one run over the same text, our builder's render time with the
parser's time (so the ratio survives a noisy machine), and tracing the first Service in
KUBE-SERVICES with the last one (the walk is linear in the rules before the match, like the
kernel's). No timing is asserted in the test.
"""

from __future__ import annotations

import argparse
import statistics
import time

from netemu.agent.proxy.iptables import UPSTREAM_TEST_NODE, render
from netemu.agent.proxy.xtables.dump import parse
from netemu.agent.proxy.iptables.trace import Tracer
from netemu.agent.proxy.tracing import Packet


def cluster(n: int, endpoints: int = 5) -> tuple[list[dict], list[dict]]:
    def ip(i: int) -> str:
        return f"172.30.{i // 250}.{i % 250 + 1}"
    services = [{"metadata": {"namespace": "ns", "name": f"s{i}"},
                 "spec": {"clusterIP": ip(i), "ports": [{"name": "p", "port": 80, "protocol": "TCP"}]}}
                for i in range(n)]
    slices = [{"metadata": {"namespace": "ns", "name": f"s{i}-1", "labels": {"kubernetes.io/service-name": f"s{i}"}},
               "addressType": "IPv4", "ports": [{"name": "p", "port": 80, "protocol": "TCP"}],
               "endpoints": [{"addresses": [f"10.{i // 250}.{i % 250}.{j + 1}"]} for j in range(endpoints)]}
              for i in range(n)]
    return services, slices


def _vip(i: int) -> str:
    return f"172.30.{i // 250}.{i % 250 + 1}"


def test_first_and_last_of_many_services():
    n = 600
    text = render(*cluster(n), UPSTREAM_TEST_NODE).text
    tracer = Tracer(parse(text))
    for i in (0, n // 2, n - 1):
        result = tracer.trace(Packet("10.0.0.2", _vip(i), 80), ["192.168.0.2"])
        eps = result.endpoints()
        assert sorted(eps) == [f"10.{i // 250}.{i % 250}.{j}:80" for j in range(1, 6)]
        assert abs(sum(eps.values()) - 1.0) < 1e-9 and all(abs(p - 0.2) < 1e-9 for p in eps.values())


def bench(n: int, repeats: int) -> dict[str, float]:
    services, slices = cluster(n)
    times: dict[str, list[float]] = {k: [] for k in ("build", "parse", "setup", "first", "last")}
    for _ in range(repeats):
        t0 = time.perf_counter()
        text = render(services, slices, UPSTREAM_TEST_NODE).text
        t1 = time.perf_counter()
        dump = parse(text)
        t2 = time.perf_counter()
        tracer = Tracer(dump)
        t3 = time.perf_counter()
        tracer.trace(Packet("10.0.0.2", _vip(0), 80), ["192.168.0.2"])
        t4 = time.perf_counter()
        tracer.trace(Packet("10.0.0.2", _vip(n - 1), 80), ["192.168.0.2"])
        t5 = time.perf_counter()
        for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            times[k].append(v)
    out = {k: statistics.median(v) for k, v in times.items()}
    out["lines"] = len(text.splitlines())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1000,10000")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print("| Services x 5 eps | dump lines | build (ours) | parse | parse/build | tracer setup "
          "| trace 1st Service | trace last Service |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.scales.split(",")):
        r = bench(n, args.repeats)
        print(f"| {n} | {r['lines']} | {r['build']:.2f} s | {r['parse']:.2f} s | {r['parse'] / r['build']:.2f} "
              f"| {r['setup'] * 1000:.0f} ms | {r['first'] * 1000:.1f} ms | {r['last'] * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
