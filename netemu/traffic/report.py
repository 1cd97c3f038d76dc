"""How a traffic result looks to a person: a live progress line while it runs, tables at the end,
and a PNG of the per-second series (matplotlib, imported only when a plot is asked for)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console, Group
from rich.progress import BarColumn, Progress as Bar, TextColumn, TimeElapsedColumn
from rich.table import Table

from netemu.traffic.result import Result
from netemu.traffic.run import Progress


def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


class Live:
    """A rich progress bar fed by TrafficRun's on_progress (by count, or by the clock)."""

    def __init__(self, console: Console, title: str):
        self.bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[stats]}"),
                       TimeElapsedColumn(), console=console, transient=True)
        self.task = self.bar.add_task(title, total=None, stats="")

    def __enter__(self) -> Live:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def update(self, p: Progress) -> None:
        done = p.ok + p.errors
        total, completed = (p.duration, min(p.elapsed, p.duration)) if p.duration else (p.planned, done)
        top = sorted(p.endpoints.items(), key=lambda kv: -kv[1])[:4]
        stats = f"ok {p.ok}  err {p.errors}  " + "  ".join(f"{k}:{v}" for k, v in top)
        self.bar.update(self.task, total=total, completed=completed, stats=stats)


def tables(r: Result, source: str = "") -> Group:
    head = Table(show_header=False, box=None, pad_edge=False)
    tp = r.throughput
    head.add_row("target", f"{r.target.label} ({r.target.address}, {r.spec.proto})")
    if source:
        head.add_row("from", source)
    head.add_row("requests", f"{r.ok} ok, {r.error_count} failed, {r.connections} connections, "
                             f"{r.elapsed:.2f} s ({r.stopped_by})" + (f", {r.late} late" if r.late else ""))
    head.add_row("throughput", f"{tp['requests_per_s']:.0f} req/s, {tp['connections_per_s']:.0f} conn/s, "
                               f"{tp['sent_bytes_per_s'] / 1e3:.1f} kB/s out, {tp['received_bytes_per_s'] / 1e3:.1f} kB/s in")
    chi = r.chi_square
    if chi is not None:
        against = "the given weights" if r.weights else "uniform"
        head.add_row("chi-square", f"p = {chi['p_value']:.4g} against {against} "
                                   f"(statistic {chi['statistic']:.2f}, {chi['dof']} dof)")
    if r.unseen:
        head.add_row("never answered", ", ".join(r.unseen))

    eps = Table(title="endpoints", title_justify="left")
    for col in ("endpoint", "answers", "share", "expected", "client address seen"):
        eps.add_column(col, justify="right" if col in ("answers", "share", "expected") else "left")
    expected = (chi or {}).get("expected") or {}
    for name, n in sorted(r.endpoints.items(), key=lambda kv: (-kv[1], kv[0])):
        exp = expected.get(name)
        eps.add_row(name, str(n), f"{n / r.ok:.1%}" if r.ok else "-",
                    f"{exp / r.ok:.1%}" if exp is not None and r.ok else "-", ", ".join(r.clientips.get(name, [])))

    lat = Table(title="latency (ms)", title_justify="left")
    for col in ("", "p50", "p90", "p99", "max", "mean", "n"):
        lat.add_column(col, justify="right")
    for label, s in (("connect", r.connect), ("request", r.latency)):
        lat.add_row(label, *(_ms(s.get(k)) for k in ("p50", "p90", "p99", "max", "mean")), str(s.get("count", 0)))

    parts = [head, eps, lat]
    if r.errors:
        errs = Table(title="errors", title_justify="left")
        errs.add_column("kind")
        errs.add_column("count", justify="right")
        for kind, n in sorted(r.errors.items(), key=lambda kv: -kv[1]):
            errs.add_row(kind, str(n))
        parts.append(errs)
    return Group(*parts)


def plot(r: Result, path: str | Path) -> None:
    """Three panels over the run's seconds: answers and errors per second, request latency p50
    and p99, and each endpoint's share of the answers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t for s in r.series]
    fig, (rate, lat, share) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    rate.plot(t, [s.ok for s in r.series], "o-", ms=3, label="answers/s", color="tab:green")
    rate.plot(t, [s.error_count for s in r.series], "o-", ms=3, label="errors/s", color="tab:red")
    rate.set_ylabel("per second")
    rate.legend(loc="upper right")
    rate.set_title(f"{r.target.label}: {r.ok} answers, {r.error_count} errors, {r.spec.proto}")
    for key, style in (("p50", "-"), ("p99", "--")):
        lat.plot(t, [(s.latency.get(key) or float("nan")) * 1e3 for s in r.series], style, marker="o", ms=3,
                 label=key)
    lat.set_ylabel("request latency (ms)")
    lat.legend(loc="upper right")
    names = sorted(r.endpoints)
    if names and t:
        bottom = [0.0] * len(t)
        for n in names:                   # stacked bars: readable for 1 second or 600
            part = [s.share().get(n, 0.0) for s in r.series]
            share.bar(t, part, bottom=bottom, width=0.9, label=n)
            bottom = [b + p for b, p in zip(bottom, part)]
        share.legend(loc="upper right", fontsize="small", ncol=min(4, len(names)))
    share.set_ylabel("endpoint share")
    share.set_ylim(0, 1)
    share.set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
