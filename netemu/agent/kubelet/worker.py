"""One pod's life on this node: sandbox, containers, restarts, probes, status, termination.

Like upstream's pod workers (pkg/kubelet/pod_workers.go), each pod gets one task that serialises
everything done to it. ``sync`` is one reconcile pass; it is driven by pod updates, container
exits, probe results and timers (back-off, probe periods). The API is touched only to write
pods/status and to finish a graceful delete; when the API server is unreachable the pod keeps
running and the status is written again later.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from netemu.agent.kubelet import probes as pr
from netemu.agent.kubelet.backoff import Backoff
from netemu.agent.kubelet.cri import ContainerHandle, Runtime
from netemu.agent.kubelet.lifecycle import Lifecycle, probe_grace
from netemu.agent.kubelet.probing import run_probe
from netemu.agent.kubelet.status import ContainerRecord, adopt, comparable, pod_status
from netemu.agent.kubelet.termination import Termination
from netemu.api.meta import Obj

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """What every pod worker shares: the API writer, the runtime and this node's settings."""

    runtime: Runtime
    write_status: Callable[[Obj, Obj], Any]        # async (pod, status)
    finish_delete: Callable[[Obj], Any]            # async (pod): DELETE grace 0
    node_ip: str
    log_dir: str
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.time
    retry: float = 2.0                             # after a failed API write or sandbox
    event: Callable[[Obj, str, str, str], None] = lambda pod, etype, reason, message: None
    # Sandboxes made or removed at once: each is a few `ip` processes, serialised by the kernel
    # anyway (no faster with 8 at once on 2 cores), while 100 at once cost the agent ~10 MB of
    # child-watcher threads and pipes that malloc keeps afterwards.
    sandbox_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def log_path(log_dir: str, pod: Obj, container: str, restart: int) -> str:
    """Upstream's layout: <dir>/<ns>_<name>_<uid>/<container>/<restartCount>.log"""
    meta = pod["metadata"]
    return os.path.join(log_dir, f"{meta.get('namespace', 'default')}_{meta['name']}_{meta['uid']}",
                        container, f"{restart}.log")


class PodWorker(Lifecycle):
    def __init__(self, ctx: WorkerContext, pod: Obj):
        self.ctx, self.pod = ctx, pod
        self.uid = pod["metadata"]["uid"]
        spec = pod.get("spec") or {}
        self.init_names = [c["name"] for c in spec.get("initContainers") or []]
        self.main_names = [c["name"] for c in spec.get("containers") or []]
        self.containers = {c["name"]: c for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])}
        self.records = {n: ContainerRecord(n, c.get("image", "")) for n, c in self.containers.items()}
        for n in self.main_names:
            if self.init_names:
                self.records[n].reason = "PodInitializing"
        self.ephemeral_names: list[str] = []
        self._add_ephemeral(pod)
        self.handles: dict[str, ContainerHandle] = {}
        self.probes: dict[str, dict[str, pr.ProbeState]] = {}
        self.tasks: dict[str, list[asyncio.Task]] = {}
        self.pod_ip: str | None = None
        self.sandbox_error = ""
        self.phase = "Pending"
        self.released = False            # a finished pod's sandbox was removed
        self.start_time = ctx.clock()
        self.gone = False                # deleted from the API (no DELETE to finish)
        self.termination: Termination | None = None
        self.stoppers: list[asyncio.Task] = []    # containers being stopped (preStop, SIGTERM)
        self.last_digest: str | None = None     # of the last status written (not the status:
                                                # a digest keeps ~10 KB per pod out of the agent)
        self.written_rv: str | None = None     # resourceVersion our last status write produced
        self.wake = asyncio.Event()
        self.done = asyncio.Event()
        adopted, started = adopt(self.records, pod, ctx.node_ip, ctx.clock())
        if adopted:
            self.start_time = started or self.start_time
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                self.pod_ip = (pod.get("status") or {}).get("podIP") or ""   # finished: no new sandbox

    # -- inputs ------------------------------------------------------------------------------

    def update(self, pod: Obj) -> None:
        self.pod = pod
        self._add_ephemeral(pod)
        self.wake.set()

    def _add_ephemeral(self, pod: Obj) -> None:
        """Ephemeral containers (``kubectl debug``) only ever get added to a pod (the API server
        refuses changes and removals): each new one is run once, never restarted."""
        for c in (pod.get("spec") or {}).get("ephemeralContainers") or []:
            name = c.get("name") if isinstance(c, dict) else None
            if name and name not in self.containers:
                self.containers[name] = c
                self.records[name] = ContainerRecord(name, c.get("image", ""))
                self.ephemeral_names.append(name)

    def removed(self) -> None:
        self.gone = True
        self.wake.set()

    @property
    def policy(self) -> str:
        return (self.pod.get("spec") or {}).get("restartPolicy") or "Always"

    def _key(self, name: str) -> str:
        return f"{self.uid}/{name}"

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                self.wake.clear()
                deleting = self.gone or bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))
                if deleting:
                    await self._terminate()
                    return
                try:
                    next_at = await self.sync()
                except Exception:  # a bug must not orphan the pod: log it and try again later
                    log.exception("syncing pod %s failed", self._name())
                    next_at = self.ctx.clock() + self.ctx.retry
                timeout = None if next_at is None else max(0.05, next_at - self.ctx.clock())
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            for tasks in self.tasks.values():
                for t in tasks:
                    t.cancel()
            for t in self.stoppers:
                t.cancel()
            self.done.set()

    async def sync(self) -> float | None:
        """One reconcile pass; returns when the next timer (back-off, retry) is due."""
        now = self.ctx.clock()
        timers: list[float] = []
        if self.pod_ip is None:
            try:
                async with self.ctx.sandbox_slots:
                    self.pod_ip = await self.ctx.runtime.create_sandbox(self.pod)
                self.sandbox_error = ""
            except Exception as exc:  # a runtime failure is reported on the pod, then retried
                log.warning("sandbox for %s failed: %s", self._name(), exc)
                self.sandbox_error = str(exc)
                timers.append(now + self.ctx.retry)
        if self.pod_ip is not None:
            pending = self._next_init()
            running = [] if pending or self._init_failed() else self.main_names + self.ephemeral_names
            for name in [pending] if pending else running:
                at = await self._sync_container(name, now)
                if at:
                    timers.append(at)
        if not await self._write_status(now):
            timers.append(now + self.ctx.retry)
        elif self.phase in ("Succeeded", "Failed") and not self.handles and not self.released:
            await self._release_sandbox()
        return min(timers) if timers else None

    async def _release_sandbox(self) -> None:
        """A finished pod keeps its status (podIP included, like upstream) but not its sandbox:
        the namespace and the IP go at once, so completed Jobs do not exhaust the node's /24."""
        try:
            async with self.ctx.sandbox_slots:
                await self.ctx.runtime.remove_sandbox(self.pod)
            self.released = True
        except Exception as exc:
            log.warning("releasing the sandbox of finished pod %s failed: %s", self._name(), exc)

    def _next_init(self) -> str | None:
        """The init container to run now: init containers run one at a time, in order, each
        to completion (exit 0) before the next; None once all have succeeded."""
        for name in self.init_names:
            rec = self.records[name]
            if not (rec.state == "terminated" and rec.exit_code == 0):
                return None if self._init_failed() else name
        return None

    def _init_failed(self) -> bool:
        """restartPolicy Never and an init container failed: the pod has failed."""
        return self.policy == "Never" and any(
            self.records[n].state == "terminated" and self.records[n].exit_code for n in self.init_names)

    def _restart_policy(self, name: str) -> str:
        """Init containers are retried on failure unless the pod's policy is Never (upstream);
        ephemeral containers never restart."""
        if name in self.ephemeral_names:
            return "Never"
        if name in self.init_names:
            return "Never" if self.policy == "Never" else "OnFailure"
        return self.policy

    async def _sync_container(self, name: str, now: float) -> float | None:
        rec, container = self.records[name], self.containers[name]
        if name in self.handles:
            return None
        if self._adopt(name, now):
            return None
        problem = self.ctx.runtime.unsupported(container)
        if problem:
            if rec.reason != problem[0]:
                self.ctx.event(self.pod, "Warning", "Failed", f"Error: {problem[0]}: {problem[1]}")
            rec.state, (rec.reason, rec.message) = "waiting", problem
            return None
        if rec.state == "terminated" or rec.last_terminated is not None and rec.state == "waiting":
            code = rec.exit_code if rec.state == "terminated" else rec.last_terminated.get("exitCode", 1)
            if not should_restart(self._restart_policy(name), code or 0):
                return None
            ready_at = self.ctx.backoff.ready_at(self._key(name))
            if now < ready_at:
                if rec.state == "terminated":
                    rec.last_terminated = rec.terminated_state()
                    self.ctx.event(self.pod, "Warning", "BackOff",
                                   f"Back-off restarting failed container {name} in pod {self._name()}_"
                                   f"{self.pod['metadata'].get('namespace')}({self.uid})")
                rec.state, rec.reason = "waiting", "CrashLoopBackOff"
                rec.message = (f"back-off {int(ready_at - (rec.finished_at or now))}s restarting failed "
                               f"container={name} pod={self._name()}_{self.pod['metadata'].get('namespace')}({self.uid})")
                return ready_at
            if rec.state == "terminated":
                rec.last_terminated = rec.terminated_state()
            rec.restart_count += 1
        await self._start(name, now)
        return None

    def _adopt(self, name: str, now: float) -> bool:
        """A runtime that outlived the previous kubelet (remote_runtime.py) may already run this
        container: take it over as it runs (True). One that exited meanwhile is recorded as
        terminated with its exit code, so the restart policy decides (False)."""
        adopt = getattr(self.ctx.runtime, "adopt", None)
        found = adopt(self.pod, name) if adopt is not None else None
        if found is None:
            return False
        handle, info = found
        rec = self.records[name]
        rec.restart_count = max(rec.restart_count, info.attempt)
        if handle is None:
            rec.state, rec.exit_code = "terminated", info.exit_code
            rec.reason = "Completed" if info.exit_code == 0 else "Error"
            rec.started_at, rec.finished_at = info.started_at, info.finished_at or now
            self.ctx.backoff.record_exit(self._key(name), rec.finished_at, rec.finished_at - info.started_at)
            return False
        log.info("%s/%s: adopted running container %s", self._name(), name, handle.id)
        was = next((c for c in (self.pod.get("status") or {}).get("containerStatuses") or []
                    if c.get("name") == name), {})
        self._attach(name, handle, info.started_at, ready=bool(was.get("ready")), started=bool(was.get("started")))
        return True

    async def _start(self, name: str, now: float) -> None:
        rec, container = self.records[name], self.containers[name]
        try:
            handle = await self.ctx.runtime.start_container(self.pod, container, rec.restart_count)
        except Exception as exc:   # reported on the container, retried with back-off
            log.warning("starting %s/%s failed: %s", self._name(), name, exc)
            rec.state, rec.reason = "terminated", getattr(exc, "reason", "StartError")
            rec.message = getattr(exc, "message", str(exc))
            rec.exit_code, rec.started_at, rec.finished_at = getattr(exc, "exit_code", 128), now, now
            self.ctx.backoff.record_exit(self._key(name), now)
            self.ctx.event(self.pod, "Warning", "Failed", f"Error: {rec.message}")
            return
        image = container.get("image", "")
        self.ctx.event(self.pod, "Normal", "Pulled", f'Container image "{image}" already present on machine')
        self.ctx.event(self.pod, "Normal", "Created", f"Created container {name}")
        self.ctx.event(self.pod, "Normal", "Started", f"Started container {name}")
        failed = await self._post_start(name, handle)
        self._attach(name, handle, now)
        if failed:                           # killed as upstream's killContainer: it restarts per policy
            self._stop_alone(name, handle)

    def _attach(self, name: str, handle: ContainerHandle, started_at: float, ready: bool = False,
                started: bool = False) -> None:
        """``handle`` is the container ``name`` runs as now: state, probes and exit watch. An
        adopted container keeps the readiness and startup results its pod's status shows until
        its probes say otherwise (upstream's kubelet does the same after a restart, so a kubelet
        restart does not take ready endpoints out of their Services)."""
        rec, container = self.records[name], self.containers[name]
        now = started_at
        self.handles[name] = handle
        rec.state, rec.reason, rec.message, rec.exit_code = "running", "", "", None
        rec.started_at, rec.finished_at, rec.container_id = now, None, f"netemu://{handle.id}"
        states = {}
        for kind in pr.KINDS:
            spec = pr.ProbeSpec.from_container(container, kind)
            if spec is not None:
                states[kind] = pr.ProbeState(spec, started_at=now)
        if ready and "readiness" in states:
            states["readiness"].result = True
        if started and "startup" in states:
            states["startup"].result = True
        self.probes[name] = states
        self._refresh_flags(name)
        self.tasks[name] = [asyncio.ensure_future(self._watch_exit(name, handle))]
        if states:
            self.tasks[name].append(asyncio.ensure_future(self._probe_loop(name, handle)))

    def _refresh_flags(self, name: str) -> None:
        rec = self.records[name]
        running = rec.state == "running"
        rec.ready = pr.container_ready(self.probes.get(name, {}), running)
        rec.started = pr.container_started(self.probes.get(name, {}), running)

    async def _watch_exit(self, name: str, handle: ContainerHandle) -> None:
        code = await handle.wait()
        now = self.ctx.clock()
        rec = self.records[name]
        if self.handles.get(name) is not handle:
            return
        del self.handles[name]
        for t in self.tasks.get(name, [])[1:]:
            t.cancel()
        killed_by_probe = rec.reason == "Killing"
        rec.state, rec.exit_code, rec.finished_at = "terminated", code, now
        rec.reason = "Completed" if code == 0 else "Error"
        rec.message = "" if not killed_by_probe else rec.message
        rec.ready = False
        self.ctx.backoff.record_exit(self._key(name), now, now - (rec.started_at or now))
        self.wake.set()

    async def _probe_loop(self, name: str, handle: ContainerHandle) -> None:
        container = self.containers[name]
        states = self.probes[name]

        async def exec_(argv: list[str], timeout: float) -> tuple[int, bytes]:
            return await self.ctx.runtime.exec(self.pod, container, argv, timeout)

        while self.handles.get(name) is handle:
            active = pr.active_probes(states)
            if not active:
                return
            due = min(active, key=lambda s: s.due_at())
            delay = due.due_at() - self.ctx.clock()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            ok, why = await run_probe(due.spec, container, self.pod_ip or "", exec_)
            if not ok:
                self.ctx.event(self.pod, "Warning", "Unhealthy", f"{due.spec.kind.capitalize()} probe failed: {why}")
            before = due.result
            due.record(ok, self.ctx.clock())
            if due.result != before:
                self._refresh_flags(name)
                self.wake.set()
            if due.wants_restart and self.handles.get(name) is handle:
                rec = self.records[name]
                rec.reason = "Killing"
                rec.message = f"Container {name} failed {due.spec.kind} probe, will be restarted"
                log.info("%s/%s: %s", self._name(), name, rec.message)
                self.ctx.event(self.pod, "Normal", "Killing", rec.message)
                self._stop_alone(name, handle, probe_grace(container, due.spec.kind))
                return

    # -- status ------------------------------------------------------------------------------

    async def _write_status(self, now: float) -> bool:
        records = [self.records[n] for n in self.main_names]
        inits = [self.records[n] for n in self.init_names]
        if self.sandbox_error:
            for r in records + inits:
                if r.state == "waiting":
                    r.reason, r.message = "ContainerCreating", f"sandbox: {self.sandbox_error}"
        elif inits and self._next_init() is None and not self._init_failed():
            for r in records:
                if r.state == "waiting" and r.reason == "PodInitializing":
                    r.reason = "ContainerCreating"
        status = pod_status(self.pod, records, pod_ip=self.pod_ip, host_ip=self.ctx.node_ip,
                            sandbox_ready=self.pod_ip is not None, start_time=self.start_time, now=now,
                            init_records=inits, ephemeral_records=[self.records[n] for n in self.ephemeral_names])
        self.phase = status["phase"]
        digest = status_digest(status)
        if digest == self.last_digest and not self._overwritten():
            return True
        try:
            written = await self.ctx.write_status(self.pod, status)
        except Exception as exc:  # unreachable API, conflict, gone: keep running, retry later
            log.info("status of %s not written (%s); retrying", self._name(), exc)
            return False
        self.last_digest = digest
        self.written_rv = ((written or {}).get("metadata") or {}).get("resourceVersion")
        return True

    def _overwritten(self) -> bool:
        """Someone else changed the status we wrote (the node lifecycle controller marks pods
        not Ready while this node is cut off): write ours again."""
        rv = (self.pod.get("metadata") or {}).get("resourceVersion")
        if not rv or not self.written_rv or rv == self.written_rv or "status" not in self.pod:
            return False
        return status_digest(self.pod["status"]) != self.last_digest

    # -- termination -------------------------------------------------------------------------

    async def _terminate(self) -> None:
        now = self.ctx.clock()
        if self.termination is None:
            self.termination = Termination.begin(self.pod if not self.gone else _no_grace(self.pod), now)
            for cname, handle in list(self.handles.items()):
                if not self.gone:
                    self.ctx.event(self.pod, "Normal", "Killing", f"Stopping container {cname}")
                self.stoppers.append(asyncio.ensure_future(self._stop_container(cname, handle, self.termination)))
        while True:
            if self.gone:
                self.termination.shorten(_no_grace(self.pod), self.ctx.clock())
            else:
                self.termination.shorten(self.pod, self.ctx.clock())
            now = self.ctx.clock()
            if not self.handles:
                break
            for cname, handle in list(self.handles.items()):
                if self.termination.action(now, True, cname) == "kill":
                    handle.signal(signal.SIGKILL)
            if not self.gone:
                # readiness probes keep running while a pod terminates (upstream stops only
                # liveness and startup): its Ready condition must follow them, or endpoints
                # of a draining server (netexec --delay-shutdown: /readyz 503) never go unready
                await self._write_status(self.ctx.clock())
            self.wake.clear()
            first = min(self.termination.kill_at(c) for c in self.handles) if self.handles else now
            wait = max(0.05, min(first - self.ctx.clock(), 1.0))
            try:
                await asyncio.wait_for(self.wake.wait(), wait)
            except asyncio.TimeoutError:
                pass
        for task in self.stoppers:           # preStop hooks still running: abandoned with their containers
            task.cancel()
        try:
            if not self.released:
                async with self.ctx.sandbox_slots:
                    await self.ctx.runtime.remove_sandbox(self.pod)
        except Exception as exc:
            log.warning("removing the sandbox of %s failed: %s", self._name(), exc)
        self.ctx.backoff.forget_prefix(f"{self.uid}/")
        while not self.gone:
            try:
                await self.ctx.finish_delete(self.pod)
                return
            except Exception as exc:
                if _is_not_found(exc):
                    return
                log.info("finishing the delete of %s failed (%s); retrying", self._name(), exc)
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), self.ctx.retry)
                except asyncio.TimeoutError:
                    pass

    def _name(self) -> str:
        return self.pod["metadata"]["name"]


def status_digest(status: Obj) -> str:
    """What a status says (phase, conditions without timestamps, IP, containers), as a short
    digest: equal digests mean nothing worth writing changed."""
    c = comparable(status)
    keys = ("phase", "conditions", "podIP", "containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")
    text = json.dumps({k: c.get(k) for k in keys}, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _no_grace(pod: Obj) -> Obj:
    return dict(pod, metadata=dict(pod.get("metadata") or {}, deletionGracePeriodSeconds=0))




def _is_not_found(exc: Exception) -> bool:
    from netemu.api import errors
    return isinstance(exc, errors.NotFound)
