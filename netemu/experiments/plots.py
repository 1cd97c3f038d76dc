"""The run's pictures (matplotlib, PNG), each with the timeline's events marked.

- traffic.png: answers and errors per second (total and per phase);
- latency.png: each phase's p50 and p99 request latency per second;
- share.png: each phase's share of answers per endpoint per second (stacked);
- syncs.png: kube-proxy rule syncs per second per node and their duration.

Only the Agg backend (no display needed); ``make`` returns the files written.
"""

from __future__ import annotations

from pathlib import Path

MAX_SHARE_PANELS = 4
LABEL_CHARS = 40


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def mark_events(ax, events: list[dict], label: bool = True) -> None:
    """A dashed line at each event's time, its label along the top (failed events in red)."""
    for ev in events:
        if ev.get("t") is None:
            continue
        color = "#c62828" if ev.get("error") else "#555555"
        ax.axvline(ev["t"], color=color, linestyle="--", linewidth=0.9, alpha=0.8)
        if ev.get("waited"):
            ax.axvspan(ev["t"], ev["t"] + ev["waited"], color=color, alpha=0.07)
        if label:
            text = ev["label"] if len(ev["label"]) <= LABEL_CHARS else ev["label"][:LABEL_CHARS - 1] + "…"
            note = ax.annotate(text, xy=(ev["t"], 1.0), xycoords=("data", "axes fraction"), rotation=90,
                               va="top", ha="right", fontsize=7, color=color)
            note.set_in_layout(False)           # a long label must not squeeze the plot


def _save(fig, path: Path) -> str:
    import warnings
    with warnings.catch_warnings():          # long event labels: tight_layout does what it can
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path.name


def traffic(data: dict, path: Path, title: str) -> str:
    plt = _pyplot()
    rows, events = data["seconds"], data["events"]
    t = [r["t"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.plot(t, [r["ok"] for r in rows], color="black", linewidth=1.6, label="all phases")
    for name in data["phases"]:
        top.plot(t, [r["phases"].get(name, {}).get("ok", 0) for r in rows], linewidth=1, label=name)
    top.set_ylabel("answers / s")
    top.set_title(f"{title}: answers and errors per second")
    top.legend(loc="lower left", fontsize=8)
    kinds = sorted({k for r in rows for k in r["errors"]})
    base = [0] * len(rows)
    for kind in kinds:
        values = [r["errors"].get(kind, 0) for r in rows]
        bottom.bar(t, values, bottom=base, width=0.9, label=kind)
        base = [a + b for a, b in zip(base, values)]
    bottom.set_ylabel("errors / s")
    bottom.set_xlabel("seconds")
    if kinds:
        bottom.legend(loc="upper left", fontsize=8)
    for ax in (top, bottom):
        mark_events(ax, events, label=ax is top)
    return _save(fig, path)


def latency(data: dict, path: Path, title: str) -> str:
    plt = _pyplot()
    rows = data["seconds"]
    fig, ax = plt.subplots(figsize=(10, 4))
    for name in data["phases"]:
        for key, style in (("p50", "-"), ("p99", ":")):
            pts = [(r["t"], r["phases"][name]["latency"].get(key)) for r in rows
                   if r["phases"].get(name, {}).get("latency", {}).get(key) is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] * 1000 for p in pts], style, label=f"{name} {key}")
    ax.set_ylabel("request latency (ms)")
    ax.set_xlabel("seconds")
    ax.set_title(f"{title}: latency per second")
    if ax.lines:
        ax.set_yscale("log")
        ax.legend(loc="upper right", fontsize=8)
    mark_events(ax, data["events"])
    return _save(fig, path)


def share(data: dict, path: Path, title: str) -> str:
    plt = _pyplot()
    rows = data["seconds"]
    names = list(data["phases"])[:MAX_SHARE_PANELS] or ["(no phase)"]
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.6 * len(names) + 0.6), sharex=True, squeeze=False)
    t = [r["t"] for r in rows]
    for ax, name in zip(axes[:, 0], names):
        eps = sorted({k for r in rows for k in r["phases"].get(name, {}).get("endpoints", {})})
        stacks = []
        for ep in eps:
            stacks.append([r["phases"][name]["endpoints"].get(ep, 0) / r["phases"][name]["ok"]
                           if r["phases"].get(name, {}).get("ok") else 0 for r in rows])
        if stacks:
            ax.stackplot(t, *stacks, labels=eps, step="mid")
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share")
        ax.set_title(f"{title}: share of answers per endpoint, phase {name}", fontsize=10)
        mark_events(ax, data["events"], label=ax is axes[0, 0])
    axes[-1, 0].set_xlabel("seconds")
    return _save(fig, path)


def syncs(data: dict, path: Path, title: str) -> str:
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    nodes = sorted({ev["node"] for ev in data["syncs"]})
    for node in nodes:
        mine = [ev for ev in data["syncs"] if ev["node"] == node]
        top.plot([ev["t"] for ev in mine], [ev["rules"] for ev in mine], marker=".", linewidth=0.8, label=node)
        bottom.scatter([ev["t"] for ev in mine], [(ev["duration"] or 0) * 1000 for ev in mine], s=12, label=node)
    top.set_ylabel("rules after sync")
    top.set_title(f"{title}: kube-proxy rule syncs per node")
    bottom.set_ylabel("sync duration (ms)")
    bottom.set_xlabel("seconds")
    if nodes:
        top.legend(loc="upper left", fontsize=8)
    top.set_xlim(left=0, right=max([r["t"] for r in data["seconds"]] + [1]))
    for ax in (top, bottom):
        mark_events(ax, data["events"], label=ax is top)
    return _save(fig, path)


def make(data: dict, folder: Path, title: str) -> list[str]:
    return [traffic(data, folder / "traffic.png", title), latency(data, folder / "latency.png", title),
            share(data, folder / "share.png", title), syncs(data, folder / "syncs.png", title)]
