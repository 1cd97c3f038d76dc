"""The bounded-frequency runner's schedule, stepped with a fake clock (no sleeping)."""

from __future__ import annotations

import threading

import pytest

from netemu.agent.proxy.runner import BoundedFrequencyRunner, Schedule


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(min_interval=1.0, max_interval=30.0, burst=2, retry_interval=None):
    clock = FakeClock()
    calls = []
    runner = BoundedFrequencyRunner("t", lambda: calls.append(clock.now), min_interval, max_interval,
                                    burst, retry_interval, clock=clock)
    return runner, clock, calls


def test_max_below_min_is_rejected():
    with pytest.raises(ValueError):
        Schedule(5.0, 1.0)


def test_nothing_requested_means_no_run_until_the_periodic_time():
    runner, clock, calls = make()
    assert runner.step() == pytest.approx(30.0)
    clock.now = 29.9
    runner.step()
    assert calls == []
    clock.now = 30.0
    runner.step()
    assert calls == [30.0]


def test_burst_runs_then_rate_limited_to_min_interval():
    runner, clock, calls = make(min_interval=1.0, burst=2)
    for _ in range(2):
        runner.run()
        runner.step()
    assert calls == [0.0, 0.0]
    runner.run()
    wait = runner.step()
    assert calls == [0.0, 0.0]          # no token left: coalesced, not dropped
    assert wait == pytest.approx(1.0)
    clock.now = 0.5
    runner.run()                        # a second request while waiting: still one run
    runner.step()
    clock.now = 1.0
    runner.step()
    runner.step()
    assert calls == [0.0, 0.0, 1.0]


def test_a_run_restarts_the_periodic_deadline():
    runner, clock, calls = make(max_interval=10.0)
    clock.now = 4.0
    runner.run()
    assert runner.step() == pytest.approx(10.0)
    clock.now = 10.0
    runner.step()
    assert calls == [4.0]
    clock.now = 14.0
    runner.step()
    assert calls == [4.0, 14.0]


def test_failure_retries_after_the_retry_interval():
    clock = FakeClock()
    calls = []

    def fn():
        calls.append(clock.now)
        if len(calls) == 1:
            raise RuntimeError("iptables-restore failed")

    runner = BoundedFrequencyRunner("t", fn, 1.0, 60.0, 2, retry_interval=5.0, clock=clock)
    runner.run()
    assert runner.step() == pytest.approx(5.0)
    clock.now = 5.0
    runner.step()
    assert calls == [0.0, 5.0]
    assert runner.step() == pytest.approx(60.0)   # success: back to the periodic schedule


def test_retry_after_keeps_the_soonest_request():
    s = Schedule(0.0, 100.0)
    s.retry_after(0.0, 10.0)
    s.retry_after(0.0, 20.0)
    assert s.next_wakeup(0.0) == pytest.approx(10.0)


def test_zero_min_interval_never_limits():
    runner, clock, calls = make(min_interval=0.0, burst=1)
    for _ in range(5):
        runner.run()
        runner.step()
    assert len(calls) == 5


def test_thread_loop_runs_on_request_and_stops():
    done = threading.Event()
    runner = BoundedFrequencyRunner("t", done.set, 0.0, 3600.0).start()
    try:
        runner.run()
        assert done.wait(10)
    finally:
        runner.stop()
    assert runner._thread is not None and not runner._thread.is_alive()


def drain(runner, clock, at):
    """Two back-to-back runs at ``at``: the bucket (burst 2) is empty afterwards."""
    clock.now = at
    for _ in range(2):
        runner.run()
        runner.step()


def test_first_change_after_a_quiet_period_runs_at_once_and_its_follow_up_too():
    """A Service create is two syncs (the Service, then its EndpointSlice): after min_interval *
    burst of quiet both go at once, as upstream's token bucket (minSyncPeriod 1 s, burst 2) does."""
    runner, clock, calls = make(min_interval=1.0, burst=2)
    drain(runner, clock, 0.0)
    clock.now = 2.0
    runner.run()
    assert runner.step() > 0            # ran, then idle until the periodic time
    clock.now = 2.05
    runner.run()
    runner.step()
    assert calls == [0.0, 0.0, 2.0, 2.05]


def test_one_quiet_min_interval_refills_one_run_only():
    runner, clock, calls = make(min_interval=1.0, burst=2)
    drain(runner, clock, 0.0)
    clock.now = 1.0
    runner.run()
    runner.step()
    clock.now = 1.05
    runner.run()
    assert runner.step() == pytest.approx(0.95)   # the follow-up waits for the next token
    assert calls == [0.0, 0.0, 1.0]


def test_a_change_half_a_period_after_an_empty_bucket_waits_the_other_half():
    """What a benchmark pacing changes 0.5 s after each became live measures: the rate limit,
    min_interval - 0.5 s every time (upstream's nextPossible = minInterval - elapsed), not a
    fixed delay in the proxier."""
    runner, clock, calls = make(min_interval=1.0, burst=2)
    drain(runner, clock, 0.0)
    clock.now = 0.5
    runner.run()
    assert runner.step() == pytest.approx(0.5)
    clock.now = 1.0
    runner.step()
    assert calls == [0.0, 0.0, 1.0]
