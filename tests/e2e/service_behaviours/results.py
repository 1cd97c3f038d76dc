"""The behaviour x proxy-mode table: recorded by the suite, rendered into docs/service-behaviours.md.

Pure: an inventory of the suite's behaviours (read from the test modules' source, so the table
can be checked without running anything), the per-mode result files the suite writes
(docs/service-behaviours/<mode>.json), and the Markdown they render to. A pure test
(test_results_table.py) keeps the three in step: every behaviour in the suite has a row, no row
outlives its test, and the Markdown is exactly what the JSON renders to.

Outcomes: ``pass``; ``fail``; ``xfail`` (a known netemu gap, strict: it must fail, and says why);
``n/a`` (upstream itself does not expect it of this mode, with upstream's reason); ``skipped``
(could not run here, e.g. not root: never written into the table by a recording run).
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass
from pathlib import Path

SUITE_DIR = Path(__file__).resolve().parent
REPO = SUITE_DIR.parents[2]
RESULTS_DIR = Path(os.environ.get("NETEMU_BEHAVIOURS_DIR") or REPO / "docs" / "service-behaviours")
DOC = REPO / "docs" / "service-behaviours.md"
KNOWN_MODES = ("iptables", "nftables", "ipvs")   # column order; a mode not listed here goes last
RECORDED = ("pass", "fail", "xfail", "n/a")


@dataclass(frozen=True)
class Behaviour:
    """One test of the suite: where it is and which upstream test it mirrors."""

    test_id: str          # "test_basic.py::test_should_serve_a_basic_endpoint_from_pods"
    upstream: str         # the upstream test's full name (the docstring's first line)
    source: str           # the upstream file it comes from ("Upstream: ..." line of the docstring)


def _upstream_file(doc: str) -> str:
    for line in doc.splitlines():
        line = line.strip()
        if line.startswith("Upstream:"):
            return line.split(":", 1)[1].strip().split(" ")[0].rstrip(".,;")
    return ""


def inventory(suite_dir: Path = SUITE_DIR) -> list[Behaviour]:
    """Every ``test_*`` function of the suite's ``test_*.py`` modules, from their source."""
    out = []
    for path in sorted(suite_dir.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                doc = ast.get_docstring(node) or ""
                if not doc.startswith("[sig-network]") and "Upstream:" not in doc:
                    continue   # a helper test of the suite itself, not a behaviour
                out.append(Behaviour(f"{path.name}::{node.name}", doc.splitlines()[0].strip(),
                                     _upstream_file(doc)))
    return out


def load(results_dir: Path = RESULTS_DIR) -> dict[str, dict[str, dict]]:
    """{mode: {test_id: {"outcome", "reason"?, "seconds"?}}} from the recorded files."""
    out = {}
    for path in sorted(results_dir.glob("*.json")):
        out[path.stem] = json.loads(path.read_text())["results"]
    return out


def merge(mode: str, new: dict[str, dict], known: list[Behaviour],
          results_dir: Path = RESULTS_DIR) -> dict[str, dict]:
    """The mode's file after a run: new outcomes win, rows of tests that no longer exist go."""
    path = results_dir / f"{mode}.json"
    old = json.loads(path.read_text())["results"] if path.exists() else {}
    ids = {b.test_id for b in known}
    merged = {k: v for k, v in {**old, **new}.items() if k in ids}
    return dict(sorted(merged.items()))


def runs(results_dir: Path = RESULTS_DIR) -> dict[str, dict]:
    """{mode: its recorded run's description} for the files that carry one (``run``: where,
    which selection, date, commit), e.g. the lab VM's subset."""
    out = {}
    for path in sorted(results_dir.glob("*.json")):
        run = json.loads(path.read_text()).get("run")
        if run:
            out[path.stem] = run
    return out


def write(mode: str, results: dict[str, dict], results_dir: Path = RESULTS_DIR, run: dict | None = None) -> Path:
    """The mode's file; ``run`` says how it was recorded (kept from the old file when not given)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{mode}.json"
    if run is None and path.exists():
        run = json.loads(path.read_text()).get("run")
    body = {"mode": mode, **({"run": run} if run else {}), "results": results}
    path.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return path


def _modes(results: dict[str, dict]) -> list[str]:
    return sorted(results, key=lambda m: (KNOWN_MODES.index(m) if m in KNOWN_MODES else len(KNOWN_MODES), m))


def _cell(row: dict | None) -> str:
    if row is None:
        return "not run"
    outcome, reason = row["outcome"], row.get("reason", "")
    text = {"pass": "pass", "fail": "**FAIL**", "xfail": "xfail", "n/a": "n/a"}.get(outcome, outcome)
    return f"{text}: {reason}" if reason and outcome != "pass" else text


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _run_line(mode: str, run: dict) -> str:
    where = run.get("where", "")
    when = ", ".join(f"{k} {run[k]}" for k in ("date", "commit") if run.get(k))
    return f"- {mode}: {where}" + (f" ({when})" if when else "")


def render(known: list[Behaviour], results: dict[str, dict[str, dict]], recorded_runs: dict[str, dict] | None = None) -> str:
    """The Markdown table, one row per behaviour, one column per recorded mode; then how the
    modes whose files say so were run (e.g. which subset, in the lab VM)."""
    modes = _modes(results)
    lines = [
        "# Upstream Service behaviours on netemu, per proxy mode",
        "",
        "Generated by `tests/e2e/service_behaviours` (`sudo scripts/service-behaviours`; a lab-VM mode:",
        "`--labvm MODE`); do not edit by hand. Each row is one test of that suite, named after the upstream kubernetes v1.32",
        "e2e test it mirrors (test/e2e/network/*.go) and run on real traffic through a 3-node",
        "`netemu up` cluster in that proxy mode. **pass**: the behaviour holds; **FAIL**: it does not;",
        "**xfail**: a known netemu gap (the test is strict: it must fail, and turns red once fixed), with",
        "the reason; **n/a**: upstream does not expect it of that mode, with upstream's reason;",
        "**not run**: that mode has no recorded run of this test (a lab-VM mode records only the suite's",
        "`vm_subset`, the behaviours where its kernel programming differs most: Python is ~10x slower under",
        "qemu TCG, so its 25 take about an hour there; CI's lab run runs six of them, README \"Tests\").",
        "",
        "| behaviour (upstream test) | from | " + " | ".join(modes) + " |",
        "| --- | --- | " + " | ".join("---" for _ in modes) + " |",
    ]
    for b in known:
        cells = [_escape(_cell(results[m].get(b.test_id))) for m in modes]
        lines.append(f"| {_escape(b.upstream)} | {b.source} | " + " | ".join(cells) + " |")
    counts = []
    for m in modes:
        rows = [results[m].get(b.test_id) for b in known]
        tally = {o: sum(1 for r in rows if r and r["outcome"] == o) for o in RECORDED}
        counts.append(f"- {m}: " + ", ".join(f"{n} {o}" for o, n in tally.items() if n)
                      + (f", {sum(1 for r in rows if r is None)} not run" if None in rows else ""))
    how = [_run_line(m, recorded_runs[m]) for m in modes if (recorded_runs or {}).get(m)]
    return "\n".join(lines + ["", "Totals:", ""] + counts + (["", "Recorded:", ""] + how if how else [])) + "\n"


def write_doc(results_dir: Path = RESULTS_DIR) -> Path:
    """docs/service-behaviours.md from the suite's inventory and the recorded files."""
    DOC.write_text(render(inventory(), load(results_dir), runs(results_dir)))
    return DOC
