"""From what a run measured to the result folder's data: per-second series, events, summary.

Every phase's per-second series (netemu.traffic's Second: t since its own release) is placed on
the experiment's clock (the second it falls in, from the phase's start), then summed per second:
successes, errors by kind, answers per endpoint (and shares), and per phase its own successes,
errors and latency percentiles (percentiles are never averaged across phases: each keeps its
own). kube-proxy's rule syncs are counted per second per node with their mean duration.

Pure: ``build`` takes a timeline.Measured and returns plain JSON-ready data; ``write_csv`` and
``write`` put it in files.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

# What a repeat of the run with the same seed changes, and why (said in summary.json and the report).
VARIES = {
    "endpoint counts": "the kernel picks each connection's endpoint at random (iptables statistic, "
                       "nftables numgen, IPVS schedulers): shares vary within binomial noise",
    "latency": "scheduling on a shared machine: percentiles move run to run",
    "event times": "events are sent on time, but their effects (pods ready, rules synced) take "
                   "what the machine takes; waits shift the timeline by that",
    "rule syncs": "how many changes one sync folds depends on timing",
}
REPEATS = ("pods deleted by delete_pod (seeded choice)", "request order and payloads (traffic seed)",
           "Service and phase names")


def _row(t: int) -> dict:
    return {"t": t, "ok": 0, "errors": {}, "endpoints": {}, "phases": {}, "syncs": {}, "sync_seconds": {}}


def build(measured, scenario) -> dict:
    """{"seconds": [...], "phases": {...}, "events": [...], "syncs": [...], "summary": {...}}."""
    last = max([math.ceil(measured.ended)] + [math.ceil(r.end) for r in measured.phases if r.end is not None])
    rows = [_row(t) for t in range(last + 1)]
    for rec in measured.phases:
        if rec.result is None or rec.start is None:
            continue
        for sec in rec.result.series:
            t = min(len(rows) - 1, max(0, int(math.floor(rec.start + sec.t + 0.5))))
            row = rows[t]
            row["ok"] += sec.ok
            for k, n in sec.errors.items():
                row["errors"][k] = row["errors"].get(k, 0) + n
            for k, n in sec.endpoints.items():
                row["endpoints"][k] = row["endpoints"].get(k, 0) + n
            mine = row["phases"].setdefault(rec.phase.name, {"ok": 0, "errors": 0, "endpoints": {}, "latency": {}})
            mine["ok"] += sec.ok
            mine["errors"] += sec.error_count
            for k, n in sec.endpoints.items():
                mine["endpoints"][k] = mine["endpoints"].get(k, 0) + n
            if sec.latency:
                mine["latency"] = {k: sec.latency.get(k) for k in ("p50", "p90", "p99", "max")}
    for ev in measured.syncs:
        t = int(ev["time"] - measured.wall0)
        if 0 <= t < len(rows):
            node = ev["node"]
            rows[t]["syncs"][node] = rows[t]["syncs"].get(node, 0) + ev["syncs"]
            if ev["duration"] is not None:
                rows[t]["sync_seconds"][node] = max(rows[t]["sync_seconds"].get(node, 0), ev["duration"])
    for row in rows:
        row["error_count"] = sum(row["errors"].values())
        row["share"] = {k: v / row["ok"] for k, v in row["endpoints"].items()} if row["ok"] else {}
    events = [e.to_dict() for e in measured.events]
    syncs = [{**ev, "t": ev["time"] - measured.wall0} for ev in measured.syncs]
    return {"seconds": rows, "phases": {r.phase.name: phase_summary(r) for r in measured.phases},
            "events": events, "syncs": syncs, "summary": summary(measured, scenario, rows, events, syncs)}


def phase_summary(rec) -> dict:
    ph = rec.phase
    out = {"name": ph.name, "from": ph.source, "to": ph.target, "via": ph.via, "node": ph.node,
           "start": rec.start, "end": rec.end,
           "nominal_start": ph.start, "source": rec.source, "expected": rec.expected, "error": rec.error,
           "spec": ph.spec.to_dict()}
    if rec.result is not None:
        r = rec.result.to_dict()
        out.update({k: r[k] for k in ("ok", "errors", "error_count", "requests", "connections", "endpoints",
                                      "unseen", "chi_square", "latency", "connect", "clientips", "throughput",
                                      "stopped_by", "elapsed", "late")})
        out["series"] = [{"t": s["t"], "ok": s["ok"], "errors": s["errors"], "endpoints": s["endpoints"],
                          "latency": s["latency"]} for s in r["series"]]
    return out


def summary(measured, scenario, rows: list[dict], events: list[dict], syncs: list[dict]) -> dict:
    errors: dict[str, int] = {}
    endpoints: dict[str, int] = {}
    for row in rows:
        for k, n in row["errors"].items():
            errors[k] = errors.get(k, 0) + n
        for k, n in row["endpoints"].items():
            endpoints[k] = endpoints.get(k, 0) + n
    per_node: dict[str, dict] = {}
    for ev in syncs:
        n = per_node.setdefault(ev["node"], {"syncs": 0, "max_duration": 0.0, "rules": 0})
        n["syncs"] += ev["syncs"]
        n["max_duration"] = max(n["max_duration"], ev["duration"] or 0.0)
        n["rules"] = ev["rules"]
    return {"name": scenario.name, "variant": scenario.variant, "seed": scenario.seed,
            "duration": scenario.duration, "ended": measured.ended, "settle_seconds": measured.settle_seconds,
            "ok": sum(r["ok"] for r in rows), "errors": errors, "error_count": sum(errors.values()),
            "endpoints": endpoints, "events_failed": [e["label"] for e in events if e["error"]],
            "phases_failed": [r.phase.name for r in measured.phases if r.error],
            "shift": sum(e["waited"] for e in events), "syncs": per_node,
            "restore_failures": measured.restore_failures, "varies": VARIES, "repeats": list(REPEATS)}


def error_window(rows: list[dict], after: float) -> dict:
    """The burst of errors a fault at ``after`` caused: from the first second with errors at or
    after it, every following second that has errors too, up to the first clean one (for the
    failure experiments: how long until the endpoints were removed). Errors after that burst
    (a timeout on a busy machine) are counted apart, as ``later``."""
    window: list[dict] = []
    later = 0
    for r in rows:
        if r["t"] < math.floor(after):
            continue
        if r["error_count"] and (not window or window[-1]["t"] == r["t"] - 1) and later == 0:
            window.append(r)
        elif window:
            later += r["error_count"]
    if not window:
        return {"first": None, "last": None, "seconds": 0, "errors": 0, "later": 0}
    return {"first": window[0]["t"], "last": window[-1]["t"], "seconds": len(window),
            "errors": sum(r["error_count"] for r in window), "later": later}


def write_csv(data: dict, path: Path) -> None:
    rows = data["seconds"]
    kinds = sorted({k for r in rows for k in r["errors"]})
    names = sorted({k for r in rows for k in r["endpoints"]})
    phases = list(data["phases"])
    nodes = sorted({ev["node"] for ev in data["syncs"]})
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t", "ok", "errors", *[f"error:{k}" for k in kinds], *[f"endpoint:{n}" for n in names],
                    *[f"share:{n}" for n in names],
                    *[f"{p}:{c}" for p in phases for c in ("ok", "errors", "latency_p50_s", "latency_p90_s",
                                                           "latency_p99_s")],
                    *[f"syncs:{n}" for n in nodes], *[f"sync_s:{n}" for n in nodes]])
        for r in rows:
            cells = [r["t"], r["ok"], r["error_count"], *[r["errors"].get(k, 0) for k in kinds],
                     *[r["endpoints"].get(n, 0) for n in names], *[round(r["share"].get(n, 0), 4) for n in names]]
            for p in phases:
                mine = r["phases"].get(p, {})
                lat = mine.get("latency") or {}
                cells += [mine.get("ok", 0), mine.get("errors", 0), lat.get("p50"), lat.get("p90"), lat.get("p99")]
            cells += [r["syncs"].get(n, 0) for n in nodes] + [r["sync_seconds"].get(n) for n in nodes]
            w.writerow(cells)


def write(data: dict, folder: Path) -> list[str]:
    """series.json, series.csv, events.json, phases.json, syncs.json, summary.json in ``folder``."""
    files = {"series.json": data["seconds"], "events.json": data["events"], "phases.json": data["phases"],
             "syncs.json": data["syncs"], "summary.json": data["summary"]}
    for name, value in files.items():
        (folder / name).write_text(json.dumps(value, indent=1, default=str) + "\n")
    write_csv(data, folder / "series.csv")
    return [*files, "series.csv"]
