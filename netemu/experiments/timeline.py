"""Running one scenario's timeline: traffic phases and events on one clock, measured.

t = 0 is when the cluster has settled with the manifests applied (settle.py). From there:
- each traffic phase starts at its ``start`` (a TrafficRun of netemu.traffic, resolved against
  the cluster at that moment) and runs its own stop condition; its per-second series is placed
  on the experiment's clock from the moment its workers were released;
- the events run in order at their ``at``; one with ``wait: true`` holds the timeline until
  the cluster has settled again, and everything due after it moves by the time that took
  (the "shift", recorded on each event); an event also waits until the phases the scenario
  ends by its ``at`` have ended (a late-started phase must not see the next event's change);
- kube-proxy's metrics are sampled on every node all along (scrape.py).

The run ends at ``duration`` (plus the shifts). A phase without a stop condition of its own
runs until then and is stopped there; one still running its own count or duration gets a grace
of ``END_GRACE`` s, then is cancelled too (a result keeps what it measured).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Callable

from netemu.experiments import actions, settle
from netemu.experiments.cluster import Handle
from netemu.experiments.schema import Event, Phase, Scenario
from netemu.experiments.scrape import Scrapers

END_GRACE = 10.0


@dataclass
class Clock:
    """The experiment's clock: monotonic seconds since t = 0, and the shift held events add."""

    mono0: float
    wall0: float
    shift: float = 0.0
    holds: list = field(default_factory=list)  # (nominal at, settled Event) of each wait: true event

    def now(self) -> float:
        return time.monotonic() - self.mono0

    async def until(self, nominal: float, held: bool = True) -> None:
        """Sleep until ``nominal`` (plus the shift), and (``held``) never before every ``wait:
        true`` event due at or before it has settled: a phase starting with such an event waits
        for it. The events themselves run one after another, so they pass ``held=False``."""
        while True:
            pending = [done for at, done in self.holds if held and at <= nominal and not done.is_set()]
            if pending:
                await pending[0].wait()
                continue
            left = nominal + self.shift - self.now()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))


@dataclass
class PhaseRecord:
    phase: Phase
    start: float | None = None                 # experiment seconds when its load was released
    end: float | None = None
    result: object = None                      # netemu.traffic.Result
    source: dict | None = None
    expected: list | None = None
    error: str | None = None
    traffic: object = None                     # the TrafficRun while it runs (to cancel it)
    done: asyncio.Event = field(default_factory=asyncio.Event)   # set when it ended, however


def nominal_end(phase: Phase) -> float | None:
    """When the scenario says ``phase`` ends (start + duration); None for a phase that stops
    after a count of requests or connections, or runs until the end."""
    duration = getattr(phase.spec, "duration", None)
    return None if phase.until_end or not duration else phase.start + duration


async def phases_over_by(phases: list[PhaseRecord], at: float) -> None:
    """Until every phase the scenario ends by ``at`` has ended. A phase whose load started late
    (a slow exec into its source pod on a loaded box) would else still be sending when the next
    event changes the cluster, and count endpoints its phase never had (seen: phase n2 of
    experiment (a) answered by 3 pods after a late start overlapped the scale to 3)."""
    for rec in phases:
        end = nominal_end(rec.phase)
        if end is not None and end <= at:
            await rec.done.wait()


@dataclass
class EventRecord:
    index: int
    event: Event
    start: float | None = None
    end: float | None = None
    waited: float = 0.0
    details: dict = field(default_factory=dict)
    error: str | None = None
    settled: asyncio.Event | None = None      # set when a wait: true event has settled

    def to_dict(self) -> dict:
        ev = self.event
        params = {k: v for k, v in ev.params.items() if not k.startswith("_")}
        return {"index": self.index, "kind": ev.kind, "label": ev.label(), "at": ev.at, "wait": ev.wait,
                "line": ev.line, "params": params, "t": self.start, "end": self.end, "waited": self.waited,
                "details": self.details, "error": self.error}


@dataclass
class Measured:
    """What one run measured, before it is turned into series and files."""

    wall0: float
    ended: float
    phases: list[PhaseRecord]
    events: list[EventRecord]
    syncs: list[dict]
    availability: dict
    settle_seconds: float
    restore_failures: list[str]


async def _phase(rec: PhaseRecord, clock: Clock, handle: Handle, log: Callable[[str], None]) -> None:
    from netemu.traffic.cluster import prepare

    ph = rec.phase
    await clock.until(ph.start)
    started: list[float] = []

    def progress(p) -> None:
        if not started:
            started.append(time.monotonic() - p.elapsed)
    try:
        prepared = await prepare(str(handle.state_dir), ph.source, ph.target, ph.spec, namespace=ph.namespace,
                                 via=ph.via, node=ph.node, weights=ph.weights, on_progress=progress)
        rec.source = {"kind": prepared.source.kind, "name": prepared.source.name, "ip": prepared.source.ip,
                      "node": prepared.source.node}
        rec.expected = prepared.resolved.expected
        rec.traffic = prepared.run                   # so the end of the experiment can cancel it
        log(f"phase {ph.name}: {ph.source} -> {prepared.resolved.target.label}")
        rec.result = await prepared.run.run()
        go = started[0] if started else time.monotonic() - rec.result.elapsed
        rec.start = go - clock.mono0
        rec.end = rec.start + rec.result.elapsed
    except Exception as exc:  # a phase that cannot run is reported, the others go on
        rec.error = f"{type(exc).__name__}: {exc}"
        log(f"phase {ph.name} failed: {rec.error}")
    finally:
        rec.done.set()


async def _events(records: list[EventRecord], clock: Clock, ctx: actions.Context, scenario: Scenario,
                  scrapers: Scrapers, log: Callable[[str], None], phases: list[PhaseRecord]) -> None:
    for rec in records:
        ev = rec.event
        await clock.until(ev.at, held=False)
        await phases_over_by(phases, ev.at)
        rec.start = clock.now()
        log(f"t={rec.start:5.1f}s event {ev.label()}")
        try:
            params = {k: v for k, v in ev.params.items() if not k.startswith("_")}
            rec.details = await actions.ACTIONS[ev.kind](ctx, params)
            if ev.wait:
                rec.waited = await settle.wait_settled(ctx.client, scenario, scrapers, lb_status=ctx.handle.lb_status())
        except Exception as exc:  # the event failed: recorded, the timeline goes on
            rec.error = f"{type(exc).__name__}: {exc}"
            log(f"event {ev.label()} failed: {rec.error}")
        finally:
            rec.end = clock.now()
            if ev.wait:
                clock.shift += max(0.0, rec.end - (ev.at + clock.shift))
                rec.settled.set()


async def run_timeline(scenario: Scenario, handle: Handle, client, scrapers: Scrapers,
                       log: Callable[[str], None] = print) -> Measured:
    """Settle, then run the phases and events of ``scenario``; restore what the events changed."""
    settle_seconds = await settle.wait_settled(client, scenario, scrapers, lb_status=handle.lb_status())
    ctx = actions.Context(client, handle, scenario.name, random.Random(scenario.seed))
    clock = Clock(time.monotonic(), time.time())
    phases = [PhaseRecord(ph) for ph in scenario.phases]
    events = [EventRecord(i, ev, settled=asyncio.Event() if ev.wait else None) for i, ev in enumerate(scenario.events)]
    clock.holds = [(rec.event.at, rec.settled) for rec in events if rec.settled is not None]
    tasks = [asyncio.ensure_future(_phase(rec, clock, handle, log)) for rec in phases]
    timeline = asyncio.ensure_future(_events(events, clock, ctx, scenario, scrapers, log, phases))
    restore_failures: list[str] = []
    try:
        await clock.until(scenario.duration)
        await timeline
        for rec in phases:
            if rec.phase.until_end and rec.traffic is not None:
                rec.traffic.cancel()
        done, pending = await asyncio.wait(tasks, timeout=END_GRACE) if tasks else (set(), set())
        for rec in phases:
            if rec.traffic is not None:
                rec.traffic.cancel()
        if pending:
            await asyncio.wait(pending, timeout=30)
    finally:
        for task in [*tasks, timeline]:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, timeline, return_exceptions=True)
        restore_failures = await actions.restore(ctx)
    return Measured(clock.wall0, clock.now(), phases, events, scrapers.events(), scrapers.availability(),
                    settle_seconds, restore_failures)
