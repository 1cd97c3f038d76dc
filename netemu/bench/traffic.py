"""Traffic benchmarks (numbers in docs/benchmarks.md), each a ratio of two things in one run.

``python -m netemu.bench.traffic ceiling``: the generator against wrk (Debian's), both sending
to the same built-in agnhost netexec on loopback, new connections (``Connection: close``) and
keep-alive; interleaved rounds. Equal rates mean the backend, not the generator, is the limit.

``python -m netemu.bench.traffic service``: a cluster (netemu up, 2 workers), one netexec
replica and a client pod on the other node; new connections per second and request latency to
the Service's ClusterIP and straight to the pod IP, interleaved rounds (target: ClusterIP >=
0.8 x direct).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from netemu.traffic.run import Scope, TrafficRun
from netemu.traffic.spec import LoadSpec, Target

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ours(port: int, seconds: float, conns: int, keepalive: bool) -> float:
    spec = LoadSpec(duration=seconds, concurrency=conns, keepalive=keepalive, clientip_probes=0)
    r = asyncio.run(TrafficRun(Target("127.0.0.1", port), spec, scope=Scope.of([])).run())
    assert r.error_count == 0, r.errors
    return r.ok / r.elapsed


def _wrk(port: int, seconds: float, conns: int, keepalive: bool) -> float:
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", f"http://127.0.0.1:{port}/hostname"]
    if not keepalive:
        argv[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def ceiling(rounds: int, seconds: float, conns: int) -> dict:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "netemu.testing.netexec", "bench", f"--http-port={port}",
                               "--udp-port=-1"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        out = {}
        for keepalive in (False, True):
            ours, wrk = [], []
            for _ in range(rounds):
                ours.append(_ours(port, seconds, conns, keepalive))
                wrk.append(_wrk(port, seconds, conns, keepalive))
            key = "keepalive" if keepalive else "new_connections"
            out[key] = {"netemu_rps": statistics.median(ours), "wrk_rps": statistics.median(wrk),
                        "ratio": statistics.median(ours) / statistics.median(wrk)}
        return out
    finally:
        server.terminate()
        server.wait(10)


def service(rounds: int, connections: int, conns: int) -> dict:
    from netemu.testing.cluster import NetemuCluster

    with tempfile.TemporaryDirectory(prefix="netemu-bench-traffic-") as state, \
            NetemuCluster(state, nodes=2) as c:
        backend_node, client_node = c.workers()
        c.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
                 "spec": {"nodeName": backend_node, "containers": [{"name": "a", "image": AGNHOST,
                          "args": ["netexec", "--http-port=8080"]}]}},
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                 "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
                 "spec": {"nodeName": client_node, "containers": [{"name": "p", "image": "registry.k8s.io/pause:3.9"}]}})
        c.wait_ready("app=web", 1)
        time.sleep(2)                     # the client node's rules for the Service
        results: dict[str, list] = {"clusterip": [], "direct": []}
        for _ in range(rounds):
            for name, target in (("clusterip", "svc/web:80"), ("direct", "pod/web:8080")):
                r = c.traffic("client", target, connections=connections, concurrency=conns, clientip_probes=0)
                assert r.error_count == 0, r.errors
                results[name].append((r.connections / r.elapsed, r.latency["p50"], r.latency["p99"],
                                      r.connect["p50"]))
        out = {}
        for name, rows in results.items():
            out[name] = {"connections_per_s": statistics.median(x[0] for x in rows),
                         "request_p50_ms": statistics.median(x[1] for x in rows) * 1e3,
                         "request_p99_ms": statistics.median(x[2] for x in rows) * 1e3,
                         "connect_p50_ms": statistics.median(x[3] for x in rows) * 1e3}
        out["ratio_clusterip_to_direct"] = out["clusterip"]["connections_per_s"] / out["direct"]["connections_per_s"]
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netemu.bench.traffic", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("ceiling", help="the generator vs wrk on loopback")
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--seconds", type=float, default=3.0)
    c.add_argument("--connections", type=int, default=16)
    s = sub.add_parser("service", help="ClusterIP vs pod IP on a cluster (root)")
    s.add_argument("--rounds", type=int, default=5)
    s.add_argument("--requests", type=int, default=3000)
    s.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args(argv)
    if args.what == "ceiling":
        out = ceiling(args.rounds, args.seconds, args.connections)
    else:
        out = service(args.rounds, args.requests, args.concurrency)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
