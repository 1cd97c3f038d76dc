#!/usr/bin/env python3
"""Control-plane benchmark: scheduling throughput and scale -> EndpointSlice latency.

Starts a real ``netemu apiserver`` (controllers inside) on a free loopback port with a temp state
dir, KWOK-style nodes (netemu.testing.fakenodes) in this process, and measures:

1. pods scheduled per second, N nodes x M pods, for plain pods (resources only) and, in the
   same run, for pods with a DoNotSchedule topology spread constraint (the costlier plugins);
   time from the first create to the last binding, seen on a pod watch;
2. ``kubectl scale`` -> EndpointSlice updated: time from starting kubectl to the slices
   showing the new number of ready endpoints (watch), p50/p99; in the same run the same through
   a direct PATCH of the scale subresource, which tells kubectl's own start-up cost apart.

    .venv/bin/python scripts/bench_controlplane.py --nodes 100 --pods 1000 --scales 40
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netemu.client import ApiClient  # noqa: E402
from netemu.testing.fakenodes import FakeKubelet, node_object  # noqa: E402
from netemu.controllers.kube import labels_of, name_of  # noqa: E402
from netemu.controllers.runtime import rt  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_apiserver(state: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "netemu", "apiserver", "--listen", f"127.0.0.1:{free_port()}",
            "--state-dir", str(state), "--node-monitor-grace-period", "600s"]
    log = open(state / "apiserver.log", "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"apiserver exited: {(state / 'apiserver.log').read_text()[-2000:]}")
        if "kubeconfig:" in (state / "apiserver.log").read_text():
            return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("apiserver did not start")


def pod(name: str, ns: str, spread: bool) -> dict:
    spec = {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    if spread:
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                              "whenUnsatisfiable": "DoNotSchedule",
                                              "labelSelector": {"matchLabels": {"group": ns}}}]
    return {"metadata": {"name": name, "labels": {"group": ns}}, "spec": spec}


async def schedule_run(client: ApiClient, ns: str, count: int, spread: bool, concurrency: int = 16) -> dict:
    await client.create(rt("Namespace"), {"metadata": {"name": ns}})
    listed = await client.list(rt("Pod"), ns)
    bound: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        async for kind, obj in client.watch(rt("Pod"), ns, resource_version=listed.resource_version):
            if kind in ("ADDED", "MODIFIED") and (obj.get("spec") or {}).get("nodeName"):
                bound.setdefault(name_of(obj), time.monotonic())
                if len(bound) >= count:
                    done.set()
                    return
    watcher = asyncio.ensure_future(watch())
    names = [f"p{i}" for i in range(count)]
    t0 = time.monotonic()

    async def creator(chunk: list[str]) -> None:
        for n in chunk:
            await client.create(rt("Pod"), pod(n, ns, spread), ns)
    await asyncio.gather(*(creator(names[i::concurrency]) for i in range(concurrency)))
    t_created = time.monotonic()
    await asyncio.wait_for(done.wait(), timeout=600)
    watcher.cancel()
    t_last = max(bound.values())
    return {"pods": count, "create_s": t_created - t0, "total_s": t_last - t0, "per_s": count / (t_last - t0)}


async def ready_endpoints(client: ApiClient, ns: str, svc: str) -> int:
    slices = (await client.list(rt("EndpointSlice"), ns)).items
    return sum(1 for s in slices if labels_of(s).get("kubernetes.io/service-name") == svc
               for e in s.get("endpoints") or [] if e["conditions"].get("ready"))


async def scale_latency(client: ApiClient, kubeconfig: Path, ns: str, iterations: int, use_kubectl: bool) -> list[float]:
    svc = "web"
    out: list[float] = []
    state = {"ready": await ready_endpoints(client, ns, svc)}
    listed = await client.list(rt("EndpointSlice"), ns)
    changed = asyncio.Event()
    slices: dict[str, dict] = {name_of(s): s for s in listed.items}

    async def watch() -> None:
        async for kind, obj in client.watch(rt("EndpointSlice"), ns, resource_version=listed.resource_version):
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                slices.pop(name_of(obj), None)
            else:
                slices[name_of(obj)] = obj
            state["ready"] = sum(1 for s in slices.values() for e in s.get("endpoints") or []
                                 if e["conditions"].get("ready"))
            changed.set()
    watcher = asyncio.ensure_future(watch())
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    replicas = state["ready"]
    for i in range(iterations):
        target = replicas + (1 if i % 2 == 0 else -1)
        t0 = time.monotonic()
        if use_kubectl:
            p = await asyncio.create_subprocess_exec("kubectl", "scale", "deployment/web", "-n", ns,
                                                     f"--replicas={target}", env=env,
                                                     stdout=asyncio.subprocess.DEVNULL)
            await p.wait()
        else:
            await client.patch(rt("Deployment"), "web", {"spec": {"replicas": target}}, ns, subresource="scale")
        while state["ready"] != target:
            changed.clear()
            await asyncio.wait_for(changed.wait(), timeout=60)
        out.append(time.monotonic() - t0)
        replicas = target
        await asyncio.sleep(0.2)
    watcher.cancel()
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cp-") as tmp:
        state = Path(tmp)
        proc = start_apiserver(state)
        client = ApiClient.from_kubeconfig(str(state / "kubeconfig"))
        stop = asyncio.Event()
        kubelet = FakeKubelet(client, heartbeat=5.0)
        try:
            t0 = time.monotonic()
            for i in range(args.nodes):
                await kubelet.add_node(node_object(f"node-{i:03d}", cpu="32", memory="64Gi", pods=250))
            print(f"{args.nodes} nodes registered in {time.monotonic() - t0:.1f}s", flush=True)
            plain = await schedule_run(client, "bench-plain", args.pods, spread=False)
            print(f"plain:  {plain}", flush=True)
            spread = await schedule_run(client, "bench-spread", args.pods, spread=True)
            print(f"spread: {spread}", flush=True)
            kt = asyncio.ensure_future(kubelet.run(stop))  # it also finishes the deleted pods
            for ns in ("bench-plain", "bench-spread"):
                await client.delete(rt("Namespace"), ns)
            while any(name_of(n).startswith("bench-") for n in (await client.list(rt("Namespace"))).items):
                await asyncio.sleep(0.5)  # the next phase measures latency: start it on a quiet cluster
            ns = "bench-scale"
            await client.create(rt("Namespace"), {"metadata": {"name": ns}})
            await client.create(rt("Deployment"), {"metadata": {"name": "web"}, "spec": {
                "replicas": 10, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "c", "image": "x", "ports": [{"containerPort": 80}]}]}}}}, ns)
            await client.create(rt("Service"), {"metadata": {"name": "web"}, "spec": {
                "selector": {"app": "web"}, "ports": [{"port": 80}]}}, ns)
            while await ready_endpoints(client, ns, "web") != 10:
                await asyncio.sleep(0.2)
            direct = await scale_latency(client, state / "kubeconfig", ns, args.scales, use_kubectl=False)
            kubectl = await scale_latency(client, state / "kubeconfig", ns, args.scales, use_kubectl=True)
            print_report(args, plain, spread, direct, kubectl)
            stop.set()
            await asyncio.gather(kt, return_exceptions=True)
        finally:
            stop.set()
            await client.close()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def print_report(args, plain, spread, direct, kubectl) -> None:
    ms = lambda v: f"{v * 1000:.0f} ms"  # noqa: E731
    print()
    print(f"| scheduling, {args.nodes} nodes x {args.pods} pods | pods/s | create phase | first create -> last bind |")
    print("|---|---|---|---|")
    for label, r in (("plain pods (cpu/memory requests)", plain), ("with topology spread (DoNotSchedule)", spread)):
        print(f"| {label} | {r['per_s']:.0f} | {r['create_s']:.1f} s | {r['total_s']:.1f} s |")
    print(f"\nspread / plain throughput ratio: {spread['per_s'] / plain['per_s']:.2f}")
    print(f"\n| scale by 1 -> EndpointSlice ready count updated ({args.scales} steps, up/down) | p50 | p99 | max |")
    print("|---|---|---|---|")
    for label, v in (("PATCH deployments/scale (client)", direct), ("`kubectl scale`", kubectl)):
        print(f"| {label} | {ms(statistics.median(v))} | {ms(pct(v, 0.99))} | {ms(max(v))} |")
    print(f"\nkubectl / direct p50 ratio: {statistics.median(kubectl) / statistics.median(direct):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--scales", type=int, default=40, help="scale steps per method")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
