"""Graceful termination timeline (pure).

A pod deleted with a grace period gets, per upstream (pkg/kubelet/kuberuntime killContainer):
SIGTERM to every container at once, SIGKILL to what still runs when the grace period is over,
then the sandbox goes and the kubelet finishes the delete with gracePeriodSeconds=0 (the API
server keeps the object until then). A later delete may only shorten the period.
"""

from __future__ import annotations

from dataclasses import dataclass

from netemu.api.meta import Obj

DEFAULT_GRACE = 30


def grace_seconds(pod: Obj) -> float:
    """The period to honour: deletionGracePeriodSeconds when being deleted, else the spec's."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    value = meta.get("deletionGracePeriodSeconds")
    if value is None:
        value = spec.get("terminationGracePeriodSeconds")
    return float(DEFAULT_GRACE if value is None else max(int(value), 0))


@dataclass
class Termination:
    """One pod's stop: ``started`` when SIGTERM went out, ``deadline`` when SIGKILL goes."""

    started: float
    deadline: float

    @classmethod
    def begin(cls, pod: Obj, now: float) -> "Termination":
        return cls(now, now + grace_seconds(pod))

    def shorten(self, pod: Obj, now: float) -> None:
        """A second delete with a smaller grace period moves SIGKILL earlier, never later."""
        self.deadline = min(self.deadline, now + grace_seconds(pod))

    def action(self, now: float, still_running: bool) -> str:
        """What to do now: 'wait' for the containers, 'kill' them, or 'finish' (all stopped)."""
        if not still_running:
            return "finish"
        return "kill" if now >= self.deadline else "wait"
