"""``netemu experiment run``: a checked plan of runs -> clusters -> timelines -> the result folder.

The result folder (one per run; with several runs, one subfolder each plus a comparison)::

    report.html        the plots and tables (open it in a browser)
    series.json/.csv   per second: successes, errors by kind, answers and share per endpoint,
                       per phase latency percentiles, rule syncs per node
    events.json        each event: when asked, when done, how long it held the timeline, result
    phases.json        each traffic phase's whole result (netemu.traffic), clientips included
    syncs.json         every kube-proxy rule sync seen (node, time, duration, rules)
    summary.json       totals and what a repeat with the same seed keeps or changes
    inputs/            the scenario file as given, its manifest files, resolved.json (the exact
                       merged document of this run, with its seed), versions.json
    *.png              plots with the events marked
    logs/              the cluster's logs (when the experiment brought the cluster up)

Runs that ask for the same cluster share one (brought up once, the workload removed between
runs); ``--state-dir`` uses a running cluster instead and leaves it running.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from netemu.experiments import cluster as clusters
from netemu.experiments import compare, plots, report, series
from netemu.experiments.schema import Scenario
from netemu.experiments.scrape import Scrapers
from netemu.experiments.timeline import run_timeline
from netemu.experiments.validate import Plan


class RunError(RuntimeError):
    """The experiment could not run (cluster, output folder); the message says why."""


def check_out(out: Path) -> None:
    """Refuse, before anything starts, an output folder that holds something or cannot be made."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"--out {out}: exists and is not an empty folder (results are never overwritten)")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise RunError(f"--out {out}: cannot create it under {parent}")


def versions() -> dict:
    """What ran: netemu (and its git commit when run from a checkout), Python, the kernel, the
    netfilter tools, matplotlib, the proxy modes."""
    from importlib import metadata

    from netemu.agent.proxy import modes

    def tool(*argv: str) -> str | None:
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
            return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else None
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None
    repo = Path(__file__).resolve().parents[2]
    out = {"netemu": metadata.version("netemu"), "python": platform.python_version(),
           "kernel": platform.release(), "machine": platform.machine(),
           "git": tool("git", "-C", str(repo), "rev-parse", "HEAD"),
           "git_dirty": bool(tool("git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no")),
           "iptables": tool("iptables", "--version"), "nft": tool("nft", "--version"),
           "matplotlib": metadata.version("matplotlib"), "proxy_modes": list(modes.selectable())}
    return out


def write_inputs(folder: Path, plan: Plan, run: Scenario) -> None:
    inputs = folder / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    src = Path(plan.file)
    shutil.copyfile(src, inputs / src.name)
    for m in plan.document.get("manifests") or [] if isinstance(plan.document, dict) else []:
        if isinstance(m, dict) and set(m) == {"file"}:
            path = src.parent / str(m["file"])
            if path.is_file():
                rel = Path(str(m["file"]))
                inside = not rel.is_absolute() and ".." not in rel.parts
                target = inputs / rel if inside else inputs / "files" / path.name    # never outside inputs/
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    resolved = {"variant": run.variant, "seed": run.seed, "document": run.document,
                "cluster": asdict(run.cluster), "rerun": f"netemu experiment run {src.name} --seed {run.seed}"}
    (inputs / "resolved.json").write_text(json.dumps(resolved, indent=1) + "\n")
    (inputs / "versions.json").write_text(json.dumps(versions(), indent=1) + "\n")


async def _measure(run: Scenario, handle: clusters.Handle, log: Callable[[str], None]):
    async with handle.client() as client:
        namespaces = {m.namespace for m in run.manifests} | {"default"}
        await clusters.remove_experiment_objects(client, run.name, namespaces)
        await clusters.apply(client, run.manifests, run.name)
        scrapers = Scrapers({n: i["netns"] for n, i in handle.workers().items()}).start()
        try:
            measured = await run_timeline(run, handle, client, scrapers, log)
        finally:
            scrapers.stop()
        return measured, await pods_of(client, run.name, namespaces)


async def pods_of(client, experiment: str, namespaces: set[str]) -> dict:
    """The run's pods at its end: node and address of each (where each endpoint ran)."""
    from netemu.api import kinds
    from netemu.agent.runtime.names import pod_hostname

    out = {}
    for ns in sorted(namespaces):
        for pod in (await client.list(kinds.by_kind_name("Pod"), ns,
                                      label_selector=f"{clusters.EXPERIMENT_LABEL}={experiment}")).items:
            out[pod_hostname(pod)] = {"node": pod["spec"].get("nodeName"), "ip": pod["status"].get("podIP"),
                                      "namespace": ns, "deleting": bool(pod["metadata"].get("deletionTimestamp"))}
    return out


async def _remove(run: Scenario, handle: clusters.Handle) -> None:
    async with handle.client() as client:
        await clusters.remove_experiment_objects(client, run.name, {m.namespace for m in run.manifests} | {"default"})


def run_one(plan: Plan, run: Scenario, handle: clusters.Handle, folder: Path, log: Callable[[str], None]) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    write_inputs(folder, plan, run)
    log(f"run {run.run_name}: {len(run.phases)} phase(s), {len(run.events)} event(s), {run.duration:g} s")
    started = time.monotonic()
    measured, pods = asyncio.run(_measure(run, handle, log))
    data = series.build(measured, run)
    data["summary"]["pods"] = pods
    data["summary"]["wall_seconds"] = round(time.monotonic() - started, 2)
    data["summary"]["notes"] = plan.notes
    series.write(data, folder)
    images = plots.make(data, folder, title=run.run_name)
    report.write(folder, data, run, images, plan.notes)
    return data


def groups(plan: Plan) -> list[list[Scenario]]:
    """Runs that want the same cluster, in plan order (each group: one cluster)."""
    out: dict[str, list[Scenario]] = {}
    for run in plan.runs:
        out.setdefault(json.dumps(asdict(run.cluster), sort_keys=True), []).append(run)
    return list(out.values())


def run_plan(plan: Plan, out: Path, state_dir: Path | None = None, log: Callable[[str], None] = print) -> list[Path]:
    """Run every run of ``plan`` into ``out``; the folders written. Clusters brought up here are
    always taken down (their logs copied to each run's logs/)."""
    check_out(out)
    if state_dir is not None:
        handle = clusters.attach(state_dir)
        for run in plan.runs:
            why = clusters.check_matches(handle, run.cluster)
            if why:
                raise RunError(f"--state-dir {state_dir}: {'; '.join(why)}")
    out.mkdir(parents=True, exist_ok=True)
    single = len(plan.runs) == 1
    folders: list[Path] = []
    for group in groups(plan):
        tmp = None
        if state_dir is None:
            tmp = Path(tempfile.mkdtemp(prefix="netemu-exp-"))
            handle = clusters.bring_up(group[0].cluster, tmp / "cluster", log)
        try:
            for run in group:
                folder = out if single else out / run.run_name
                try:
                    run_one(plan, run, handle, folder, log)
                finally:
                    if not handle.owned or run is not group[-1]:
                        asyncio.run(_remove(run, handle))
                folders.append(folder)
        finally:
            if tmp is not None:
                clusters.tear_down(handle)
                for folder in [out if single else out / r.run_name for r in group]:
                    if (tmp / "cluster" / "logs").is_dir() and folder.is_dir():
                        shutil.copytree(tmp / "cluster" / "logs", folder / "logs", dirs_exist_ok=True)
                shutil.rmtree(tmp, ignore_errors=True)
    if not single:
        compare.write(out, folders, title=plan.runs[0].name)
    return folders
