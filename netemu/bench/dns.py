"""Benchmark of the cluster DNS: queries/s and latency from a pod, through the kube-dns ClusterIP
(kube-proxy's DNAT to one of the two CoreDNS pods) and, in the same run, straight to one DNS
pod's IP (what the ClusterIP costs).

    sudo .venv/bin/python -m netemu.bench.dns [--seconds 10] [--concurrency 8] [--nodes 2]

Brings up its own small cluster (netemu.testing.cluster: own state dir and node network), asks
a closed-loop load of A queries for a Service name from a client pod (a fresh socket per query,
as a stub resolver), prints a markdown table for docs/benchmarks.md ("Cluster DNS"), and takes
the cluster down, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile

from netemu.agent.runtime.names import pod_netns_of
from netemu.testing.cluster import NetemuCluster, wait_until
from netemu.testing.dnsclient import CLUSTER_DNS, load

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
NAMES = ["web.default.svc.cluster.local", "kube-dns.kube-system.svc.cluster.local"]


def objects() -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
             "spec": {"containers": [{"name": "c", "image": AGNHOST, "args": ["pause"]}]}}]


def row(label: str, r) -> str:
    return (f"| {label} | {r.qps:.0f} | {r.percentile(50) * 1000:.2f} | {r.percentile(99) * 1000:.2f} | "
            f"{r.timeouts} | {r.answered} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netemu.bench.dns", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--nodes", type=int, default=2)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="netemu-bench-dns-") as tmp, NetemuCluster(tmp, nodes=args.nodes) as c:
        c.apply(*objects())
        wait_until("client running", lambda: c.get("pod", "client")["status"].get("phase") == "Running", 60)
        netns = pod_netns_of(c.get("pod", "client"))
        dns_pod = c.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"][0]["status"]["podIP"]
        asyncio.run(load(netns, NAMES, 2, args.concurrency))       # warm-up (caches, conntrack)
        via_service = asyncio.run(load(netns, NAMES, args.seconds, args.concurrency))
        direct = asyncio.run(load(netns, NAMES, args.seconds, args.concurrency, server=dns_pod))
    print(f"{args.seconds:g} s each, {args.concurrency} concurrent closed loops, A queries, {args.nodes} workers\n")
    print("| target | queries/s | p50 ms | p99 ms | timeouts | answered |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(row(f"kube-dns ClusterIP {CLUSTER_DNS} (2 CoreDNS pods)", via_service))
    print(row("one CoreDNS pod's IP directly", direct))
    print(f"\nClusterIP / direct queries/s: {via_service.qps / direct.qps:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
