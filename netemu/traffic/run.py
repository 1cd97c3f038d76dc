"""Running a load: worker processes in the client's network namespace, merged into a Result.

``TrafficRun`` is the API the CLI and the experiments use::

    run = TrafficRun(Target("10.96.0.50", 80, "svc/web"), LoadSpec(requests=1000, concurrency=8),
                     netns="nep-0123456789a", scope=Scope.of(["10.96.0.50"]))
    result = await run.run()          # run.cancel() from anywhere ends it early, result kept

Why processes: a worker is entered into the namespace by ``ip netns exec`` (every socket it
makes lives there, nothing of ours changes namespace), ``workers=N`` spreads a heavy load over
cores, and a stuck or killed worker cannot take the caller down. The workers start, report
ready, and are released together (``go``), so their seconds line up.

Safety: the target must be in the run's ``Scope`` (the cluster's Service, pod and node
addresses; loopback is always in) before any process starts; the worker checks again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from netemu.traffic.generator import check_allowed
from netemu.traffic.result import Result, Tally
from netemu.traffic.spec import Job, LoadSpec, SpecError, Target

STOP_GRACE = 5.0


class TrafficError(RuntimeError):
    """A run that could not start or whose worker failed; the message says why."""


@dataclass(frozen=True)
class Scope:
    """The addresses a run may send to (loopback is always allowed)."""

    addresses: frozenset[str]
    what: str = "the emulation"

    @classmethod
    def of(cls, addresses: Iterable[str], what: str = "the emulation") -> Scope:
        return cls(frozenset(addresses), what)

    def check(self, ip: str) -> None:
        try:
            check_allowed(ip, tuple(self.addresses))
        except SpecError:
            raise SpecError(f"{ip} is not an address of {self.what}: traffic goes only to its Services, "
                            f"pods and nodes (or loopback)") from None


@dataclass
class Progress:
    """What the live view shows: totals so far, the last second, and the target's size."""

    elapsed: float
    ok: int
    errors: int
    connections: int
    endpoints: dict[str, int]
    planned: int | None          # requests or connections the run stops at
    duration: float | None


class TrafficRun:
    """One run of ``spec`` against ``target`` from ``netns`` (None: this process's namespace).

    ``expected``: the target's endpoints (names as they answer), so those that never answer
    show as 0; ``weights``: expected shares for the chi-square test (default uniform).
    ``on_progress`` is called a few times a second with a Progress."""

    def __init__(self, target: Target, spec: LoadSpec, *, scope: Scope, netns: str | None = None,
                 expected: list[str] | None = None, weights: dict[str, float] | None = None,
                 on_progress: Callable[[Progress], None] | None = None, python: str = sys.executable):
        target.check()
        spec.check()
        scope.check(target.ip)
        if weights is not None and expected is not None:
            missing = sorted(set(weights) - set(expected))
            if missing:
                raise SpecError(f"weights name endpoints the target does not have: {', '.join(missing)}")
        self.target, self.spec, self.scope, self.netns = target, spec, scope, netns
        self.expected, self.weights, self.on_progress, self.python = expected, weights, on_progress, python
        self.tally = Tally()
        self._procs: list[asyncio.subprocess.Process] = []
        self._cancel: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancel_early = False

    def argv(self) -> list[str]:
        inner = [self.python, "-m", "netemu.traffic.worker"]
        return ["ip", "netns", "exec", self.netns, *inner] if self.netns else inner

    def cancel(self) -> None:
        """End the run early (thread-safe, idempotent); ``run`` returns what was measured."""
        if self._loop is None:
            self._cancel_early = True
        elif self._cancel is not None:
            self._loop.call_soon_threadsafe(self._cancel.set)

    async def run(self) -> Result:
        self._loop = asyncio.get_running_loop()
        self._cancel = asyncio.Event()
        if self._cancel_early:
            self._cancel.set()
        jobs = [Job(self.target, part, tuple(sorted(self.scope.addresses)))
                for part in self.spec.split(self.spec.workers)]
        started = time.time()
        try:
            for job in jobs:
                self._procs.append(await self._start(job))
            await asyncio.gather(*(self._ready(p) for p in self._procs))
            for p in self._procs:
                p.stdin.write(b"go\n")
            t0 = time.monotonic()
            done = await self._collect(t0)
        finally:
            await self._stop_all()
        elapsed = max((d["elapsed"] for d in done), default=0.0)
        stopped = "cancel" if self._cancel.is_set() else done[0]["stopped_by"] if done else "cancel"
        clientips: dict[str, set[str]] = {}
        for d in done:
            for name, ips in d.get("clientips", {}).items():
                clientips.setdefault(name, set()).update(ips)
        return self.tally.result(self.target, self.spec, elapsed, stopped,
                                 {k: sorted(v) for k, v in clientips.items()}, self.expected, self.weights,
                                 started)

    async def _start(self, job: Job) -> asyncio.subprocess.Process:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True, limit=16 * 1024 * 1024)
        except FileNotFoundError as exc:
            raise TrafficError(f"cannot start the traffic worker: {exc}") from None
        proc.stdin.write((json.dumps(job.to_dict()) + "\n").encode())
        await proc.stdin.drain()
        return proc

    async def _ready(self, proc: asyncio.subprocess.Process) -> None:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        msg = json.loads(line) if line.strip() else None
        if msg is None:
            err = (await proc.stderr.read()).decode(errors="replace").strip()
            raise TrafficError(f"the traffic worker did not start (exit {await proc.wait()}): {err[-500:]}")
        if msg["type"] == "error":
            raise SpecError(msg["message"])

    async def _collect(self, t0: float) -> list[dict]:
        done: list[dict] = []
        cancel_sent = False

        async def read(proc: asyncio.subprocess.Process) -> None:
            while line := await proc.stdout.readline():
                msg = json.loads(line)
                if msg["type"] == "tick":
                    self.tally.add(msg)
                elif msg["type"] == "done":
                    done.append(msg)
                    return
            err = (await proc.stderr.read()).decode(errors="replace").strip()
            raise TrafficError(f"a traffic worker ended without a result (exit {await proc.wait()}): {err[-500:]}")

        readers = asyncio.gather(*(read(p) for p in self._procs))
        while True:
            finished, _ = await asyncio.wait({readers}, timeout=0.25)
            self._report(t0)
            if finished:
                readers.result()
                return done
            if self._cancel.is_set() and not cancel_sent:
                cancel_sent = True
                for p in self._procs:
                    if p.returncode is None:
                        try:
                            p.stdin.write(b"stop\n")
                        except (BrokenPipeError, ConnectionResetError):
                            pass

    def _report(self, t0: float) -> None:
        if self.on_progress is not None:
            t = self.tally
            self.on_progress(Progress(time.monotonic() - t0, t.ok, t.errors, t.connections, dict(t.endpoints),
                                      self.spec.count, self.spec.duration))

    async def _stop_all(self) -> None:
        """Every worker gone, by its PID: stdin closed (it stops), then SIGKILL after a grace."""
        for p in self._procs:
            if p.stdin and not p.stdin.is_closing():
                p.stdin.close()
        deadline = time.monotonic() + STOP_GRACE
        for p in self._procs:
            try:
                await asyncio.wait_for(p.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                try:
                    os.killpg(p.pid, signal.SIGKILL)    # its own session: ip netns exec + python
                except ProcessLookupError:
                    pass
                await p.wait()


def run(target: Target, spec: LoadSpec, **kwargs) -> Result:
    """``TrafficRun(...).run()`` for synchronous callers; Ctrl-C ends the run early and still
    returns its result."""
    traffic = TrafficRun(target, spec, **kwargs)

    async def go() -> Result:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, traffic.cancel)
        except (RuntimeError, ValueError):      # not the main thread: no signal handler
            pass
        try:
            return await traffic.run()
        finally:
            try:
                loop.remove_signal_handler(signal.SIGINT)
            except (RuntimeError, ValueError):
                pass
    return asyncio.run(go())
