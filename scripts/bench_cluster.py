#!/usr/bin/env python3
"""Cluster bring-up benchmark: time and memory of nodes and pods, and network programming latency.

    .venv/bin/python scripts/bench_cluster.py [--nodes 10,50,100] [--pods 100,500,1000 --pod-nodes 10]
                                              [--latency-nodes 50 --changes 20] [--json OUT]

Three experiments, each on its own cluster (own state dir under /tmp, own node network
172.30.<k>.0/24), each taken down at the end, also on failure:

1. bring-up: ``netemu up --nodes N`` wall time until every node is Ready, then RSS of every node
   agent (kubelet + kube-proxy in one process) and of the API server, read from /proc.
2. pods: on a ``--pod-nodes`` cluster, one agnhost netexec Deployment (a built-in image: no
   process per pod) scaled to each ``--pods`` count in turn; time from the scale until every
   replica is Ready, and the agents' RSS growth per pod (the sum over every agent).
3. network programming: on a ``--latency-nodes`` cluster, ``--changes`` Services created one at a
   time; for each, the time from the create call until its ClusterIP rule is in every node's
   kernel, seen by ``nft monitor rules`` in each node namespace (event-driven, no polling; the
   iptables nft backend is the default here). p50/p99 over every (change, node) pair, and over
   the per-change slowest node ("live on every node").

Numbers go to stdout as a table and, with --json, to a file; docs/benchmarks.md ("Cluster
bring-up") keeps the measured ones with the command used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netemu.api import kinds  # noqa: E402
from netemu.client import ApiClient  # noqa: E402

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def netemu(*words: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netemu", *words], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


class Cluster:
    def __init__(self, nodes: int, k: int):
        self.nodes = nodes
        self.state = Path(tempfile.mkdtemp(prefix=f"netemu-bench-{nodes}-"))
        self.network = f"172.30.{(os.getpid() + k) % 250}.0/24"

    def __enter__(self) -> "Cluster":
        start = time.monotonic()
        proc = netemu("up", "--nodes", str(self.nodes), "--state-dir", str(self.state),
                      "--node-network", self.network, "--timeout", "900")
        self.up_seconds = time.monotonic() - start
        if proc.returncode != 0:
            netemu("cleanup", "--state-dir", str(self.state))
            raise RuntimeError(f"netemu up --nodes {self.nodes} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        self.doc = json.loads((self.state / "cluster.json").read_text())
        return self

    def __exit__(self, *exc) -> None:
        start = time.monotonic()
        proc = netemu("down", "--state-dir", str(self.state))
        self.down_seconds = time.monotonic() - start
        if proc.returncode != 0:
            print(f"netemu down failed: {proc.stderr[-500:]}; cleanup", file=sys.stderr)
            netemu("cleanup", "--state-dir", str(self.state))

    def agent_pids(self) -> dict[str, int]:
        return {n: int(v["agent_pid"]) for n, v in self.doc["nodes"].items() if v.get("agent_pid")}

    def agent_rss(self) -> list[int]:
        return [rss_kb(pid) for pid in self.agent_pids().values()]

    def client(self) -> ApiClient:
        return ApiClient.from_kubeconfig(str(self.state / "kubeconfig"), timeout=120)


def bench_bringup(n: int, k: int) -> dict:
    with Cluster(n, k) as cl:
        rss = cl.agent_rss()
        apiserver = cl.doc.get("apiserver_pid")
        row = {"nodes": n, "up_s": round(cl.up_seconds, 1), "agents": len(rss),
               "agent_rss_mb_mean": round(statistics.mean(rss) / 1024, 1) if rss else None,
               "agent_rss_mb_max": round(max(rss) / 1024, 1) if rss else None,
               "apiserver_rss_mb": round(rss_kb(apiserver) / 1024, 1) if apiserver else None}
    row["down_s"] = round(cl.down_seconds, 1)
    return row


async def _scale_and_wait(api: ApiClient, replicas: int, timeout: float) -> float:
    deploy = kinds.by_kind_name("Deployment")
    start = time.monotonic()
    await api.patch(deploy, "bench", {"spec": {"replicas": replicas}}, "default")
    while time.monotonic() - start < timeout:
        obj = await api.get(deploy, "bench", "default")
        if (obj.get("status") or {}).get("readyReplicas", 0) >= replicas:
            return time.monotonic() - start
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{replicas} pods not Ready within {timeout}s")


async def _pods(cl: Cluster, counts: list[int], timeout: float) -> list[dict]:
    deploy = kinds.by_kind_name("Deployment")
    base = sum(cl.agent_rss())
    rows = []
    async with cl.client() as api:
        await api.create(deploy, {"metadata": {"name": "bench"}, "spec": {
            "replicas": 0, "selector": {"matchLabels": {"app": "bench"}},
            "template": {"metadata": {"labels": {"app": "bench"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "a", "image": AGNHOST, "args": ["netexec", "--http-port=8080"]}]}}}},
            "default")
        for count in counts:
            seconds = await _scale_and_wait(api, count, timeout)
            await asyncio.sleep(2)       # let the agents settle before reading RSS
            grown = sum(cl.agent_rss()) - base
            rows.append({"nodes": cl.nodes, "pods": count, "ready_s": round(seconds, 1),
                         "rss_kb_per_pod": round(grown / count, 1),
                         "apiserver_rss_mb": round(rss_kb(cl.doc.get("apiserver_pid") or 0) / 1024, 1)})
    return rows


def bench_pods(nodes: int, counts: list[int], k: int, timeout: float) -> list[dict]:
    with Cluster(nodes, k) as cl:
        rows = asyncio.run(_pods(cl, counts, timeout))
        for row in rows:
            row["up_s"] = round(cl.up_seconds, 1)
    return rows


class RuleWatch:
    """``nft monitor rules`` in every node namespace; a reader thread per node puts
    (time, node, line) on one queue as the kernel reports each added rule."""

    def __init__(self, netns: dict[str, str]):
        self.events: queue.Queue = queue.Queue()
        self.procs = []
        for node, ns in netns.items():
            proc = subprocess.Popen(["ip", "netns", "exec", ns, "nft", "monitor", "rules"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(node, proc), daemon=True).start()

    def _read(self, node: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            if line.startswith("add rule") and " daddr " in line:
                self.events.put((time.monotonic(), node, line))

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _latency(cl: Cluster, changes: int, timeout: float, pause: float) -> dict:
    """``pause`` between changes: kube-proxy syncs at most ~once per min sync period (1 s, burst
    2, like upstream), and a Service create costs two syncs (Service, then its EndpointSlice), so
    changes closer than 2 s apart measure that rate limit rather than programming latency."""
    svc_rt = kinds.by_kind_name("Service")
    deploy = kinds.by_kind_name("Deployment")
    nodes = {n: v["netns"] for n, v in cl.doc["nodes"].items() if v.get("role") != "control-plane"}
    per_pair, per_change = [], []
    async with cl.client() as api:
        await api.create(deploy, {"metadata": {"name": "lat"}, "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "lat"}},
            "template": {"metadata": {"labels": {"app": "lat"}}, "spec": {"containers": [
                {"name": "a", "image": AGNHOST, "args": ["netexec", "--http-port=8080"]}]}}}}, "default")
        start = time.monotonic()
        while ((await api.get(deploy, "lat", "default")).get("status") or {}).get("readyReplicas", 0) < 2:
            if time.monotonic() - start > timeout:
                raise RuntimeError("latency backends not Ready")
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)
        watch = RuleWatch(nodes)
        try:
            await asyncio.sleep(1)
            for i in range(changes):
                t0 = time.monotonic()
                svc = await api.create(svc_rt, {"metadata": {"name": f"lat-{i}"}, "spec": {
                    "selector": {"app": "lat"}, "ports": [{"port": 80, "targetPort": 8080}]}}, "default")
                ip = f"daddr {svc['spec']['clusterIP']} "
                seen: dict[str, float] = {}
                deadline = t0 + timeout
                while len(seen) < len(nodes) and time.monotonic() < deadline:
                    try:
                        t, node, line = await asyncio.to_thread(watch.events.get, True, 0.5)
                    except queue.Empty:
                        continue
                    if ip in line and node not in seen:
                        seen[node] = t - t0
                if len(seen) < len(nodes):
                    raise RuntimeError(f"change {i}: rule live on {len(seen)}/{len(nodes)} nodes in {timeout}s")
                per_pair.extend(seen.values())
                per_change.append(max(seen.values()))
                await asyncio.sleep(pause)
        finally:
            watch.close()
    return {"nodes": len(nodes), "changes": changes, "pause_s": pause,
            "pair_p50_s": round(pct(per_pair, 0.5), 3), "pair_p99_s": round(pct(per_pair, 0.99), 3),
            "all_nodes_p50_s": round(pct(per_change, 0.5), 3), "all_nodes_p99_s": round(pct(per_change, 0.99), 3)}


def bench_latency(nodes: int, changes: int, k: int, timeout: float, pause: float) -> dict:
    with Cluster(nodes, k) as cl:
        return asyncio.run(_latency(cl, changes, timeout, pause))


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", default="10,50,100", help="bring-up sizes ('' to skip)")
    p.add_argument("--pods", default="100,500,1000", help="pod counts ('' to skip)")
    p.add_argument("--pod-nodes", type=int, default=10, help="nodes of the pods cluster")
    p.add_argument("--latency-nodes", type=int, default=50, help="nodes of the latency cluster (0: skip)")
    p.add_argument("--changes", type=int, default=20, help="Service creations timed")
    p.add_argument("--pause", type=float, default=2.0,
                   help="seconds between changes (default %(default)s: min sync period x burst)")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_cluster: run as root (it builds clusters on Mininet)", file=sys.stderr)
        return 2
    results: dict = {"bringup": [], "pods": [], "latency": None}
    for k, n in enumerate(_ints(args.nodes)):
        row = bench_bringup(n, k)
        results["bringup"].append(row)
        print("bring-up", json.dumps(row), flush=True)
    if _ints(args.pods):
        for row in bench_pods(args.pod_nodes, _ints(args.pods), 100, args.timeout):
            results["pods"].append(row)
            print("pods", json.dumps(row), flush=True)
    if args.latency_nodes:
        results["latency"] = bench_latency(args.latency_nodes, args.changes, 150, args.timeout, args.pause)
        print("latency", json.dumps(results["latency"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
