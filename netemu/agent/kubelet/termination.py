"""Graceful termination timeline (pure).

A pod deleted with a grace period gets, per upstream (pkg/kubelet/kuberuntime killContainer,
v1.32), for every container at once: its ``lifecycle.preStop`` hook first, if it has one (the
hook may use the whole grace period: it is abandoned when the period is over), then SIGTERM,
then SIGKILL when what is left of the period is over, never less than 2 s after a hook ended
(minimumGracePeriodInSeconds: the process gets a moment to handle SIGTERM). Then the sandbox
goes and the kubelet finishes the delete with gracePeriodSeconds=0 (the API server keeps the
object until then). A later delete may only shorten the period.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netemu.api.meta import Obj

DEFAULT_GRACE = 30
MINIMUM_GRACE_AFTER_HOOK = 2.0      # kuberuntime's minimumGracePeriodInSeconds


def grace_seconds(pod: Obj) -> float:
    """The period to honour: deletionGracePeriodSeconds when being deleted, else the spec's."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    value = meta.get("deletionGracePeriodSeconds")
    if value is None:
        value = spec.get("terminationGracePeriodSeconds")
    return float(DEFAULT_GRACE if value is None else max(int(value), 0))


@dataclass
class Termination:
    """One pod's stop: ``started`` when it began (preStop hooks, or SIGTERM), ``deadline`` when
    SIGKILL goes; ``after_hook`` holds the later SIGKILL time of a container whose preStop hook
    still runs or ended less than 2 s before the deadline."""

    started: float
    deadline: float
    after_hook: dict[str, float] = field(default_factory=dict)

    @classmethod
    def begin(cls, pod: Obj, now: float) -> "Termination":
        return cls(now, now + grace_seconds(pod))

    def shorten(self, pod: Obj, now: float) -> None:
        """A second delete with a smaller grace period moves SIGKILL earlier, never later (for
        every container: the new period rules)."""
        new = now + grace_seconds(pod)
        if new < self.deadline:
            self.deadline = new
            self.after_hook.clear()

    def hook_budget(self, now: float) -> float:
        """How long a preStop hook starting now may run: what is left of the period."""
        return max(self.deadline - now, 0.0)

    def hook_started(self, container: str) -> None:
        """The container's preStop hook runs: no SIGKILL before it ended or was abandoned
        (``hook_ended``), unless a shorter delete comes."""
        self.after_hook[container] = float("inf")

    def hook_ended(self, container: str, now: float) -> None:
        """The container's preStop hook ended (or was abandoned) at ``now``: SIGTERM goes now,
        SIGKILL when the period is over but not before the minimum grace."""
        self.after_hook[container] = max(self.deadline, now + MINIMUM_GRACE_AFTER_HOOK)

    def kill_at(self, container: str) -> float:
        return max(self.deadline, self.after_hook.get(container, self.deadline))

    def action(self, now: float, still_running: bool, container: str = "") -> str:
        """What to do now: 'wait' for the containers, 'kill' them, or 'finish' (all stopped)."""
        if not still_running:
            return "finish"
        return "kill" if now >= self.kill_at(container) else "wait"
