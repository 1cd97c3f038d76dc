"""Probe state machines (pure): when a probe runs and what its results mean.

Upstream's prober workers (pkg/kubelet/prober/worker.go): nothing runs before
initialDelaySeconds; a result counts only after successThreshold consecutive successes or
failureThreshold consecutive failures; readiness starts False, liveness and startup start
"Success"/"Unknown"; while a startup probe has not succeeded, liveness and readiness do not run;
a liveness or startup failure means the container is killed and restarted, after which the
worker starts over for the new container instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netemu.api.meta import Obj

KINDS = ("startup", "liveness", "readiness")
HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")


@dataclass(frozen=True)
class ProbeSpec:
    kind: str
    handler: str                  # httpGet | tcpSocket | exec | grpc
    action: Obj
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_container(cls, container: Obj, kind: str) -> "ProbeSpec | None":
        """The container's ``<kind>Probe`` with upstream's defaults, or None when absent."""
        probe = container.get(f"{kind}Probe")
        if not probe:
            return None
        handler = next((h for h in HANDLERS if h in probe), None)
        if handler is None:
            raise ValueError(f"{kind} probe of container {container.get('name')!r} has no handler "
                             f"(one of {', '.join(HANDLERS)})")
        return cls(kind=kind, handler=handler, action=probe[handler] or {},
                   initial_delay=float(probe.get("initialDelaySeconds") or 0),
                   period=float(probe.get("periodSeconds") or 10),
                   timeout=float(probe.get("timeoutSeconds") or 1),
                   success_threshold=int(probe.get("successThreshold") or 1) if kind == "readiness" else 1,
                   failure_threshold=int(probe.get("failureThreshold") or 3))


@dataclass
class ProbeState:
    """One probe of one container instance. ``result`` is what the kubelet acts on:
    readiness -> the container's ready flag, liveness/startup -> kill when False."""

    spec: ProbeSpec
    started_at: float                       # when the container instance started
    result: bool | None = None
    successes: int = 0
    failures: int = 0
    last_run: float | None = None
    history: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.result = {"readiness": False, "liveness": True, "startup": None}[self.spec.kind]

    def due_at(self) -> float:
        """When the next probe should run."""
        first = self.started_at + self.spec.initial_delay
        if self.last_run is None:
            return first
        return max(first, self.last_run + self.spec.period)

    def record(self, ok: bool, now: float) -> bool | None:
        """Fold one probe outcome in; returns the (possibly new) result."""
        self.last_run = now
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.spec.success_threshold:
                self.result = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= self.spec.failure_threshold:
                self.result = False
        return self.result

    @property
    def wants_restart(self) -> bool:
        """Liveness or startup failed: the kubelet kills the container (restartPolicy applies)."""
        return self.spec.kind in ("liveness", "startup") and self.result is False


def active_probes(states: dict[str, ProbeState]) -> list[ProbeState]:
    """The probes that may run now: only startup until it has succeeded (startup gating)."""
    startup = states.get("startup")
    if startup is not None and startup.result is not True:
        return [startup]
    return [s for k, s in states.items() if k != "startup"]


def container_ready(states: dict[str, ProbeState], running: bool) -> bool:
    """Ready = running, started (startup passed), and readiness passed (True without a probe)."""
    if not running:
        return False
    startup = states.get("startup")
    if startup is not None and startup.result is not True:
        return False
    readiness = states.get("readiness")
    return readiness is None or readiness.result is True


def container_started(states: dict[str, ProbeState], running: bool) -> bool:
    startup = states.get("startup")
    return running and (startup is None or startup.result is True)


def resolve_port(port: Any, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} not found in container {container.get('name')!r}")
