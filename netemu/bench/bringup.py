"""Bring-up benchmark: `netemu up --nodes N` against Mininet alone with the same topology, and
the memory (PSS) of every netemu process, per node and in all, in one run.

    sudo .venv/bin/python -m netemu.bench.bringup --nodes 100 [--pods 1000] \\
        [--trees before=/tmp/base,after=/work/main] [--json OUT]

For each tree (a netemu source tree put first on PYTHONPATH; default: this one) and each
--nodes: (1) Mininet alone builds and starts the default topology's hosts and bridge under the
plan's names (netemu's network.build, nothing else) and stops it; (2) `netemu up --nodes N`
on its own state dir and node network, timed to every node Ready, with the supervisor's phase
times; then PSS (/proc/PID/smaps_rollup: shared pages divided among their users, so the sum
over processes is the real total) of every process of the cluster: per node (every process in
the node's namespace: node supervisor, runtime, kubelet, kube-proxy; or the one agent before),
the launcher template, the supervisor and the API server (whose RSS is reported too);
(3) with --pods, one agnhost Deployment (and a Service) scaled to that count, timed to all
Ready, and each pod's path stage by stage as watches see it (created, scheduled, sandbox = podIP,
running, Ready, ready endpoint in the Service's EndpointSlices), and how many rule syncs
every node's kube-proxy ran meanwhile and their seconds (its /metrics); (4) `netemu down`. Rounds alternate trees so that load on a shared box falls on both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netemu.bench.nodestages import NodeWatcher, proxy_syncs, sync_delta, summary as node_summary

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def smaps(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def netns_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


def env_for(tree: str | None) -> dict:
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = tree + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def mininet_alone(nodes: int, tree: str | None) -> float:
    """Seconds to build and start the plan's Mininet network (no netemu process), in a child
    Python of that tree, network then stopped."""
    code = ("import sys, time, tempfile\n"
            "from netemu.emulator import network\n"
            "from netemu.emulator.plan import make_plan\n"
            "from netemu.emulator.topoload import load_topo\n"
            "n, net_cidr = int(sys.argv[1]), sys.argv[2]\n"
            "topo = load_topo(f'topologies/cluster.py:ClusterTopo,{n}')\n"
            "plan = make_plan(topo, tempfile.mkdtemp(prefix='mn-alone-'), net_cidr)\n"
            "t = time.monotonic(); net = network.build(plan, topo, 'linuxbridge'); took = time.monotonic() - t\n"
            "network.stop(net)\nprint(took)\n")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code, str(nodes), node_network(nodes, 200 + os.getpid() % 50)],
                          capture_output=True, text=True, env=env_for(tree), cwd=str(root), timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"Mininet alone failed: {proc.stderr[-1500:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def processes(state: Path, doc: dict) -> list[tuple[int, str, str | None]]:
    """The cluster's processes as (pid, kind, node): kind is a node process's component
    (kube-proxy, kubelet, runtime, node-supervisor) or apiserver / supervisor / launcher."""
    nodes_ns = {}
    for name, n in doc["nodes"].items():
        pid = n.get("pid")
        if pid and n.get("role") != "control-plane":
            nodes_ns[netns_of(pid)] = name
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        line = cmd(pid)
        if "netemu" not in line or str(state) not in line:
            continue
        ns = netns_of(pid)
        if ns in nodes_ns:
            words = line.split()
            out.append((pid, words[1] if words and words[0] == "netemu" else "agent", nodes_ns[ns]))
        elif pid == doc.get("apiserver_pid"):
            out.append((pid, "apiserver", None))
        elif pid == doc.get("supervisor_pid"):
            out.append((pid, "supervisor", None))
        elif "zygote" in line:
            out.append((pid, "launcher", None))
    return out


def memory(state: Path, doc: dict) -> dict:
    """PSS (kB) of the cluster's processes, grouped: per node, template, supervisor, API server."""
    per_node: dict[str, int] = {}
    by_kind: dict[str, list[int]] = {}
    groups = {"launcher": 0, "supervisor": 0, "apiserver": 0}
    for pid, kind, node in processes(state, doc):
        pss = smaps(pid).get("Pss", 0)
        if node is not None:
            per_node[node] = per_node.get(node, 0) + pss
            by_kind.setdefault(kind, []).append(pss)
        else:
            groups[kind] += pss
    api = doc.get("apiserver_pid")
    rss = int(smaps(api).get("Rss", 0)) if api else 0
    total = sum(per_node.values()) + sum(groups.values())
    return {"total_pss_mb": round(total / 1024, 1),
            "per_node_pss_mb": round(statistics.mean(per_node.values()) / 1024, 2) if per_node else None,
            "per_process_pss_mb": {k: round(statistics.mean(v) / 1024, 2) for k, v in sorted(by_kind.items())},
            "apiserver_pss_mb": round(groups["apiserver"] / 1024, 1), "apiserver_rss_mb": round(rss / 1024, 1),
            "launcher_pss_mb": round(groups["launcher"] / 1024, 1),
            "supervisor_pss_mb": round(groups["supervisor"] / 1024, 1), "nodes_measured": len(per_node)}


def cpu_seconds(state: Path, doc: dict) -> dict[str, float]:
    """CPU seconds (user + system, reaped children included: kube-proxy's iptables-restore,
    the runtime's `ip`) each kind of the cluster's processes has used so far, summed."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for pid, kind, _ in processes(state, doc):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[kind] = out.get(kind, 0.0) + sum(int(f) for f in fields[11:15]) / tick
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 1) for k in sorted(after)}


STAGES = ("created", "scheduled", "sandbox", "running", "ready", "endpoint")


def stage_summary(times: dict[str, dict[str, float]], start: float) -> dict:
    """Per stage, p50/p99/max seconds each pod spent between the previous stage and this one,
    and when the last pod reached it (after ``start``). Pure."""
    out = {}
    for i, stage in enumerate(STAGES):
        deltas, ends = [], []
        for t in times.values():
            if stage in t:
                prev = t.get(STAGES[i - 1], start) if i else start
                deltas.append(t[stage] - prev)
                ends.append(t[stage] - start)
        if deltas:
            deltas.sort()
            out[stage] = {"p50": round(deltas[len(deltas) // 2], 2), "p99": round(deltas[int(len(deltas) * 0.99)], 2),
                          "max": round(deltas[-1], 2), "last_at": round(max(ends), 2), "pods": len(deltas)}
    return out


async def scale_pods(kubeconfig: str, count: int, timeout: float) -> tuple[float | None, dict]:
    """Scale one agnhost Deployment to ``count``; (seconds to all Ready or None after
    ``timeout``, per-stage summary),
    stages seen by watches on pods and EndpointSlices: created (first seen: the ReplicaSet
    controller made it), scheduled (nodeName), sandbox (podIP),
    running (container started), ready (Ready condition), endpoint (ready in a slice)."""
    from netemu.api.kinds import by_kind, by_kind_name
    from netemu.client import ApiClient
    deploy, pods_rt = by_kind_name("Deployment"), by_kind("v1", "Pod")
    slices_rt = by_kind("discovery.k8s.io/v1", "EndpointSlice")
    times: dict[str, dict[str, float]] = {}
    ips: dict[str, str] = {}

    def mark(uid: str, stage: str) -> None:
        times.setdefault(uid, {}).setdefault(stage, time.monotonic())

    async def watch_pods(api) -> None:
        async for _kind, pod in api.watch(pods_rt, "default", label_selector="app=bench"):
            uid, spec, status = pod["metadata"].get("uid"), pod.get("spec") or {}, pod.get("status") or {}
            if not uid:
                continue
            mark(uid, "created")
            if spec.get("nodeName"):
                mark(uid, "scheduled")
            if status.get("podIP"):
                ips[status["podIP"]] = uid
                mark(uid, "sandbox")
            if any("running" in (c.get("state") or {}) for c in status.get("containerStatuses") or []):
                mark(uid, "running")
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
                mark(uid, "ready")

    async def watch_slices(api) -> None:
        async for _kind, sl in api.watch(slices_rt, "default", label_selector="kubernetes.io/service-name=bench"):
            for ep in sl.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready"):
                    for addr in ep.get("addresses") or []:
                        if addr in ips:
                            mark(ips[addr], "endpoint")

    async with ApiClient.from_kubeconfig(kubeconfig, timeout=120) as api:
        await api.create(by_kind("v1", "Service"), {"metadata": {"name": "bench"}, "spec": {
            "selector": {"app": "bench"}, "ports": [{"port": 80, "targetPort": 8080}]}}, "default")
        await api.create(deploy, {"metadata": {"name": "bench"}, "spec": {
            "replicas": 0, "selector": {"matchLabels": {"app": "bench"}},
            "template": {"metadata": {"labels": {"app": "bench"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "a", "image": AGNHOST, "args": ["netexec", "--http-port=8080"]}]}}}},
            "default")
        watchers = [asyncio.ensure_future(watch_pods(api)), asyncio.ensure_future(watch_slices(api))]
        await asyncio.sleep(0.5)
        start = time.monotonic()
        try:
            await api.patch(deploy, "bench", {"spec": {"replicas": count}}, "default")
            while time.monotonic() - start < timeout:
                if sum(1 for t in times.values() if "ready" in t) >= count and \
                        sum(1 for t in times.values() if "endpoint" in t) >= count:
                    break
                await asyncio.sleep(0.2)
            else:      # not all Ready in time: the stages say how far each pod got
                return None, stage_summary(times, start)
            ready_at = max(t["ready"] for t in times.values() if "ready" in t) - start
        finally:
            for w in watchers:
                w.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
    return ready_at, stage_summary(times, start)


def netemu(tree: str | None, *words: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netemu", *words], capture_output=True, text=True,
                          env=env_for(tree), timeout=timeout, stdin=subprocess.DEVNULL,
                          cwd=tree or str(Path(__file__).resolve().parents[2]))


def node_network(nodes: int, third: int) -> str:
    """A /24 in 172.30/16 while the nodes fit one (with the plan's 56-address LB pool), else
    the /23 that holds that /24 (200 nodes: issue 17 asks for the attempt)."""
    if nodes <= 190:
        return f"172.30.{third}.0/24"
    return f"172.30.{third & ~1}.0/23"


def settle(load: float | None, limit: float = 900.0) -> float:
    """Wait until the 1-minute load average is at most ``load`` (at most ``limit`` s); the
    seconds waited. A 100-node run leaves a load of ~300 behind it that takes minutes to decay:
    without the wait, the second tree of a comparison starts on a box still busy with the
    first's teardown (it did, twice, on 2026-12-06)."""
    if load is None:
        return 0.0
    start = time.monotonic()
    while os.getloadavg()[0] > load and time.monotonic() - start < limit:
        time.sleep(5)
    return round(time.monotonic() - start, 1)


def one(tree_name: str, tree: str | None, nodes: int, pods: int, k: int, pods_timeout: float = 1800,
        variant: tuple[str, list[str]] = ("default", [])) -> dict:
    row: dict = {"tree": tree_name, "variant": variant[0], "nodes": nodes, "load_before": os.getloadavg()[0]}
    row["mininet_alone_s"] = round(mininet_alone(nodes, tree), 2)
    state = Path(tempfile.mkdtemp(prefix=f"netemu-bringup-{tree_name}-{nodes}-"))
    network = node_network(nodes, (os.getpid() + k) % 200)
    start = time.monotonic()
    with NodeWatcher(state / "kubeconfig") as watcher:
        proc = netemu(tree, "up", "--nodes", str(nodes), "--state-dir", str(state), "--node-network", network,
                      "--timeout", "1200", *variant[1])
    row["up_s"] = round(time.monotonic() - start, 1)
    try:
        if proc.returncode != 0:
            row["error"] = (proc.stdout + proc.stderr)[-1500:]
            return row
        row["ratio_to_mininet"] = round(row["up_s"] / row["mininet_alone_s"], 1)
        doc = json.loads((state / "cluster.json").read_text())
        row["phases"] = doc.get("timings")
        control = {name for name, n in doc["nodes"].items() if n.get("role") == "control-plane"}
        row["node_stages"] = node_summary(watcher.times, start, control)
        time.sleep(5)                         # start-up garbage trimmed, first syncs done
        row.update(memory(state, doc))
        if pods:
            row["pods"] = pods
            workers = {name: n["pid"] for name, n in doc["nodes"].items() if n.get("pid") and name not in control}
            syncs_before = proxy_syncs(workers)
            cpu_before, window = cpu_seconds(state, doc), time.monotonic()
            ready_s, stages = asyncio.run(scale_pods(str(state / "kubeconfig"), pods, pods_timeout))
            # where the box's CPU went, read before the metrics scrape below: under load,
            # asking 100 kube-proxies for /metrics took minutes, and their CPU counted here
            row["pods_cpu_s"] = cpu_delta(cpu_before, cpu_seconds(state, doc))
            row["pods_cpu_window_s"] = round(time.monotonic() - window, 1)
            row["pods_ready_s"] = round(ready_s, 1) if ready_s is not None else f"not all within {pods_timeout:g}s"
            row["pod_stages"] = stages
            row["proxy_syncs"] = sync_delta(syncs_before, proxy_syncs(workers))
            if ready_s is not None:
                row["up_plus_pods_s"] = round(row["up_s"] + ready_s, 1)
            time.sleep(5)
            after = memory(state, doc)
            row["total_pss_mb_with_pods"] = after["total_pss_mb"]
            row["per_node_pss_mb_with_pods"] = after["per_node_pss_mb"]
    finally:
        row["load_after"] = os.getloadavg()[0]
        down = netemu(tree, "down", "--state-dir", str(state))
        if down.returncode != 0:
            netemu(tree, "cleanup", "--state-dir", str(state))
        if down.returncode == 0 and "error" not in row:
            shutil.rmtree(state, ignore_errors=True)      # ~200 MB of logs at 100 nodes, per run
        else:
            row["state_dir"] = str(state)                 # kept: its logs say what went wrong
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", default="100", help="comma-separated cluster sizes")
    p.add_argument("--pods", type=int, default=0, help="pods to scale to after bring-up (0: none)")
    p.add_argument("--pods-timeout", type=float, default=1800, help="seconds the pods may take to be Ready")
    p.add_argument("--trees", default="", help="name=path,... source trees to compare (default: this one)")
    p.add_argument("--variants", default="", metavar="NAME=ARGS;...",
                   help="`netemu up` flags to compare on each tree, e.g. 'default=;sync10=--agent-arg=--min-sync-period=10'")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--settle-load", type=float, metavar="LOAD",
                   help="before each run, wait (up to 15 min) until the 1-minute load average is at most LOAD")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    trees = [tuple(t.split("=", 1)) for t in args.trees.split(",") if t] or [("this", None)]
    variants = [(v.split("=", 1)[0], shlex.split(v.split("=", 1)[1] if "=" in v else ""))
                for v in args.variants.split(";") if v] or [("default", [])]
    rows = []
    k = 0
    for _ in range(args.repeats):
        for n in [int(x) for x in args.nodes.split(",") if x]:
            for name, tree in trees:
                for variant in variants:
                    k += 1
                    waited = settle(args.settle_load)
                    row = one(name, tree, n, args.pods, k, args.pods_timeout, variant)
                    row["settle_s"] = waited
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
