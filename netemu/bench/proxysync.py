"""Where one kube-proxy's CPU goes per EndpointSlice change during a pod burst, stage by stage.

    sudo .venv/bin/python -m netemu.bench.proxysync [--services 1] [--endpoints 1000]
        [--rate 30] [--min-sync-period 1] [--kernel netns|none] [--mode iptables|nftables]
        [--compare before=/tmp/base,after=.] [--rounds 2] [--json OUT]

One process replays what a node's kube-proxy sees while ``services`` x ``endpoints`` pods come
up (proxysync_events.py: the watch lines the API server's own code makes, managedFields and
all) through the path a kube-proxy runs: ``json.loads`` of each line (the client's watch),
the EndpointSlice Informer's ``apply_event`` (cache + dispatch), the proxier's handler (change
tracker), and the syncs a bounded-frequency runner would start (upstream semantics: at most
one per ``--min-sync-period`` with a burst of 2) while the events arrive at ``--rate`` per
second of *virtual* time, so the number of syncs per event does not depend on this box's speed.
A sync is split into fold (trackers' apply), build (rule rendering), restore (the exec: this
process's CPU to spawn and feed it plus the child's CPU, which includes the kernel's work) and
the rest. With ``--kernel netns`` the rules go to a real kernel in a network namespace this
process creates and deletes (root); ``--kernel none`` answers every exec with success (no root).

Times are CPU seconds (time.process_time, getrusage of children), per event and in all.
``--compare NAME=TREE,...`` replays the very same recorded events once per netemu source tree
(each in a child process importing netemu from TREE; rounds alternate trees) and prints each
stage's ratio: the before/after of a change in one run, on a shared box.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

STAGES = ("decode", "informer", "tracker", "fold", "build", "restore_self", "restore_child", "sync_other")


class Clock:
    """CPU spent in named stages; nested stages are subtracted from their parents."""

    def __init__(self) -> None:
        self.cpu = dict.fromkeys(STAGES, 0.0)
        self._inner = 0.0          # CPU of stages nested in the one running now

    def timed(self, stage: str, fn):
        def wrapper(*args, **kwargs):
            outer, self._inner = self._inner, 0.0
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.process_time() - start
                self.cpu[stage] += spent - self._inner
                self._inner = outer + spent
        return wrapper


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _drive(coro) -> None:
    """Run a coroutine that never really waits (the informer with synchronous handlers)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("the informer awaited something during a replay")


def _fake_exec(argv, input=None):
    from netemu.agent.proxy.commands import Result
    return Result(0, "", "")


def _instrument(proxier, clock: Clock, counts: dict) -> None:
    """Wrap the proxier's stages with ``clock`` (instance attributes: the code is unchanged).
    iptables mode: ``build`` and ``iptables.restore``; nftables mode: ``planner.plan`` and
    ``nft.run`` (with libnftables the kernel's work is this process's, in restore_self)."""
    proxier.endpoint_changes.apply = clock.timed("fold", proxier.endpoint_changes.apply)
    proxier.service_changes.apply = clock.timed("fold", proxier.service_changes.apply)
    if hasattr(proxier, "iptables"):
        builder, build_name, applier, apply_name = proxier, "build", proxier.iptables, "restore"
    else:
        builder, build_name, applier, apply_name = proxier.planner, "plan", proxier.nft, "run"
    setattr(builder, build_name, clock.timed("build", getattr(builder, build_name)))
    restore = getattr(applier, apply_name)

    def counted_restore(text, **kwargs):
        before = _children_cpu()
        try:
            return restore(text, **kwargs)
        finally:
            clock.cpu["restore_child"] += _children_cpu() - before
            counts["restores"] += 1 if text else 0
            counts["restore_bytes"] += len(text)
    setattr(applier, apply_name, clock.timed("restore_self", counted_restore))


def _proxier(mode: str, node, config, exec_, backend: str | None):
    if mode == "iptables":
        from netemu.agent.proxy.iptables.proxier import IptablesProxier
        return IptablesProxier(node, config, backend=backend or "iptables", exec_=exec_, monitor_canaries=False)
    from netemu.agent.proxy.nftables.proxier import NftablesProxier
    return NftablesProxier(node, config, exec_=exec_, backend=backend or "auto", service_cidrs=config.service_cidrs,
                           monitor_table=False)


def replay(services: list[dict], lines: list[bytes], *, node: str, rate: float, min_sync_period: float,
           exec_, backend: str | None, mode: str = "iptables") -> dict:
    """Feed ``lines`` to one kube-proxy (iptables or nftables mode); return CPU per stage and counts."""
    from netemu.agent.proxy.model import NodeInfo, ProxyConfig
    from netemu.agent.proxy.runner import Schedule
    from netemu.api.kinds import by_kind
    from netemu.client.informer import Informer

    config = ProxyConfig(min_sync_period=min_sync_period, service_cidrs=("10.96.0.0/12",))
    proxier = _proxier(mode, NodeInfo(node, ("172.31.0.2",), "10.128.0.0/9"), config, exec_, backend)
    schedule = Schedule(min_sync_period, config.sync_period, burst=2, now=0.0)
    proxier.request_sync = schedule.request            # the runner a live proxier would poke
    clock = Clock()
    counts = {"events": len(lines), "syncs": 0, "restores": 0, "restore_bytes": 0, "bytes": sum(map(len, lines))}
    informer = Informer(None, by_kind("discovery.k8s.io/v1", "EndpointSlice"))
    handler = clock.timed("tracker", proxier.on_slice_update)
    informer.add_handler(clock.timed("tracker", proxier.on_slice_add), handler,
                         clock.timed("tracker", proxier.on_slice_delete))
    apply_event = clock.timed("informer", lambda kind, obj: _drive(informer.apply_event(kind, obj)))
    for svc in services:
        proxier.on_service_add(svc)
    proxier.on_services_synced()
    proxier.on_slices_synced()
    proxier.sync()                                      # the proxy was running before the burst
    schedule.finished(0.0)
    _instrument(proxier, clock, counts)
    sync = clock.timed("sync_other", proxier.sync)

    def maybe_sync(now: float) -> None:
        if schedule.try_start(now):
            result = sync()
            counts["syncs"] += 1
            if not result.ok:
                raise RuntimeError(f"sync failed: {result.error}")
            schedule.finished(now)

    decode = clock.timed("decode", json.loads)
    now = 0.0
    for i, line in enumerate(lines):
        now = i / rate
        maybe_sync(now)
        event = decode(line)
        apply_event(event.get("type"), event.get("object") or {})
    while schedule.pending:                             # the last changes reach the kernel too
        now += max(schedule.next_wakeup(now), 0.001)   # float-safe: a tiny wait must still move
        maybe_sync(now)
    return {"cpu": clock.cpu, "counts": counts, "virtual_seconds": now}


def _enter_netns(name: str) -> int:
    """Create ``name`` and move this (single-threaded) process's main thread into it; returns
    the fd of the namespace to come back to."""
    from netemu.agent.runtime.nsenter import CLONE_NEWNET, setns
    subprocess.run(["ip", "netns", "add", name], check=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        setns(fd, CLONE_NEWNET)
    finally:
        os.close(fd)
    return own


def _leave_netns(name: str, own: int) -> None:
    from netemu.agent.runtime.nsenter import CLONE_NEWNET, setns
    try:
        setns(own, CLONE_NEWNET)
    finally:
        os.close(own)
        subprocess.run(["ip", "netns", "delete", name], check=False)


def run_child(events: Path, args) -> dict:
    """One replay in this process (the child of --compare, or the whole run without it)."""
    doc = json.loads(Path(events).read_text())
    lines = [line.encode() for line in doc["lines"]]
    kwargs = dict(node="node0", rate=args.rate, min_sync_period=args.min_sync_period, backend=args.backend,
                  mode=args.mode)
    if args.kernel == "none":
        if args.mode != "iptables":
            raise SystemExit("--kernel none answers every command with success: iptables mode only")
        return replay(doc["services"], lines, exec_=_fake_exec, **kwargs)
    from netemu.agent.proxy.commands import local_exec
    name = f"kpsync-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    own = _enter_netns(name)
    try:
        return replay(doc["services"], lines, exec_=local_exec, **kwargs)
    finally:
        _leave_netns(name, own)


def _child(tree: str, events: Path, args) -> dict:
    """Replay in a child process whose ``netemu`` comes from ``tree`` (this file is run as a
    script, so the tree under test needs none of the benchmark)."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    argv = [sys.executable, "-c", "import runpy, sys; sys.argv = sys.argv[1:]; "
            f"runpy.run_path({os.path.abspath(__file__)!r}, run_name='__main__')", "proxysync",
            "--child", str(events), "--rate", str(args.rate), "--min-sync-period", str(args.min_sync_period),
            "--kernel", args.kernel, "--mode", args.mode, *(["--backend", args.backend] if args.backend else [])]
    out = subprocess.run(argv, env=env, cwd=os.path.abspath(tree), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"replay with {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(result: dict) -> dict:
    """Per-event milliseconds of every stage, the total, and syncs per event."""
    n = max(1, result["counts"]["events"])
    per = {k: v * 1000 / n for k, v in result["cpu"].items()}
    per["total"] = sum(result["cpu"].values()) * 1000 / n
    per["syncs_per_event"] = result["counts"]["syncs"] / n
    per["restores_per_event"] = result["counts"]["restores"] / n
    per["restore_kb_per_event"] = result["counts"]["restore_bytes"] / 1000 / n
    return per


def _table(rows: dict[str, dict]) -> str:
    names = list(rows)
    keys = [*STAGES, "total", "syncs_per_event", "restores_per_event", "restore_kb_per_event"]
    out = [f"{'ms CPU per event':18}" + "".join(f"{n:>14}" for n in names)
           + (f"{names[-1] + '/' + names[0]:>16}" if len(names) > 1 else "")]
    for k in keys:
        vals = [rows[n][k] for n in names]
        ratio = f"{vals[-1] / vals[0]:16.3f}" if len(names) > 1 and vals[0] else (" " * 16 if len(names) > 1 else "")
        out.append(f"{k:18}" + "".join(f"{v:14.4f}" for v in vals) + ratio)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=1)
    p.add_argument("--endpoints", type=int, default=1000, help="pods per Service")
    p.add_argument("--rate", type=float, default=30.0, help="EndpointSlice events per (virtual) second")
    p.add_argument("--min-sync-period", type=float, default=1.0)
    p.add_argument("--kernel", choices=("netns", "none"), default="netns")
    p.add_argument("--mode", choices=("iptables", "nftables"), default="iptables")
    p.add_argument("--backend", help="iptables mode: iptables (default), nft or legacy; "
                   "nftables mode: auto (default: libnftables if importable), nft or libnftables")
    p.add_argument("--compare", default="", metavar="NAME=TREE,...")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--events", type=Path, help="replay this recorded file instead of recording one")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args)))
        return 0
    from netemu.bench import proxysync_events
    with tempfile.TemporaryDirectory(prefix="netemu-proxysync-") as tmp:
        events = args.events or Path(tmp) / "events.json"
        if args.events is None:
            made = proxysync_events.write_file(events, args.services, args.endpoints)
            print(f"recorded {made['events']} EndpointSlice events, {made['bytes'] / 1e6:.1f} MB", file=sys.stderr)
        trees = [t.split("=", 1) for t in args.compare.split(",") if t] or [["this", ""]]
        runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
        for _ in range(args.rounds):
            for name, tree in trees:
                runs[name].append(_child(tree, events, args) if tree else run_child(events, args))
    rows = {name: {k: statistics.median(summarize(r)[k] for r in rs) for k in summarize(rs[0])}
            for name, rs in runs.items()}
    print(f"{args.services} Services x {args.endpoints} endpoints, {runs[trees[0][0]][0]['counts']['events']} "
          f"events at {args.rate}/s, min-sync-period {args.min_sync_period}s, {args.mode} mode, kernel {args.kernel}; "
          f"median of {args.rounds} round(s)")
    print(_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
                                         "per_event_ms": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
