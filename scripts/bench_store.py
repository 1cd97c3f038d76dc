#!/usr/bin/env python3
"""Store benchmark: writes/s and watch delivery latency, embedded SQLite vs real etcd, one run.

    .venv/bin/python scripts/bench_store.py [--writes 1000] [--concurrency 32] [--watchers 100]
        [--events 300] [--rounds 3] [--warmup 2000] [--backends sqlite,etcd]

For each backend (SQLite in a temp file; etcd started privately on loopback with a temp dir),
after ``--warmup`` unmeasured writes, ``--rounds`` rounds (backends interleaved; medians shown) of:

1. sequential writes/s: one writer, each create awaited before the next (one fsync each);
2. concurrent writes/s: ``--concurrency`` writers in flight (SQLite group-commits them);
3. reads: sequential gets/s, and one list of the ``--writes`` objects written in step 1;
4. watch delivery: ``--watchers`` watchers on one prefix, one writer doing ``--events`` creates
   one after another; for every (watcher, event) the time from the write's acknowledgement to
   the event reaching the watcher, and from the write's start (before the request) to delivery.

"ack -> delivery" can be negative for SQLite: its writer hands a committed batch to watchers and
then resolves the writer in the same loop callback, so watchers often run before the writer does.
Both stores are durable on acknowledgement (SQLite WAL synchronous=FULL; etcd fsyncs its WAL).
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from netemu.store.base import Store  # noqa: E402
from netemu.store.etcd import EtcdStore  # noqa: E402
from netemu.store.etcd_server import EtcdServer  # noqa: E402
from netemu.store.sqlite import SqliteStore  # noqa: E402


def obj(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"cm{i}", "namespace": "bench", "labels": {"app": "bench"}},
            "data": {"payload": "x" * 200, "i": str(i)}}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def sequential_writes(store: Store, prefix: str, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await store.create(f"{prefix}seq/cm{i}", obj(i))
    return n / (time.perf_counter() - start)


async def concurrent_writes(store: Store, prefix: str, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await store.create(f"{prefix}conc/cm{i}", obj(i))
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start)


async def reads(store: Store, prefix: str, n: int) -> dict[str, float]:
    """Sequential gets/s over the objects written before, and one full list of them."""
    start = time.perf_counter()
    for i in range(n):
        await store.get(f"{prefix}seq/cm{i}")
    gets = n / (time.perf_counter() - start)
    start = time.perf_counter()
    listed = await store.list(f"{prefix}seq/")
    assert len(listed.items) == n
    return {"gets": gets, "list_ms": (time.perf_counter() - start) * 1000}


async def watch_latency(store: Store, prefix: str, watchers: int, events: int) -> dict[str, float]:
    since = await store.current_revision()
    wprefix = f"{prefix}watch/"
    delivered: list[dict[int, float]] = [{} for _ in range(watchers)]
    started: dict[int, float] = {}
    acked: dict[int, float] = {}

    async def consume(i: int) -> None:
        seen = delivered[i]
        async for ev in store.watch(wprefix, since):
            seen[ev.revision] = time.perf_counter()
            if len(seen) == events:
                return
    tasks = [asyncio.ensure_future(consume(i)) for i in range(watchers)]
    await asyncio.sleep(0.5)               # let every watch be established
    for i in range(events):
        t0 = time.perf_counter()
        made = await store.create(f"{wprefix}cm{i}", obj(i))
        t1 = time.perf_counter()
        rev = int(made["metadata"]["resourceVersion"])
        started[rev], acked[rev] = t0, t1
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    from_ack = [t - acked[r] for seen in delivered for r, t in seen.items()]
    from_start = [t - started[r] for seen in delivered for r, t in seen.items()]
    write = [acked[r] - started[r] for r in acked]
    return {"samples": len(from_ack),
            "ack_p50": pct(from_ack, 50), "ack_p99": pct(from_ack, 99),
            "start_p50": pct(from_start, 50), "start_p99": pct(from_start, 99),
            "write_p50": pct(write, 50), "write_p99": pct(write, 99),
            "writes_s": events / (max(acked.values()) - min(started.values()))}


def raw_fdatasync_rate(directory: str, n: int = 500) -> float:
    """The disk's ceiling for one durable sequential writer: 4 KiB overwrite + fdatasync/s in
    the same directory, measured in the same round (the machine is noisy; ratios hold)."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        block = b"x" * 4096
        for i in range(256):
            os.pwrite(fd, block, i * 4096)
        os.fsync(fd)
        start = time.perf_counter()
        for i in range(n):
            os.pwrite(fd, block, (i % 256) * 4096)
            os.fdatasync(fd)
        return n / (time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(path)


async def one_round(store: Store, prefix: str, args, tmp: str) -> dict[str, float]:
    disk = raw_fdatasync_rate(tmp)
    seq = await sequential_writes(store, prefix, args.writes)
    out = {"disk": disk, "seq": seq, "seq_vs_disk": seq / disk,
           "conc": await concurrent_writes(store, prefix, args.writes, args.concurrency)}
    out.update(await reads(store, prefix, args.writes))
    out.update(await watch_latency(store, prefix, args.watchers, args.events))
    return out


async def run_all(factories: dict, args, tmp: str) -> dict[str, list[dict[str, float]]]:
    """Warm every store up (grown WAL files, as on a running server), then interleave the
    backends round by round so machine noise hits both alike."""
    stores = {name: make() for name, make in factories.items()}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in stores}
    try:
        for name, store in stores.items():
            print(f"warming up {name} ({args.warmup} writes) ...", file=sys.stderr)
            await sequential_writes(store, f"/warmup{os.getpid()}/", args.warmup)
        for r in range(args.rounds):
            for name, store in stores.items():
                print(f"round {r + 1}/{args.rounds}: {name} ...", file=sys.stderr)
                results[name].append(await one_round(store, f"/bench{os.getpid()}/r{r}/", args, tmp))
    finally:
        for store in stores.values():
            await store.close()
    return results


def ms(x: float) -> str:
    return f"{x * 1000:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writes", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--backends", default="sqlite,etcd")
    ap.add_argument("--rounds", type=int, default=3, help="report the median of this many rounds")
    ap.add_argument("--warmup", type=int, default=2000, help="unmeasured writes first (0: cold)")
    args = ap.parse_args()
    names = args.backends.split(",")
    for name in names:
        if name not in ("sqlite", "etcd"):
            ap.error(f"unknown backend {name!r} (sqlite, etcd)")
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="netemu-bench-"))
        factories = {"sqlite": lambda: SqliteStore(os.path.join(tmp, "s.db"))}
        if "etcd" in names:
            etcd = stack.enter_context(EtcdServer())
            factories["etcd"] = lambda: EtcdStore(etcd.endpoints)
        rounds = asyncio.run(run_all({n: factories[n] for n in names}, args, tmp))
    results = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
               for name, rs in rounds.items()}
    print(f"\n{platform.node()} ({os.cpu_count()} CPUs), python {platform.python_version()}; "
          f"--writes {args.writes} --concurrency {args.concurrency} --watchers {args.watchers} "
          f"--events {args.events} --rounds {args.rounds} --warmup {args.warmup}; medians of "
          f"the rounds.\n\nPer round, sequential writes/s (raw 4 KiB overwrite+fdatasync/s of the "
          f"disk measured just before): "
          + "; ".join(f"{n} " + ", ".join(f"{r['seq']:.0f} ({r['disk']:.0f})" for r in rs)
                      for n, rs in rounds.items()) + "\n")
    print("| backend | writes/s sequential (x disk fdatasync/s) | writes/s, 32 in flight | write ms p50/p99 (100 watchers) "
          "| ack -> delivery ms p50/p99 | write start -> delivery ms p50/p99 |"
          .replace("32", str(args.concurrency)).replace("100", str(args.watchers)))
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['seq']:.0f} (x{r['seq_vs_disk']:.2f}) | {r['conc']:.0f} | {ms(r['write_p50'])} / {ms(r['write_p99'])} "
              f"| {ms(r['ack_p50'])} / {ms(r['ack_p99'])} | {ms(r['start_p50'])} / {ms(r['start_p99'])} |")
    print(f"\n| backend | gets/s sequential | list of {args.writes} objects, ms |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['gets']:.0f} | {r['list_ms']:.1f} |")
    if "sqlite" in results and "etcd" in results:
        s, e = results["sqlite"], results["etcd"]
        print(f"\nsqlite/etcd: sequential writes x{s['seq'] / e['seq']:.1f}, "
              f"concurrent writes x{s['conc'] / e['conc']:.1f}, "
              f"delivery from write start p50 x{e['start_p50'] / s['start_p50']:.1f} faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
