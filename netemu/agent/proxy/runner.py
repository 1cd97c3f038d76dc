"""Bounded-frequency runner: run a function on demand, but not too often and not too rarely.

Upstream kube-proxy (pkg/util/async/bounded_frequency_runner.go) funnels every "something changed"
signal into one of these: runs are at least ``min_interval`` apart (from the end of one run to the
start of the next) except for up to ``burst`` runs accumulated over time (a token bucket refilled
one token per ``min_interval``); requests that would violate that are coalesced into one later run;
with no request at all the function still runs every ``max_interval`` (the periodic resync); a
failed run asks for a retry with ``retry_after``.

The scheduling decisions live in ``Schedule``, a pure object driven by an explicit clock value,
so tests step time by hand; ``BoundedFrequencyRunner`` is the thin thread that sleeps until the
schedule says go.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class Schedule:
    """When the next run may and must happen; every method takes ``now`` (seconds, monotonic)."""

    def __init__(self, min_interval: float, max_interval: float, burst: int = 2, now: float = 0.0):
        if max_interval < min_interval:
            raise ValueError(f"max_interval ({max_interval}) must be >= min_interval ({min_interval})")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.burst = burst
        self._tokens = float(burst)      # upstream's token bucket starts full
        self._stamp = now                # when _tokens was last refilled
        self.pending = False             # a run was requested and has not happened yet
        self.retry_at: float | None = None
        self.periodic_at = now + max_interval

    def _refill(self, now: float) -> None:
        if self.min_interval <= 0:
            self._tokens = float(self.burst)
        else:
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) / self.min_interval)
        self._stamp = now

    def request(self) -> None:
        """Someone wants a run as soon as allowed (upstream Run())."""
        self.pending = True

    def retry_after(self, now: float, interval: float) -> None:
        """Make sure a run happens no later than ``interval`` from now (soonest request wins)."""
        at = now + interval
        if self.retry_at is None or at < self.retry_at:
            self.retry_at = at

    def wanted(self, now: float) -> bool:
        """A run is due: requested, retry time reached, or the periodic time reached."""
        return (self.pending or now >= self.periodic_at
                or (self.retry_at is not None and now >= self.retry_at))

    def next_wakeup(self, now: float) -> float:
        """Seconds until the loop should look again (0: a run may start now)."""
        self._refill(now)
        if self.wanted(now):
            if self._tokens >= 1.0 or self.min_interval <= 0:
                return 0.0
            return (1.0 - self._tokens) * self.min_interval
        deadlines = [self.periodic_at] + ([self.retry_at] if self.retry_at is not None else [])
        return max(0.0, min(deadlines) - now)

    def try_start(self, now: float) -> bool:
        """Take a token and clear the request if a run is due and allowed now."""
        if self.next_wakeup(now) > 0.0 or not self.wanted(now):
            return False
        self._tokens -= 1.0
        self.pending = False
        if self.retry_at is not None and self.retry_at <= now:
            self.retry_at = None
        return True

    def finished(self, now: float) -> None:
        """A run ended at ``now``: the periodic deadline restarts from here (upstream resets it)."""
        self._refill(now)
        self.periodic_at = now + self.max_interval


class BoundedFrequencyRunner:
    """Calls ``fn`` from one background thread according to a ``Schedule``.

    ``fn`` exceptions are logged and turned into a retry after ``retry_interval``: a sync loop must
    outlive a bad object or a failing iptables-restore.
    """

    def __init__(self, name: str, fn: Callable[[], None], min_interval: float, max_interval: float,
                 burst: int = 2, retry_interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.fn = fn
        self.clock = clock
        self.schedule = Schedule(min_interval, max_interval, burst, now=clock())
        self.retry_interval = max_interval if retry_interval is None else retry_interval
        self.runs = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Ask for a run as soon as the bounds allow (never blocks)."""
        with self._cond:
            self.schedule.request()
            self._cond.notify()

    def retry_after(self, interval: float) -> None:
        """Ask for a run no later than ``interval`` seconds from now (callable from ``fn``)."""
        with self._cond:
            self.schedule.retry_after(self.clock(), interval)
            self._cond.notify()

    def step(self) -> float:
        """Run ``fn`` if it is due and allowed; return seconds until the next look. Used by loop()."""
        with self._cond:
            go = self.schedule.try_start(self.clock())
        if go:
            try:
                self.fn()
            except Exception:
                log.exception("%s: run failed; retrying in %.1fs", self.name, self.retry_interval)
                self.retry_after(self.retry_interval)
            finally:
                self.runs += 1
                with self._cond:
                    self.schedule.finished(self.clock())
        with self._cond:
            return self.schedule.next_wakeup(self.clock())

    def loop(self) -> None:
        """Run until ``stop()``: sleep until due or until someone calls run()/retry_after()."""
        while True:
            wait = self.step()
            with self._cond:
                if self._stop:
                    return
                if wait > 0:  # idle, or due but rate-limited: run()/retry_after() wake us early
                    self._cond.wait(timeout=wait)
                if self._stop:
                    return

    def start(self) -> "BoundedFrequencyRunner":
        self._thread = threading.Thread(target=self.loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
