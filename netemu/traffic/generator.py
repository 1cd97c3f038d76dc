"""The load generator's core: an asyncio loop sending a ``Job`` from the current network namespace.

It runs wherever it is started: inside a worker process that ``ip netns exec`` put in a pod's, a
node's or the external client's namespace (netemu.traffic.worker), or in-process on loopback
(the unit tests). Two shapes of load:

- closed loop (no ``rate``): ``concurrency`` tasks, each opening a connection, running its
  requests, and starting over at once, until the stop condition;
- open loop (``rate``): a dispatcher releases one request every 1/rate s (or exponentially
  spaced: ``arrival=poisson``); a request due while every slot is busy waits for one and is
  counted ``late`` (the load asked for was not the load sent: reported, not hidden). With
  ``keepalive`` a released request reuses an idle connection when there is one.

Every request lands in the ``Recorder``: per second (since the start) the successes, errors by
kind, answering endpoints, connect and request latencies (microseconds), bytes and new
connections, flushed as deltas through ``emit`` a few times a second. The parent
(netemu.traffic.run) merges the deltas of all workers into the Result.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from typing import Callable

from netemu.traffic.protocols import CONNECTIONS, Connection, Failed, clientip, error_kind, payload_bytes
from netemu.traffic.spec import Job, SpecError

FLUSH_EVERY = 0.25


def check_allowed(ip: str, allowed: tuple[str, ...]) -> None:
    """Refuse a destination that is not loopback and not in ``allowed`` (the run's scope)."""
    addr = ipaddress.ip_address(ip)
    if addr.is_loopback or str(addr) in {str(ipaddress.ip_address(a)) for a in allowed}:
        return
    raise SpecError(f"{ip} is not an address of the emulation: traffic goes only to the "
                    f"cluster's Services, pods and nodes (or loopback)")


class Recorder:
    """Per-second buckets of what happened, emitted as deltas (plain dicts, JSON-ready)."""

    def __init__(self, emit: Callable[[dict], None]):
        self.emit = emit
        self.t0 = time.perf_counter()
        self.buckets: dict[int, dict] = {}
        self.total_ok = self.total_errors = 0

    def _bucket(self) -> dict:
        second = int(time.perf_counter() - self.t0)
        b = self.buckets.get(second)
        if b is None:
            b = self.buckets[second] = {"second": second, "ok": 0, "errors": {}, "endpoints": {},
                                        "connect_us": [], "latency_us": [], "connections": 0,
                                        "sent": 0, "received": 0, "late": 0}
        return b

    def connected(self, seconds: float | None) -> None:
        b = self._bucket()
        b["connections"] += 1
        if seconds is not None:
            b["connect_us"].append(round(seconds * 1e6))

    def ok(self, endpoint: str, seconds: float) -> None:
        b = self._bucket()
        b["ok"] += 1
        b["endpoints"][endpoint] = b["endpoints"].get(endpoint, 0) + 1
        b["latency_us"].append(round(seconds * 1e6))
        self.total_ok += 1

    def error(self, kind: str) -> None:
        b = self._bucket()
        b["errors"][kind] = b["errors"].get(kind, 0) + 1
        self.total_errors += 1

    def late(self) -> None:
        self._bucket()["late"] += 1

    def bytes(self, conn: Connection) -> None:
        b = self._bucket()
        b["sent"] += conn.sent
        b["received"] += conn.received
        conn.sent = conn.received = 0

    def flush(self) -> None:
        for second in sorted(self.buckets):
            self.emit({"type": "tick", **self.buckets[second]})
        self.buckets.clear()


class Generator:
    """Run one Job; ``stop`` (an asyncio.Event) ends it early, cleanly."""

    def __init__(self, job: Job, recorder: Recorder, stop: asyncio.Event | None = None):
        job.target.check()
        job.spec.check()
        check_allowed(job.target.ip, job.allowed)
        self.job, self.spec, self.target = job, job.spec, job.target
        self.rec = recorder
        self.stop = stop or asyncio.Event()
        self.payload = payload_bytes(self.spec.payload, self.spec.seed)
        self.per_conn = (self.spec.per_connection or 10**12) if self.spec.keepalive else 1
        self.conns_left = self.spec.connections
        self.reqs_left = self.spec.requests if self.spec.connections is None else None
        self.deadline: float | None = None
        self.stopped_by = "count"
        self.idle: list[Connection] = []
        self.clientips: dict[str, set[str]] = {}

    # -- the stop condition ------------------------------------------------------------------

    def _running(self) -> bool:
        if self.stop.is_set():
            self.stopped_by = "cancel"
            return False
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.stopped_by = "duration"
            return False
        return True

    def _claim_request(self) -> bool:
        if not self._running():
            return False
        if self.reqs_left is not None:
            if self.reqs_left <= 0:
                return False
            self.reqs_left -= 1
        return True

    def _claim_connection(self) -> bool:
        if self.conns_left is not None:
            if self.conns_left <= 0 or not self._running():
                return False
            self.conns_left -= 1
        return True

    # -- one connection, one request -----------------------------------------------------------

    async def _open(self) -> Connection | None:
        conn = CONNECTIONS[self.spec.proto](self.target, self.spec, self.payload)
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.spec.timeout):
                await conn.open()
        except (OSError, Failed, TimeoutError) as exc:
            self.rec.error(error_kind(exc))
            self.rec.bytes(conn)
            conn.close()
            return None
        self.rec.connected(time.perf_counter() - start if self.spec.proto != "udp" or self.payload else None)
        return conn

    async def _request(self, conn: Connection, last: bool) -> bool:
        """One request on ``conn``; False when it failed (the connection is then closed)."""
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.spec.timeout):
                endpoint = await conn.request(last)
        except (OSError, Failed, TimeoutError) as exc:
            self.rec.error(error_kind(exc))
            self.rec.bytes(conn)
            conn.close()
            return False
        self.rec.ok(endpoint, time.perf_counter() - start)
        self.rec.bytes(conn)
        return True

    async def _connection(self) -> None:
        """Closed loop: one connection and its requests."""
        if not self._claim_request():
            return
        conn = await self._open()
        if conn is None:
            return
        done = 0
        while True:
            done += 1
            last = done >= self.per_conn
            if not await self._request(conn, last):
                return
            if last or not self._claim_request():
                break
            await asyncio.sleep(0)     # an answer already waiting never suspends: let the other slots run
        conn.close()

    async def _closed_loop_slot(self) -> None:
        while self._claim_connection():
            if not self._running() or (self.reqs_left is not None and self.reqs_left <= 0):
                break
            await self._connection()

    # -- open loop ---------------------------------------------------------------------------

    async def _ticket(self, slots: asyncio.Semaphore) -> None:
        """Open loop: one released request, on an idle connection or a new one."""
        try:
            conn = self.idle.pop() if self.idle else None
            if conn is None:
                if not self._claim_connection():
                    return
                conn = await self._open()
                if conn is None:
                    return
                conn.used = 0
            conn.used += 1
            last = conn.used >= self.per_conn
            if await self._request(conn, last):
                if last or not self.spec.keepalive:
                    conn.close()
                else:
                    self.idle.append(conn)
        finally:
            slots.release()

    async def _warm_up(self) -> None:
        """``warm``: every slot's connection opened before the first request (kept idle)."""
        for _ in range(self.spec.slots):
            if not self._running() or not self._claim_connection():
                return
            conn = await self._open()
            if conn is not None:
                conn.used = 0
                self.idle.append(conn)

    async def _open_loop(self) -> None:
        if self.spec.warm:
            await self._warm_up()
        slots = asyncio.Semaphore(self.spec.slots)
        rng = random.Random(self.spec.seed)
        rate = self.spec.rate
        due = time.perf_counter()
        tasks: set[asyncio.Task] = set()
        while self._claim_request():
            while (delay := due - time.perf_counter()) > 0 and not self.stop.is_set():
                await asyncio.sleep(min(delay, 0.1))      # short naps: a stop is seen at once
            if not self._running():
                break
            if slots.locked():
                self.rec.late()
            await slots.acquire()
            if self.conns_left is not None and self.conns_left <= 0 and not self.idle:
                slots.release()
                break
            task = asyncio.ensure_future(self._ticket(slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            due += rng.expovariate(rate) if self.spec.arrival == "poisson" else 1.0 / rate
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for conn in self.idle:
            conn.close()
        self.idle.clear()

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> dict:
        """Send the load; returns the summary the worker sends last (why it stopped, how long,
        the client addresses each backend saw)."""
        flusher = asyncio.ensure_future(self._flush_periodically())
        start = time.perf_counter()
        self.rec.t0 = start
        if self.spec.duration is not None:
            self.deadline = start + self.spec.duration
        try:
            if self.spec.rate is not None:
                await self._open_loop()
            else:
                await asyncio.gather(*(self._closed_loop_slot() for _ in range(self.spec.slots)))
            elapsed = time.perf_counter() - start
            if self.spec.clientip_probes and not self.stop.is_set():
                await self._probe_clientips()
        finally:
            flusher.cancel()
            self.rec.flush()
        return {"type": "done", "elapsed": elapsed, "stopped_by": self.stopped_by,
                "clientips": {k: sorted(v) for k, v in self.clientips.items()}}

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            self.rec.flush()

    async def _probe_clientips(self) -> None:
        """Extra connections asking each answering backend which source address it saw (not
        counted in the load's numbers)."""
        for _ in range(self.spec.clientip_probes):
            if self.stop.is_set():
                return
            conn = CONNECTIONS[self.spec.proto](self.target, self.spec, b"")
            try:
                async with asyncio.timeout(self.spec.timeout):
                    await conn.open()
                    name, seen = await clientip(conn)
                self.clientips.setdefault(name, set()).add(seen)
            except (OSError, Failed, TimeoutError):
                pass
            finally:
                conn.close()
