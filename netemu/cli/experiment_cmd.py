"""``netemu experiment run FILE.yaml`` / ``check FILE.yaml`` / ``compare A B ...``.

``run`` checks the whole scenario first (schema, names, times, what this kernel can do: every
problem with FILE:LINE, exit 2, nothing made), then brings a cluster up (or uses ``--state-dir``),
runs the timeline and writes the result folder (netemu/experiments/run.py lists its files).
``check`` stops after the checks. ``compare`` puts result folders side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from netemu.cli.main import Command, UsageError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE.yaml", help="the scenario (experiments/README.md has the schema)")
    p.add_argument("--small", action="store_true", help="the scenario's CI size (its `small:` overrides)")
    p.add_argument("--seed", type=int, help="seed of every random choice netemu makes (default: the scenario's)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD.PATH=YAML", dest="overrides",
                   help="override a scenario field, e.g. --set cluster.nodes=8 (repeatable; applied first)")


def _run_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--out", metavar="DIR", help="result folder, new or empty (default results/NAME-TIMESTAMP)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="run on this running cluster instead of bringing one up (it must match the scenario's "
                        "cluster; it is left running)")


def _plan(args):
    from netemu import features
    from netemu.experiments.located import ScenarioError
    from netemu.experiments.validate import load_plan

    if args.seed is not None and args.seed < 0:
        raise UsageError("--seed must be >= 0")
    try:
        return load_plan(args.file, small=args.small, seed=args.seed, verdicts=features.detected(),
                         overrides=args.overrides)
    except ScenarioError as exc:
        raise UsageError(f"the scenario cannot run:\n{exc}") from None


def run_check(args: argparse.Namespace) -> int:
    plan = _plan(args)
    for note in plan.notes:
        print(f"note: {note}")
    for run in plan.runs:
        print(f"{run.run_name}: {run.cluster.nodes or 'topology'} node(s), proxy {run.cluster.proxy_mode}, "
              f"{len(run.phases)} phase(s), {len(run.events)} event(s), {run.duration:g} s, seed {run.seed}")
    print(f"{args.file}: OK ({len(plan.runs)} run(s))")
    return 0


def run_run(args: argparse.Namespace) -> int:
    import json
    import os

    from netemu.experiments.cluster import ClusterError
    from netemu.experiments.run import RunError, check_out, run_plan

    plan = _plan(args)
    if os.geteuid() != 0:
        raise UsageError("netemu experiment run needs root (it runs a cluster: namespaces, netfilter)")
    name = plan.runs[0].name
    out = Path(args.out or f"results/{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        check_out(out)
    except RunError as exc:
        raise UsageError(str(exc)) from None
    for note in plan.notes:
        print(f"note: {note}", flush=True)
    started = time.monotonic()
    try:
        folders = run_plan(plan, out, Path(args.state_dir) if args.state_dir else None,
                           log=lambda line: print(line, flush=True))
    except (RunError, ClusterError) as exc:
        print(f"netemu experiment: {exc}", file=sys.stderr)
        return 1
    failed = []
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        failed += [f"{folder.name}: {what}" for what in summary["events_failed"] + summary["phases_failed"]]
    print(f"done in {time.monotonic() - started:.0f} s: {out / 'report.html'}")
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if failed else 0


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("folders", nargs="+", metavar="RESULT_DIR", help="result folders of netemu experiment run")
    p.add_argument("--out", metavar="DIR", help="where compare.png and report.html go (new or empty; "
                                                "default compare-TIMESTAMP)")


def run_compare(args: argparse.Namespace) -> int:
    from netemu.experiments.compare import CompareError, load, write
    from netemu.experiments.run import RunError, check_out

    out = Path(args.out or f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        for folder in args.folders:
            load(Path(folder))
        check_out(out)
    except (CompareError, RunError) as exc:
        raise UsageError(str(exc)) from None
    path = write(out, [Path(f) for f in args.folders])
    print(path)
    return 0


COMMANDS = [
    Command("experiment run", "run a scenario (cluster, manifests, traffic, timed events) into a result folder",
            _run_args, run_run),
    Command("experiment check", "check a scenario file (every problem with its line) without running it",
            _common, run_check),
    Command("experiment compare", "put experiment results side by side (plots with one line per run)",
            _compare_args, run_compare),
]
