"""Container restart back-off (pure): upstream's kubelet waits 10 s after a crash, doubling to a
5 min cap (pkg/kubelet/kuberuntime, flowcontrol.Backoff), and forgets the history once a container
has run longer than twice the cap. Times are passed in, so tests drive the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 10.0
    maximum: float = 300.0
    _entries: dict[str, tuple[float, float]] = field(default_factory=dict)   # key -> (delay, last exit)

    def record_exit(self, key: str, now: float, ran_for: float = 0.0) -> float:
        """A container exited at ``now`` after running ``ran_for`` s: returns the delay before the
        next start. A long healthy run (>= 2 x maximum) resets the delay to ``initial``."""
        prev = self._entries.get(key)
        if prev is None or ran_for >= 2 * self.maximum or now - prev[1] > 2 * self.maximum + prev[0]:
            delay = self.initial
        else:
            delay = min(prev[0] * 2, self.maximum)
        self._entries[key] = (delay, now)
        return delay

    def ready_at(self, key: str) -> float:
        """When the container may start again (0 when it never exited)."""
        entry = self._entries.get(key)
        return entry[0] + entry[1] if entry else 0.0

    def in_backoff(self, key: str, now: float) -> bool:
        return now < self.ready_at(key)

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
