"""Benchmark of the API server as clients see it: HTTPS writes/s and watch delivery latency.

Runs a real ``netemu apiserver`` process (no controllers) per store backend, SQLite and etcd
(a private etcd on loopback), and drives it from this process with the netemu client:

- creates/s with 1 and with ``--concurrency`` requests in flight (ConfigMaps of ~300 bytes);
- ``--watchers`` HTTP watch streams and ``--events`` sequential writes: time from the start of
  each write to its arrival at every watcher (p50 / p99), and the write's own latency.

Both backends in one run so the ratio is meaningful on a noisy machine:
``python -m netemu.bench.apiserver [--backends sqlite,etcd]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from netemu.api import kinds
from netemu.client import ApiClient
from netemu.testing.apiserver_process import apiserver_process

CM = kinds.by_resource("", "v1", "configmaps")




def _cm(name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "labels": {"bench": "yes"}},
            "data": {"payload": "x" * 200}}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def writes_per_second(api: ApiClient, prefix: str, count: int, concurrency: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await api.create(CM, _cm(f"{prefix}-{i}"))
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def watch_latency(api: ApiClient, watchers: int, events: int) -> dict[str, float]:
    start_rv = (await api.list(CM, "default", limit=1)).resource_version
    sent: dict[str, float] = {}
    delays: list[float] = []
    done = asyncio.Event()
    remaining = [watchers]

    async def watcher() -> None:
        seen = 0
        async for kind, obj in api.watch(CM, "default", resource_version=start_rv,
                                         label_selector="bench=watch", allow_bookmarks=False):
            if kind == "ADDED":
                delays.append(time.perf_counter() - sent[obj["metadata"]["name"]])
                seen += 1
                if seen == events:
                    break
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set()
    tasks = [asyncio.ensure_future(watcher()) for _ in range(watchers)]
    await asyncio.sleep(1.0)                                    # let every stream connect
    write_ms: list[float] = []
    for i in range(events):
        name = f"w-{i}"
        obj = _cm(name)
        obj["metadata"]["labels"] = {"bench": "watch"}
        sent[name] = t0 = time.perf_counter()
        await api.create(CM, obj)
        write_ms.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.005)
    await asyncio.wait_for(done.wait(), 120)
    for t in tasks:
        t.cancel()
    ms = [d * 1000 for d in delays]
    return {"write_p50": pct(write_ms, 0.5), "write_p99": pct(write_ms, 0.99),
            "deliver_p50": pct(ms, 0.5), "deliver_p99": pct(ms, 0.99), "deliveries": len(ms)}


async def measure(kubeconfig: Path, args: argparse.Namespace) -> dict[str, float]:
    async with ApiClient.from_kubeconfig(str(kubeconfig), timeout=120) as api:
        seq = await writes_per_second(api, "seq", args.writes // 4, 1)
        par = await writes_per_second(api, "par", args.writes, args.concurrency)
        lat = await watch_latency(api, args.watchers, args.events)
    return {"seq": seq, "par": par, **lat}


async def store_writes_per_second(store_url: str, count: int) -> float:
    """The same sequential creates straight into the store (no HTTP, TLS, strategy): the
    baseline that shows what the API server path costs on top, measured in the same run."""
    from netemu.store.factory import open_store
    store = open_store(store_url)
    try:
        start = time.perf_counter()
        for i in range(count):
            await store.create(f"/registry/configmaps/default/direct-{i}", _cm(f"direct-{i}"))
        return count / (time.perf_counter() - start)
    finally:
        await store.close()


def run_backend(name: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="netemu-bench-") as tmp:
        state = Path(tmp)
        if name == "sqlite":
            direct = asyncio.run(store_writes_per_second(f"sqlite:{state / 'direct.db'}", args.writes // 4))
            with apiserver_process(state) as (kc, _pid):
                return {"store_seq": direct, **asyncio.run(measure(kc, args))}
        from netemu.store.etcd_server import EtcdServer
        with EtcdServer() as etcd:
            url = "etcd:" + ",".join(etcd.endpoints)
            direct = asyncio.run(store_writes_per_second(url, args.writes // 4))
            with apiserver_process(state, url) as (kc, _pid):
                return {"store_seq": direct, **asyncio.run(measure(kc, args))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,etcd")
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternate the backends this many times and report medians (noisy machines)")
    args = parser.parse_args(argv)
    backends = args.backends.split(",")
    runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    for _ in range(args.repeats):
        for backend in backends:
            runs[backend].append(run_backend(backend, args))
    rows = {b: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for b, rs in runs.items()}
    print("| backend | store creates/s (no HTTP) | API creates/s sequential | API/store | creates/s, %d in flight "
          "| create ms p50/p99 (%d watchers) | write start -> delivery ms p50/p99 | deliveries |"
          % (args.concurrency, args.watchers))
    print("|---|---|---|---|---|---|---|---|")
    for backend, r in rows.items():
        print(f"| {backend} | {r['store_seq']:.0f} | {r['seq']:.0f} | {r['seq'] / r['store_seq']:.2f} | "
              f"{r['par']:.0f} | {r['write_p50']:.2f} / {r['write_p99']:.2f} | "
              f"{r['deliver_p50']:.2f} / {r['deliver_p99']:.2f} | {r['deliveries']:.0f} |", flush=True)
    if "sqlite" in rows and "etcd" in rows:
        s, e = rows["sqlite"], rows["etcd"]
        print(f"ratios sqlite/etcd: sequential x{s['seq'] / e['seq']:.1f}, {args.concurrency} in flight "
              f"x{s['par'] / e['par']:.1f}, delivery p50 x{e['deliver_p50'] / s['deliver_p50']:.1f} sooner")
    print(f"repeats={args.repeats} (medians) cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
