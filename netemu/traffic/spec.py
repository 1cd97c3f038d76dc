"""What a traffic run is asked to do: the target, the load's shape, the stop condition.

Pure data, checked in one place (``LoadSpec.check``) before any socket exists: a bad rate, an
empty stop condition or a payload the protocol cannot carry is a ``SpecError`` with a message
naming the option, never a half-sent run. The spec travels to the worker process as JSON, so it
holds only plain values.

The model, the same for every protocol:
- a *connection* is one TCP connection, or one UDP flow (a socket of its own, so one source port
  and one conntrack entry: one load-balancing decision of the kernel, like a TCP connection);
- a *request* is one exchange on it: an HTTP request and its answer, a UDP datagram and its
  answer, or (raw ``tcp``) sending the payload and reading what the server sends until it closes;
- without ``keepalive`` every connection carries one request; with it a connection carries up
  to ``per_connection`` requests (None: until the run ends), as wrk's persistent connections.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field, fields

PROTOCOLS = ("http", "tcp", "udp")
ARRIVALS = ("uniform", "poisson")
MAX_PAYLOAD = 1024 * 1024          # the built-in agnhost's largest request body (httpserve.MAX_BODY)
MAX_UDP_PAYLOAD = 65_000


class SpecError(ValueError):
    """A traffic request that cannot run; the message names the option and why."""


@dataclass(frozen=True)
class Target:
    """Where the traffic goes: an IPv4/IPv6 address and port, with how the user named it
    (``svc/web:80``, ``pod/web-1:8080``, ``10.96.0.10:53``) for reports."""

    ip: str
    port: int
    name: str = ""

    def check(self) -> None:
        try:
            ipaddress.ip_address(self.ip)
        except ValueError:
            raise SpecError(f"target address {self.ip!r} is not an IP address") from None
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise SpecError(f"target port {self.port!r} is not a port (1-65535)")

    @property
    def label(self) -> str:
        return self.name or self.address

    @property
    def address(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class LoadSpec:
    """The load: protocol, how much (one of connections / requests / duration), how fast (rate
    or concurrency), and what each request carries.

    ``rate``: new requests per second, open loop (a request due while ``concurrency`` are in
    flight waits and is counted ``late``); without it, ``concurrency`` loops send back to back
    (closed loop). ``seed`` makes the payload bytes and Poisson arrivals repeatable.
    ``clientip_probes``: after the load, that many extra connections ask the answering backend
    which source address it saw (agnhost ``/clientip`` or the UDP ``clientip`` command).
    ``warm`` (with ``keepalive`` and ``rate``): open all ``concurrency`` connections before the
    first request, so the set of connections is fixed from the start (long-lived connections, as
    a connection pool has them) instead of growing when requests overlap.
    ``source_port`` (udp, one flow at a time): every socket binds this local port, so a flow
    reopened after a timeout keeps its 5-tuple and conntrack entry, as a UDP client with a fixed
    port (a resolver, a syslog or statsd sender) does."""

    proto: str = "http"
    connections: int | None = None
    requests: int | None = None
    duration: float | None = None
    rate: float | None = None
    concurrency: int | None = None
    keepalive: bool = False
    per_connection: int | None = None
    payload: int = 0
    path: str = "/hostname"
    host: str | None = None           # the HTTP Host header (default: the target's address)
    timeout: float = 2.0
    seed: int = 0
    arrival: str = "uniform"
    clientip_probes: int = 0
    workers: int = 1
    warm: bool = False
    source_port: int | None = None

    def check(self) -> LoadSpec:
        """Raise SpecError for anything that cannot run; returns self for chaining."""
        if self.proto not in PROTOCOLS:
            raise SpecError(f"--proto {self.proto!r}: choose one of {', '.join(PROTOCOLS)}")
        stops = [n for n in ("connections", "requests", "duration") if getattr(self, n) is not None]
        if len(stops) != 1:
            raise SpecError("give exactly one of --connections, --requests, --duration"
                            + (f" (got {', '.join('--' + s for s in stops)})" if stops else ""))
        for name in ("connections", "requests", "concurrency", "per_connection", "workers"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise SpecError(f"--{name.replace('_', '-')} must be a whole number >= 1, not {value!r}")
        for name in ("duration", "rate", "timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise SpecError(f"--{name} must be > 0, not {value!r}")
        if self.per_connection is not None and not self.keepalive:
            raise SpecError("--per-connection needs --keepalive (without it a connection carries one request)")
        if self.warm and not (self.keepalive and self.rate is not None and self.concurrency is not None):
            raise SpecError("--warm needs --keepalive, --rate and --concurrency (the connections opened first)")
        if self.source_port is not None:
            if not isinstance(self.source_port, int) or isinstance(self.source_port, bool) or \
                    not 1 <= self.source_port <= 65535:
                raise SpecError(f"--source-port must be a port (1-65535), not {self.source_port!r}")
            if self.proto != "udp" or self.slots != 1 or self.workers != 1 or self.clientip_probes:
                raise SpecError("--source-port needs --proto udp, one flow at a time (--concurrency 1, one "
                                "worker) and no --clientip-probes")
        if self.keepalive and self.proto == "tcp":
            raise SpecError("--keepalive needs http or udp: a raw tcp request ends by half-closing its connection")
        if self.keepalive and self.connections is not None and self.per_connection is None:
            raise SpecError("--connections with --keepalive needs --per-connection K (or use --requests "
                            "or --duration: persistent connections otherwise never end)")
        limit = MAX_UDP_PAYLOAD if self.proto == "udp" else MAX_PAYLOAD
        if not isinstance(self.payload, int) or not 0 <= self.payload <= limit:
            raise SpecError(f"--payload must be 0..{limit} bytes for {self.proto}, not {self.payload!r}")
        if self.proto == "http" and (not self.path.startswith("/") or any(c in self.path for c in " \r\n")):
            raise SpecError(f"--path {self.path!r}: an absolute path without spaces, e.g. /hostname")
        if self.host is not None and (self.proto != "http" or not self.host or any(c in self.host for c in " \r\n/")):
            raise SpecError(f"--host {self.host!r}: a host name for HTTP's Host header (e.g. an Ingress rule's host)")
        if self.arrival not in ARRIVALS:
            raise SpecError(f"--arrival {self.arrival!r}: choose one of {', '.join(ARRIVALS)}")
        if self.arrival == "poisson" and self.rate is None:
            raise SpecError("--arrival poisson needs --rate")
        if not isinstance(self.clientip_probes, int) or self.clientip_probes < 0:
            raise SpecError(f"--clientip-probes must be >= 0, not {self.clientip_probes!r}")
        if self.proto == "tcp" and self.clientip_probes:
            raise SpecError("--clientip-probes needs http or udp (raw tcp cannot ask the backend)")
        if self.workers > 1 and self.count is not None and self.count < self.workers:
            raise SpecError(f"--workers {self.workers} is more than the {self.count} requests to send")
        return self

    @property
    def count(self) -> int | None:
        """The count that stops the run (connections or requests), None for a duration."""
        return self.connections if self.connections is not None else self.requests

    @property
    def slots(self) -> int:
        """How many requests may be in flight at once."""
        if self.concurrency is not None:
            return self.concurrency
        return 256 if self.rate is not None else 1

    def split(self, n: int) -> list[LoadSpec]:
        """``n`` specs whose sum is this one (for ``n`` worker processes): counts, rate and
        concurrency divided as evenly as possible, seeds distinct, the probes on the first."""
        def part(total: int | None, i: int) -> int | None:
            return None if total is None else total // n + (1 if i < total % n else 0)
        out = []
        for i in range(n):
            out.append(LoadSpec(**{
                **self.to_dict(), "connections": part(self.connections, i), "requests": part(self.requests, i),
                "rate": None if self.rate is None else self.rate / n,
                "concurrency": None if self.concurrency is None else max(1, part(self.concurrency, i)),
                "seed": self.seed * 1000 + i, "clientip_probes": self.clientip_probes if i == 0 else 0,
                "workers": 1}))
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LoadSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Job:
    """What one worker process runs: its share of the load, the target, and the addresses the
    run may reach (checked again inside the worker, next to the socket)."""

    target: Target
    spec: LoadSpec
    allowed: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"target": asdict(self.target), "spec": self.spec.to_dict(), "allowed": list(self.allowed)}

    @classmethod
    def from_dict(cls, data: dict) -> Job:
        return cls(Target(**data["target"]), LoadSpec.from_dict(data["spec"]), tuple(data.get("allowed") or ()))
