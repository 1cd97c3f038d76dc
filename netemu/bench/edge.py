"""Benchmark of the emulated cloud's edge (``netemu up --edge``): what the provider load balancer
costs an internet client, and how long the cloud's node lifecycle takes.

    sudo .venv/bin/python -m netemu.bench.edge [--seconds 5] [--rounds 3] [--concurrency 8]

Brings up its own cluster (2 workers, ``--edge``, node-monitor-grace-period 6 s so a removed
node is noticed quickly), a 2-replica agnhost Deployment (one pod per node) behind two
LoadBalancer Services (externalTrafficPolicy Cluster and Local), and from the internet client
203.0.113.10, in one run, sends the same HTTP load (a connection per request), in interleaved
rounds (the median round per path is reported):

- through the provider LB to each Service's LoadBalancer IP;
- straight to the Cluster Service's NodePort on a worker (the same client, routed through the
  LB host, which then only forwards: the LB's own share is the difference).

Then it times how long the LB takes to stop sending ETP Local connections to a node whose pod
went (a scale-down: kube-proxy's healthCheckNodePort turns 503 there), ``netemu node add`` (host up to Node Ready) and ``netemu node remove --wait`` (host
gone to Node deleted by the cloud node-lifecycle controller). Prints markdown for
docs/benchmarks.md ("The edge") and takes the cluster down, also on failure.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from netemu.emulator.cloud.lbplan import STATUS_FILE
from netemu.emulator.state import read_json
from netemu.testing.cluster import NetemuCluster, wait_until
from netemu.testing.edge import healthy_targets
from netemu.traffic.spec import LoadSpec

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def objects() -> list[dict]:
    labels = {"app": "web"}
    spread = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": labels}}]
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
                      "spec": {"topologySpreadConstraints": spread, "terminationGracePeriodSeconds": 1,
                               "containers": [{"name": "a", "image": AGNHOST, "args": ["netexec", "--http-port=8080"]}]}}}},
            *({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"web-{etp.lower()}"},
               "spec": {"type": "LoadBalancer", "externalTrafficPolicy": etp, "selector": labels,
                        "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}} for etp in ("Cluster", "Local"))]


def row(label: str, r) -> str:
    lat = r.latency or {}
    return (f"| {label} | {r.throughput['requests_per_s']:.0f} | {(lat.get('p50') or 0) * 1000:.2f} | "
            f"{(lat.get('p99') or 0) * 1000:.2f} | {r.error_count} | "
            f"{', '.join(sorted({ip for ips in r.clientips.values() for ip in ips}))} |")


def median_run(results: list):
    """The run with the median requests/s (its latencies shown with it)."""
    return sorted(results, key=lambda r: r.throughput["requests_per_s"])[len(results) // 2]


def timed(fn) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def lb_convergence(c) -> float:
    """Seconds from scaling web to 1 replica until the LB sends web-local's new connections only
    to the node keeping the pod (the other fails kube-proxy's healthCheckNodePort ``fall`` times
    in a row), read from the LB's own report."""
    path = c.state_dir / STATUS_FILE

    def targets():
        doc = read_json(path) or {}
        return {tuple(lis["targets"]) for lis in doc.get("listeners") or [] if lis["service"] == "default/web-local"}
    start = time.monotonic()
    c.kubectl("scale", "deployment", "web", "--replicas=1")
    kept = c.wait_ready("app=web", 1)[0]["spec"]["nodeName"]
    wait_until("the LB sends web-local to one node", lambda: targets() == {(kept,)}, 60, 0.1)
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netemu.bench.edge", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="per run (default %(default)s)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median round per path is shown")
    args = p.parse_args(argv)
    spec = dict(duration=args.seconds, concurrency=args.concurrency, clientip_probes=6)
    with tempfile.TemporaryDirectory(prefix="netemu-bench-edge-") as tmp, \
            NetemuCluster(tmp, nodes=2, args=["--edge", "--apiserver-arg=--node-monitor-grace-period=6s"]) as c:
        c.apply(*objects())
        c.wait_ready("app=web", 2)
        edge = c.doc()["edge"]
        for name in ("web-cluster", "web-local"):
            wait_until(f"{name} healthy on both nodes",
                       lambda: healthy_targets(edge, f"default/{name}") == {"worker", "worker2"}, 60)
        c.traffic("external", "svc/web-cluster", LoadSpec(duration=2, concurrency=args.concurrency))   # warm-up
        paths = [("provider LB -> NodePort, ETP Cluster", "svc/web-cluster", {}),
                 ("provider LB -> NodePort, ETP Local", "svc/web-local", {}),
                 ("the NodePort on worker directly (ETP Cluster)", "svc/web-cluster", {"via": "nodeport", "node": "worker"})]
        runs: dict[str, list] = {label: [] for label, _, _ in paths}
        for k in range(args.rounds):          # interleaved, each round in another order: drift hits all alike
            for label, target, where in paths[k % 3:] + paths[:k % 3]:
                runs[label].append(c.traffic("external", target, LoadSpec(**spec), **where))
        rows = [(label, median_run(runs[label])) for label, _, _ in paths]
        state = str(c.state_dir)
        converge = lb_convergence(c)
        add = timed(lambda: c.netemu("node", "add", "worker3", "--state-dir", state, timeout=300))
        remove = timed(lambda: c.netemu("node", "remove", "worker3", "--wait", "--state-dir", state, timeout=300))
    print(f"{args.rounds} interleaved rounds of {args.seconds:g} s per path (the median round shown) from the internet client, {args.concurrency} concurrent closed loops, "
          f"a connection per request, GET /hostname\n")
    print("| path | requests/s | p50 ms | p99 ms | errors | client address the backend saw |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for label, r in rows:
        print(row(label, r))
    ratio = rows[0][1].throughput["requests_per_s"] / rows[2][1].throughput["requests_per_s"]
    print(f"\nLB (ETP Cluster) / NodePort direct requests/s: {ratio:.2f}")
    print(f"\nETP Local, web scaled 2 -> 1: the LB sends only to the node keeping the pod after {converge:.1f} s "
          f"(health checks every 2 s, 2 failures to fall)")
    print(f"\n`netemu node add worker3` (to Ready): {add:.1f} s; "
          f"`netemu node remove worker3 --wait` (to the Node deleted, grace period 6 s): {remove:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
