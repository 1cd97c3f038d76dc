"""The provider load balancer's health checks of its targets, from the LB host's namespace.

As a cloud LB checks instances: externalTrafficPolicy Local asks kube-proxy's health-check
NodePort (``GET /healthz``: 200 while the node has a ready local endpoint, 503 without), Cluster
connects to the NodePort (TCP). A target changes state after ``rise`` passes or ``fall``
failures in a row (a new target starts unhealthy, as AWS NLB's "initial" state, and needs
``rise`` passes). Defaults are quicker than a cloud's (2 s interval, 2/2) so experiments see
failover within seconds; ``netemu up --edge --lb-health-check ...`` sets them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from netemu.agent.runtime.probe import http_get, tcp_connect

Key = tuple[str, str, int]            # (service namespace/name, node IP, port checked)


@dataclass(frozen=True)
class HealthSettings:
    interval: float = 2.0
    timeout: float = 1.0
    rise: int = 2
    fall: int = 2

    @classmethod
    def parse(cls, text: str) -> "HealthSettings":
        """``interval=S,timeout=S,rise=N,fall=N`` (any of them; the rest keep their defaults), as
        ``netemu up --lb-health-check`` takes it: a cloud's own values (AWS NLB: 30 s, 10 s, 3, 3)
        make failover as slow as there. ValueError naming the bad part."""
        values: dict = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key not in ("interval", "timeout", "rise", "fall"):
                raise ValueError(f"{part!r}: give interval=S, timeout=S, rise=N or fall=N")
            try:
                values[key] = float(value) if key in ("interval", "timeout") else int(value)
            except ValueError:
                raise ValueError(f"{part!r}: {key} wants a {'number of seconds' if key in ('interval', 'timeout') else 'whole number'}") from None
        settings = cls(**values)
        if not 0 < settings.timeout <= settings.interval <= 300:
            raise ValueError(f"timeout {settings.timeout:g} s and interval {settings.interval:g} s: "
                             f"need 0 < timeout <= interval <= 300")
        if not (1 <= settings.rise <= 10 and 1 <= settings.fall <= 10):
            raise ValueError(f"rise {settings.rise} and fall {settings.fall}: each 1 to 10")
        return settings


@dataclass
class TargetState:
    healthy: bool = False
    passes: int = 0
    failures: int = 0
    decided: bool = False          # a first verdict reached (AWS NLB's "initial" state is over)

    def record(self, ok: bool, settings: HealthSettings) -> bool:
        """Fold one result in; True when the verdict changed."""
        if ok:
            self.passes, self.failures = self.passes + 1, 0
            if not self.healthy and self.passes >= settings.rise:
                self.healthy = self.decided = True
                return True
        else:
            self.failures, self.passes = self.failures + 1, 0
            if self.failures >= settings.fall:
                self.decided = True
            if self.healthy and self.failures >= settings.fall:
                self.healthy = False
                return True
        return False


@dataclass
class HealthChecker:
    netns: str | None
    settings: HealthSettings = field(default_factory=HealthSettings)
    states: dict[Key, TargetState] = field(default_factory=dict)

    def healthy(self, service: str, ip: str, port: int | None) -> bool:
        if port is None:
            return True                    # nothing to ask (a UDP-only Service): always in
        state = self.states.get((service, ip, port))
        return bool(state and state.healthy)

    def undecided(self) -> list[Key]:
        """Targets still in their initial state: no verdict yet either way."""
        return sorted(k for k, st in self.states.items() if not st.decided)

    async def check(self, wanted: dict[Key, bool]) -> bool:
        """Probe every (service, node, port) in ``wanted`` ({key: http?}) once; forget the
        others. True when some verdict changed."""
        for key in list(self.states):
            if key not in wanted:
                del self.states[key]
        keys = list(wanted)
        results = await asyncio.gather(*(self._probe(k[1], k[2], wanted[k]) for k in keys))
        changed = False
        for key, ok in zip(keys, results):
            changed |= self.states.setdefault(key, TargetState()).record(ok, self.settings)
        return changed

    async def _probe(self, ip: str, port: int, http: bool) -> bool:
        t = self.settings.timeout
        if http:
            result = await http_get(ip, port, "/healthz", t, netns=self.netns)
        else:
            result = await tcp_connect(ip, port, t, netns=self.netns)
        return result.ok
