"""A pod worker's lifecycle hooks (the effects; hooks.py says which and their messages):
postStart right after a container started, preStop before its SIGTERM, as upstream's
kuberuntime (startContainer, killContainer, v1.32) runs them. A mixin of worker.PodWorker,
kept apart so the worker stays readable: it uses the worker's pod, containers, handles,
context and termination timeline."""

from __future__ import annotations

import asyncio
import logging
import signal

from netemu.agent.kubelet.cri import ContainerHandle
from netemu.agent.kubelet.hooks import Hook, hook_of
from netemu.agent.kubelet.probing import NO_TIMEOUT, run_hook
from netemu.agent.kubelet.termination import Termination
from netemu.api.meta import Obj

log = logging.getLogger(__name__)
MINIMUM_KILL_GRACE = 2.0     # kuberuntime's minimumGracePeriodInSeconds: no needless SIGKILLs


def probe_grace(container: Obj, kind: str) -> float | None:
    """A liveness/startup probe's own ``terminationGracePeriodSeconds`` (GA in 1.27), which
    overrides the pod's for the kill it causes; None when it has none."""
    value = (container.get(f"{kind}Probe") or {}).get("terminationGracePeriodSeconds")
    return None if value is None else float(max(int(value), 0))


class Lifecycle:
    """postStart and preStop for PodWorker (which sets every attribute used here)."""

    stoppers: list[asyncio.Task]

    async def _post_start(self, name: str, handle: ContainerHandle) -> bool:
        """lifecycle.postStart right after the start; the pod's sync waits for it (upstream's
        startContainer does), and it is abandoned when the pod is deleted meanwhile. True when
        it failed: a FailedPostStartHook Event (without the message: it may hold secrets)."""
        hook = hook_of(self.containers[name], "postStart")
        if hook is None:
            return False
        task = asyncio.ensure_future(self._run_hook(hook, name))
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            if not task.done() and (self.gone or (self.pod.get("metadata") or {}).get("deletionTimestamp")):
                task.cancel()
                return False
        error = task.result()
        if error:
            log.warning("%s", error)
            self.ctx.event(self.pod, "Warning", "FailedPostStartHook", "PostStartHook failed")
        return bool(error)

    async def _run_hook(self, hook: Hook, name: str, timeout: float = NO_TIMEOUT) -> str | None:
        container = self.containers[name]

        async def exec_(argv: list[str], limit: float) -> tuple[int, bytes]:
            return await self.ctx.runtime.exec(self.pod, container, argv, limit)
        return await run_hook(hook, container, self.pod, self.pod_ip or "", exec_, timeout)

    def _stop_alone(self, name: str, handle: ContainerHandle, grace: float | None = None) -> None:
        """Stop one container while its pod lives (a failed postStart, a failed liveness or
        startup probe) as upstream's killContainer: preStop, SIGTERM, SIGKILL after the pod's
        grace period (or ``grace``: a probe's own terminationGracePeriodSeconds), never less
        than kuberuntime's minimum of 2 s; it then restarts per the restart policy."""
        self.stoppers = [t for t in self.stoppers if not t.done()]
        now = self.ctx.clock()
        timeline = Termination.begin(_undeleted(self.pod), now)
        if grace is not None:
            timeline = Termination(now, now + grace)
        timeline.deadline = max(timeline.deadline, now + MINIMUM_KILL_GRACE)
        self.stoppers.append(asyncio.ensure_future(self._stop_container(name, handle, timeline)))

    async def _stop_container(self, name: str, handle: ContainerHandle, timeline: Termination) -> None:
        """One container's stop (killContainer): its preStop hook within what is left of the
        grace period (abandoned when it is over; a failure is a FailedPreStopHook Event that
        says only "PreStopHook failed", as upstream), then SIGTERM; SIGKILL is the caller's
        (``timeline.kill_at``), or this one's for a container stopped alone."""
        hook = hook_of(self.containers[name], "preStop")
        budget = timeline.hook_budget(self.ctx.clock())
        if hook is not None and budget > 0 and self.handles.get(name) is handle:
            timeline.hook_started(name)
            try:
                error = await asyncio.wait_for(self._run_hook(hook, name, budget), budget)
            except asyncio.TimeoutError:
                error = None
                log.info("%s/%s: the preStop hook did not complete within the grace period", self._name(), name)
            if error:
                log.warning("%s", error)
                self.ctx.event(self.pod, "Warning", "FailedPreStopHook", "PreStopHook failed")
            timeline.hook_ended(name, self.ctx.clock())
        if self.handles.get(name) is not handle:
            return
        handle.signal(signal.SIGTERM)
        if timeline is not self.termination:        # a container stopped alone (failed postStart)
            await asyncio.sleep(max(timeline.kill_at(name) - self.ctx.clock(), 0))
            if self.handles.get(name) is handle:
                handle.signal(signal.SIGKILL)


def _undeleted(pod: Obj) -> Obj:
    """The pod as its spec's grace period sees it (a container killed while the pod lives)."""
    meta = {k: v for k, v in (pod.get("metadata") or {}).items() if k != "deletionGracePeriodSeconds"}
    return dict(pod, metadata=meta)
