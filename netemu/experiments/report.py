"""report.html: one self-contained page per run (the PNGs beside it), readable offline.

The page says what ran (scenario, variant, seed, versions), the events as they happened, each
phase's figures (answers, errors by kind, endpoints and shares, chi-square, latency, client
addresses seen), kube-proxy's syncs per node, the plots, and which figures are expected to vary
between two runs with the same seed. Every value is HTML-escaped.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

# Marks, once the page has loaded, how many of its images a browser could draw (the tests read
# it back from headless Chromium's DOM: a broken plot shows as 3/4).
LOADED_SCRIPT = ("<script>window.addEventListener('load',function(){var i=Array.from(document.images);"
                 "document.body.setAttribute('data-images-loaded',i.filter(function(x){return x.complete&&"
                 "x.naturalWidth>0}).length+'/'+i.length)})</script>")
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px;
text-align:left;vertical-align:top}th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}
.bad{color:#b71c1c}.muted{color:#666;font-size:13px}code{background:#f6f6f6;padding:1px 4px}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def table(head: list[str], rows: list[list]) -> str:
    out = ["<table><tr>", *[f"<th>{esc(h)}</th>" for h in head], "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c if isinstance(c, Raw) else esc(c)}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"


class Raw(str):
    """Already HTML (our own markup); everything else is escaped."""


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def phases_table(phases: dict) -> str:
    rows = []
    for p in phases.values():
        if p.get("error"):
            rows.append([p["name"], f"{p['from']} -> {p['to']}", Raw(f"<span class=bad>{esc(p['error'])}</span>"),
                         "", "", "", ""])
            continue
        eps = ", ".join(f"{k}: {v}" for k, v in sorted(p.get("endpoints", {}).items()))
        chi = p.get("chi_square") or {}
        lat = p.get("latency") or {}
        ips = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted((p.get("clientips") or {}).items()))
        rows.append([p["name"], f"{p['from']} -> {p['to']} (t {_fmt(p.get('start'))}-{_fmt(p.get('end'))} s)",
                     f"{p.get('ok', 0)} ok, {p.get('error_count', 0)} errors "
                     + (json.dumps(p.get("errors")) if p.get("errors") else ""),
                     eps, f"p = {_fmt(chi.get('p_value'))}" if chi else "-",
                     f"p50 {_ms(lat.get('p50'))}, p99 {_ms(lat.get('p99'))}", ips or "-"])
    return table(["phase", "traffic", "answers", "per endpoint", "chi-square (uniform)", "latency", "client IPs seen"],
                 rows)


def events_table(events: list[dict]) -> str:
    rows = [[ev["index"], _fmt(ev["at"]), _fmt(ev["t"]), ev["label"], _fmt(ev["waited"]) if ev["wait"] else "-",
             Raw(f"<span class=bad>{esc(ev['error'])}</span>") if ev["error"] else
             json.dumps(ev["details"], default=str)[:200]] for ev in events]
    return table(["#", "at (s)", "done at (s)", "event", "held (s)", "result"], rows)


def syncs_table(summary: dict) -> str:
    rows = [[node, s["syncs"], _ms(s["max_duration"]), s["rules"]] for node, s in sorted(summary["syncs"].items())]
    return table(["node", "rule syncs", "longest sync", "rules after the last"], rows)


def page(data: dict, scenario, images: list[str], notes: list[str], versions: dict | None = None) -> str:
    s = data["summary"]
    title = f"netemu experiment {scenario.name}" + (f" / {scenario.variant}" if scenario.variant else "")
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>{esc(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>"]
    if scenario.description:
        parts.append(f"<p>{esc(scenario.description)}</p>")
    parts.append(table(["seed", "duration", "ran for", "held by waits", "answers", "errors", "settle before t=0"],
                       [[s["seed"], f"{s['duration']:g} s", f"{s['ended']:.1f} s", f"{s['shift']:.1f} s", s["ok"],
                         f"{s['error_count']} {json.dumps(s['errors']) if s['errors'] else ''}",
                         f"{s['settle_seconds']:.1f} s"]]))
    for note in notes + [f"event failed: {e}" for e in s["events_failed"]] + \
            [f"phase failed: {p}" for p in s["phases_failed"]] + [f"not restored: {r}" for r in s["restore_failures"]]:
        parts.append(f"<p class=bad>{esc(note)}</p>")
    parts += ["<h2>Events</h2>", events_table(data["events"]), "<h2>Traffic phases</h2>",
              phases_table(data["phases"]), "<h2>Plots</h2>"]
    parts += [f'<p><img src="{esc(name)}" alt="{esc(name)}"></p>' for name in images]
    parts += ["<h2>kube-proxy rule syncs</h2>", syncs_table(s),
              "<h2>Repeating this run</h2><p>With the same seed (inputs/resolved.json has the command) these "
              "stay the same: " + esc("; ".join(s["repeats"])) + ". These are expected to vary:</p>",
              table(["figure", "why"], [[k, v] for k, v in s["varies"].items()])]
    if versions:
        parts += ["<h2>Versions</h2>", table(["", ""], [[k, v] for k, v in versions.items()])]
    parts.append("<p class=muted>Data: series.json, series.csv, events.json, phases.json, syncs.json, "
                 "summary.json; inputs: inputs/.</p>" + LOADED_SCRIPT + "</body></html>")
    return "\n".join(parts)


def write(folder: Path, data: dict, scenario, images: list[str], notes: list[str]) -> Path:
    try:
        versions = json.loads((folder / "inputs" / "versions.json").read_text())
    except (OSError, ValueError):
        versions = None
    path = folder / "report.html"
    path.write_text(page(data, scenario, images, notes, versions))
    return path
