"""A traffic run's result: the merge of every worker's per-second deltas, and what it means.

``Tally`` collects ticks as they arrive (the live view reads it); ``Tally.result()`` makes the
``Result``: totals, per-endpoint counts (the Service's endpoints that never answered included,
as 0), the chi-square test against uniform or given weights, latency percentiles, errors by
kind, throughput, the source address each backend saw, and the per-second series experiments
plot (successes, errors, latency, each endpoint's share).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from netemu.traffic.protocols import UNKNOWN
from netemu.traffic.spec import LoadSpec, Target
from netemu.traffic.stats import chi_square, summary


@dataclass
class Second:
    """One second of the run (``t``: seconds since the start), all workers together."""

    t: int
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    endpoints: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    late: int = 0
    sent: int = 0
    received: int = 0
    latency: dict = field(default_factory=dict)       # summary() of request latency, seconds
    connect: dict = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def share(self) -> dict[str, float]:
        """Each endpoint's fraction of this second's answers."""
        return {k: v / self.ok for k, v in self.endpoints.items()} if self.ok else {}


class Tally:
    """The running merge of ``tick`` messages (from any number of workers)."""

    def __init__(self) -> None:
        self.seconds: dict[int, dict] = {}
        self.ok = self.errors = self.connections = 0
        self.endpoints: dict[str, int] = {}

    def add(self, tick: dict) -> None:
        s = self.seconds.setdefault(tick["second"], {"ok": 0, "errors": {}, "endpoints": {}, "connect_us": [],
                                                     "latency_us": [], "connections": 0, "late": 0,
                                                     "sent": 0, "received": 0})
        for key in ("ok", "connections", "late", "sent", "received"):
            s[key] += tick.get(key, 0)
        for key in ("errors", "endpoints"):
            for name, n in (tick.get(key) or {}).items():
                s[key][name] = s[key].get(name, 0) + n
        s["connect_us"] += tick.get("connect_us") or []
        s["latency_us"] += tick.get("latency_us") or []
        self.ok += tick.get("ok", 0)
        self.errors += sum((tick.get("errors") or {}).values())
        self.connections += tick.get("connections", 0)
        for name, n in (tick.get("endpoints") or {}).items():
            self.endpoints[name] = self.endpoints.get(name, 0) + n

    def result(self, target: Target, spec: LoadSpec, elapsed: float, stopped_by: str,
               clientips: dict[str, list[str]], expected: list[str] | None = None,
               weights: dict[str, float] | None = None, started: float = 0.0) -> Result:
        series, latency, connect = [], [], []
        errors: dict[str, int] = {}
        late = sent = received = 0
        last = max(self.seconds, default=-1)
        for t in range(last + 1):
            s = self.seconds.get(t)
            if s is None:
                series.append(Second(t))
                continue
            lat = [us / 1e6 for us in s["latency_us"]]
            con = [us / 1e6 for us in s["connect_us"]]
            latency += lat
            connect += con
            for k, n in s["errors"].items():
                errors[k] = errors.get(k, 0) + n
            late, sent, received = late + s["late"], sent + s["sent"], received + s["received"]
            series.append(Second(t, s["ok"], dict(s["errors"]), dict(s["endpoints"]), s["connections"], s["late"],
                                 s["sent"], s["received"], summary(lat), summary(con)))
        endpoints = dict(self.endpoints)
        for name in expected or ():
            endpoints.setdefault(name, 0)
        return Result(target=target, spec=spec, started=started, elapsed=elapsed, stopped_by=stopped_by,
                      ok=self.ok, errors=errors, connections=self.connections, late=late,
                      bytes_sent=sent, bytes_received=received, endpoints=endpoints,
                      expected=list(expected) if expected is not None else None, weights=weights,
                      latency=summary(latency), connect=summary(connect),
                      clientips={k: list(v) for k, v in clientips.items()}, series=series)


@dataclass
class Result:
    """What a traffic run measured. Latencies in seconds; ``endpoints``: answers per backend
    (``?``: answers that did not say who they were); ``expected``: the endpoints the target
    had when the run started (None: not known, e.g. a plain IP)."""

    target: Target
    spec: LoadSpec
    started: float
    elapsed: float
    stopped_by: str                  # count | duration | cancel
    ok: int
    errors: dict[str, int]
    connections: int
    late: int
    bytes_sent: int
    bytes_received: int
    endpoints: dict[str, int]
    expected: list[str] | None
    weights: dict[str, float] | None
    latency: dict
    connect: dict
    clientips: dict[str, list[str]]
    series: list[Second]

    @property
    def cancelled(self) -> bool:
        return self.stopped_by == "cancel"

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def requests(self) -> int:
        return self.ok + self.error_count

    @property
    def throughput(self) -> dict[str, float]:
        t = self.elapsed
        if not t:
            return dict.fromkeys(("requests_per_s", "connections_per_s", "sent_bytes_per_s",
                                  "received_bytes_per_s"), 0.0)
        return {"requests_per_s": self.ok / t, "connections_per_s": self.connections / t,
                "sent_bytes_per_s": self.bytes_sent / t, "received_bytes_per_s": self.bytes_received / t}

    @property
    def unseen(self) -> list[str]:
        """Expected endpoints that never answered."""
        return sorted(n for n in self.expected or () if not self.endpoints.get(n))

    @property
    def chi_square(self) -> dict | None:
        """The endpoint counts against ``weights`` (or uniform over the expected endpoints, or
        over those that answered when none are known); unidentified answers left out."""
        observed = {k: v for k, v in self.endpoints.items() if k != UNKNOWN}
        if self.weights is not None:
            return chi_square(observed, self.weights)
        return chi_square(observed)

    def to_dict(self) -> dict:
        out = {"target": asdict(self.target), "spec": self.spec.to_dict()}
        for name in ("started", "elapsed", "stopped_by", "ok", "errors", "connections", "late", "bytes_sent",
                     "bytes_received", "endpoints", "expected", "weights", "latency", "connect", "clientips"):
            out[name] = getattr(self, name)
        out.update(requests=self.requests, error_count=self.error_count, throughput=self.throughput,
                   unseen=self.unseen, chi_square=self.chi_square,
                   series=[{**asdict(s), "share": s.share()} for s in self.series])
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def write(self, path: str | Path) -> None:
        """JSON or CSV (by the file's suffix; CSV: one row per second)."""
        path = Path(path)
        if path.suffix.lower() == ".csv":
            self.write_csv(path)
        else:
            path.write_text(self.to_json() + "\n")

    def write_csv(self, path: Path) -> None:
        names = sorted(self.endpoints)
        kinds = sorted(self.errors)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t", "ok", "errors", *[f"error:{k}" for k in kinds], "connections", "late",
                        "latency_p50_s", "latency_p99_s", "latency_max_s", "connect_p50_s",
                        *[f"endpoint:{n}" for n in names]])
            for s in self.series:
                w.writerow([s.t, s.ok, s.error_count, *[s.errors.get(k, 0) for k in kinds], s.connections, s.late,
                            s.latency.get("p50"), s.latency.get("p99"), s.latency.get("max"),
                            s.connect.get("p50"), *[s.endpoints.get(n, 0) for n in names]])


def check_output(path: str | None, suffixes: tuple[str, ...]) -> None:
    """Refuse before the run an output file that cannot be written or has an unknown suffix,
    so a long run never ends in a lost result."""
    import os

    from netemu.traffic.spec import SpecError
    if path is None:
        return
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise SpecError(f"{path}: the file name must end in {' or '.join(suffixes)}")
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise SpecError(f"{path} is a directory")
    if not parent.is_dir():
        raise SpecError(f"cannot write {path}: no directory {parent}")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise SpecError(f"cannot write {path}: permission denied")
