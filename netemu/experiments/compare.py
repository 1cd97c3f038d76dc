"""``netemu experiment compare A B ...``: runs side by side, one line per run.

Reads result folders (series.json, events.json, phases.json, summary.json), draws the run plots
again with one line per run (answers/s, errors/s, p99 latency of every phase, the largest
endpoint share per second: 1/n is an even spread), and writes a report.html with a table of each
run's figures per phase and links to each run's own report. A folder that is not a result
folder is a CompareError naming it, before anything is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from netemu.experiments import plots, report
from netemu.experiments.report import Raw, esc, table

NEEDED = ("series.json", "events.json", "phases.json", "summary.json")


class CompareError(ValueError):
    """A folder that cannot be compared; the message names it."""


def load(folder: Path) -> dict:
    missing = [n for n in NEEDED if not (folder / n).is_file()]
    if missing:
        raise CompareError(f"{folder}: not an experiment result folder (no {', '.join(missing)})")
    try:
        data = {n.removesuffix(".json"): json.loads((folder / n).read_text()) for n in NEEDED}
    except ValueError as exc:
        raise CompareError(f"{folder}: unreadable result: {exc}") from None
    s = data["summary"]
    data["label"] = s.get("variant") or s.get("name") or folder.name
    data["folder"] = folder
    return data


def _labels(runs: list[dict]) -> None:
    seen: dict[str, int] = {}
    for r in runs:
        seen[r["label"]] = seen.get(r["label"], 0) + 1
    for r in runs:
        if seen[r["label"]] > 1:
            r["label"] = f"{r['label']} ({r['folder'].name})"


def figure(runs: list[dict], path: Path, title: str) -> str:
    plt = plots._pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    for r in runs:
        rows = r["series"]
        t = [x["t"] for x in rows]
        axes[0].plot(t, [x["ok"] for x in rows], label=r["label"])
        axes[1].plot(t, [x["error_count"] for x in rows], label=r["label"])
        for name in r["phases"]:
            pts = [(x["t"], x["phases"][name]["latency"].get("p99")) for x in rows
                   if (x["phases"].get(name) or {}).get("latency", {}).get("p99") is not None]
            if pts:
                axes[2].plot([p[0] for p in pts], [p[1] * 1000 for p in pts],
                             label=f"{r['label']} {name}" if len(r["phases"]) > 1 else r["label"])
        axes[3].plot(t, [max(x["share"].values()) if x["share"] else None for x in rows], label=r["label"])
    for ax, label in zip(axes, ("answers / s", "errors / s", "p99 latency (ms)", "largest endpoint share")):
        ax.set_ylabel(label)
        if ax.lines:
            ax.legend(loc="upper right", fontsize=7)
    if axes[2].lines:
        axes[2].set_yscale("log")
    axes[3].set_ylim(0, 1.05)
    axes[0].set_title(f"{title}: {len(runs)} runs")
    axes[-1].set_xlabel("seconds (each run's own clock)")
    if len(runs) == 1 or all(len(r["events"]) == len(runs[0]["events"]) for r in runs):
        for ax in axes:
            plots.mark_events(ax, runs[0]["events"], label=ax is axes[0])
    return plots._save(fig, path)


def rows_of(runs: list[dict]) -> list[list]:
    out = []
    for r in runs:
        s = r["summary"]
        for name, p in r["phases"].items():
            chi = p.get("chi_square") or {}
            lat = p.get("latency") or {}
            eps = p.get("endpoints") or {}
            out.append([r["label"], name, p.get("ok", 0), p.get("error_count", 0),
                        len([v for v in eps.values() if v]), report._fmt(chi.get("p_value")),
                        report._ms(lat.get("p50")), report._ms(lat.get("p99")), s.get("shift", 0)])
    return out


def write(out: Path, folders: list[Path], title: str = "comparison") -> Path:
    """compare.png and report.html in ``out`` for the runs in ``folders``."""
    runs = [load(Path(f)) for f in folders]
    _labels(runs)
    out.mkdir(parents=True, exist_ok=True)
    image = figure(runs, out / "compare.png", title)
    links = []
    for r in runs:
        target = r["folder"] / "report.html"
        if target.is_file():
            rel = os.path.relpath(target, out)
            links.append(f'<li><a href="{esc(rel)}">{esc(r["label"])}</a></li>')
    body = [f"<!doctype html><html><head><meta charset=utf-8><title>{esc(title)}</title>",
            f"<style>{report.STYLE}</style></head><body><h1>{esc(title)}: {len(runs)} runs compared</h1>",
            table(["run", "phase", "answers", "errors", "endpoints answering", "chi-square p", "p50", "p99",
                   "held by waits (s)"], rows_of(runs)),
            f'<p><img src="{esc(image)}" alt="comparison"></p>',
            Raw("<h2>Each run</h2><ul>" + "".join(links) + "</ul>") if links else ""]
    path = out / "report.html"
    path.write_text("\n".join(body) + report.LOADED_SCRIPT + "</body></html>\n")
    return path
