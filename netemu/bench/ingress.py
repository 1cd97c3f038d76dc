"""Benchmark of the ingress controller: HTTP requests/s from a pod through the Ingress (the
controller's ClusterIP, Host header of the rule) against the same requests straight to the
backend Service's ClusterIP, in one run, with netemu.traffic.

    sudo .venv/bin/python -m netemu.bench.ingress [--seconds 10] [--concurrency 8] [--keepalive]

Brings up its own cluster (2 workers, add-ons coredns and ingress-nginx), a 2-replica agnhost
Deployment with its Service and an Ingress for it, and a client pod; prints a markdown table for
docs/benchmarks.md ("Ingress") and takes the cluster down, also on failure.
"""

from __future__ import annotations

import argparse
import tempfile

from netemu.testing.cluster import NetemuCluster, wait_until
from netemu.traffic.spec import LoadSpec

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
HOST = "web.example.com"


def objects() -> list[dict]:
    labels = {"app": "web"}
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
                      "spec": {"containers": [{"name": "a", "image": AGNHOST, "args": ["netexec", "--http-port=8080"]}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
            {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
             "spec": {"rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                 "service": {"name": "web", "port": {"number": 80}}}}]}}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
             "spec": {"containers": [{"name": "c", "image": AGNHOST, "args": ["pause"]}]}}]


def row(label: str, r) -> str:
    lat = r.latency or {}
    return (f"| {label} | {r.throughput['requests_per_s']:.0f} | {(lat.get('p50') or 0) * 1000:.2f} | "
            f"{(lat.get('p99') or 0) * 1000:.2f} | {r.error_count} | "
            f"{', '.join(f'{k}: {v}' for k, v in sorted(r.endpoints.items()))} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netemu.bench.ingress", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--keepalive", action="store_true", help="persistent client connections (default: one per request)")
    args = p.parse_args(argv)
    spec = dict(duration=args.seconds, concurrency=args.concurrency, keepalive=args.keepalive)
    with tempfile.TemporaryDirectory(prefix="netemu-bench-ingress-") as tmp, \
            NetemuCluster(tmp, nodes=2, args=["--addons", "coredns,ingress-nginx"]) as c:
        c.apply(*objects())
        c.wait_ready("app=web", 2)
        wait_until("client running", lambda: c.get("pod", "client")["status"].get("phase") == "Running", 60)
        vip = c.get("svc", "-n", "ingress-nginx", "ingress-nginx-controller")["spec"]["clusterIP"]
        wait_until("the Ingress routed", lambda: c.traffic("client", f"{vip}:80", LoadSpec(requests=2, host=HOST)).ok, 30)
        c.traffic("client", "svc/web:80", LoadSpec(duration=2, concurrency=args.concurrency))       # warm-up
        via_ingress = c.traffic("client", f"{vip}:80", LoadSpec(host=HOST, **spec))
        direct = c.traffic("client", "svc/web:80", LoadSpec(**spec))
    print(f"{args.seconds:g} s each, {args.concurrency} concurrent closed loops, "
          f"{'keep-alive' if args.keepalive else 'a connection per request'}, GET /hostname\n")
    print("| path | requests/s | p50 ms | p99 ms | errors | answers per endpoint |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(row(f"Ingress ({HOST}) via the controller's ClusterIP", via_ingress))
    print(row("the Service's ClusterIP directly", direct))
    ratio = via_ingress.throughput["requests_per_s"] / direct.throughput["requests_per_s"]
    print(f"\nIngress / direct requests/s: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
