"""Wall time and peak memory of a built-in experiment, and how the time grows with node count.

    sudo .venv/bin/python -m netemu.bench.experiment [--file experiments/a-fairness.yaml]
         [--small] [--nodes 2,4,8] [--json]

Runs ``netemu experiment run`` as a user would, once per node count (``--set cluster.nodes=N``),
and samples twice a second the memory of everything the run is made of: the runner and its
children (traffic workers), and the cluster it brought up (supervisor, API server, node agents
with their in-process pods), found by the private TMPDIR given to the run (its state dir is
under it). Memory is PSS (shared pages split among their users), summed; the peak is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            out.setdefault(ppid, []).append(int(entry))
    return out


def members(root: int, marker: str) -> set[int]:
    """The run's processes: ``root``'s descendants and every process whose argv holds ``marker``."""
    kids = _children()
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += kids.get(pid, [])
    for pids in kids.values():
        for pid in pids:
            try:
                if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.add(pid)
            except OSError:
                pass
    return found


def measure(file: str, small: bool, nodes: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="netemu-bench-exp-") as tmp:
        out = Path(tmp) / "result"
        argv = [sys.executable, "-m", "netemu", "experiment", "run", file, "--out", str(out)]
        argv += ["--small"] if small else []
        argv += ["--set", f"cluster.nodes={nodes}"] if nodes else []
        env = {**os.environ, "TMPDIR": tmp}
        peak, samples = [0], [0]
        start = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                peak[0] = max(peak[0], sum(pss_kib(p) for p in members(proc.pid, tmp)))
                samples[0] += 1
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        output = proc.communicate()[0]
        wall = time.monotonic() - start
        done.set()
        sampler.join()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}\n{output[-3000:]}")
        summaries = sorted(out.rglob("summary.json"))
        runs = [json.loads(p.read_text()) for p in summaries]
    return {"file": file, "small": small, "nodes": nodes, "wall_s": round(wall, 1),
            "timeline_s": round(sum(r["ended"] for r in runs), 1), "peak_pss_mib": round(peak[0] / 1024, 1),
            "samples": samples[0], "runs": len(runs)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--file", default=str(REPO / "experiments" / "a-fairness.yaml"))
    p.add_argument("--small", action="store_true")
    p.add_argument("--nodes", default="", help="comma-separated node counts (default: the scenario's)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = [measure(args.file, args.small, int(n) if n else None) for n in (args.nodes.split(",") or [""])]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'nodes':>5} {'small':>5} {'wall s':>7} {'timeline s':>10} {'peak PSS MiB':>12}")
        for r in rows:
            print(f"{r['nodes'] or '-':>5} {str(r['small']):>5} {r['wall_s']:>7} {r['timeline_s']:>10} "
                  f"{r['peak_pss_mib']:>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
