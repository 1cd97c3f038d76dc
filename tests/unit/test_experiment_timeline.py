"""The experiment timeline's ordering (netemu/experiments/timeline.py): an event never overtakes
a phase the scenario ends before it, even when that phase's load started late."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from netemu.experiments import timeline
from netemu.experiments.schema import Phase
from netemu.traffic.spec import LoadSpec


def phase(start: float, **load) -> timeline.PhaseRecord:
    return timeline.PhaseRecord(Phase(name="p", source="client", target="svc/web:80", start=start,
                                      spec=LoadSpec(**load)))


def test_nominal_end_is_start_plus_duration_only_for_a_timed_phase():
    assert timeline.nominal_end(phase(2, duration=4).phase) == 6
    assert timeline.nominal_end(phase(2, requests=100).phase) is None
    until_end = Phase(name="p", source="c", target="t", start=0, spec=LoadSpec(duration=1), until_end=True)
    assert timeline.nominal_end(until_end) is None


def test_an_event_waits_for_a_late_phase_due_to_end_before_it():
    async def scenario():
        late = phase(0, duration=0.2)          # due to end at 0.2 s, the event is at 0.3 s
        untimed = phase(0, requests=10)        # no nominal end: never waited for
        log = []

        async def run_phase():                 # its load starts 0.4 s late, runs 0.2 s
            await asyncio.sleep(0.6)
            log.append(("phase ended", time.monotonic()))
            late.done.set()

        clock = timeline.Clock(time.monotonic(), time.time())
        task = asyncio.ensure_future(run_phase())
        await clock.until(0.3, held=False)
        await timeline.phases_over_by([late, untimed], 0.3)
        log.append(("event", time.monotonic()))
        await task
        return log

    log = asyncio.run(scenario())
    assert [what for what, _ in log] == ["phase ended", "event"]


def test_a_phase_ending_after_the_event_does_not_hold_it():
    async def scenario():
        later = phase(0, duration=5)
        await asyncio.wait_for(timeline.phases_over_by([later], 1.0), 0.5)
    asyncio.run(scenario())
