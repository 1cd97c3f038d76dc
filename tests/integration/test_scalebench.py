"""The API-server scale benchmark runs end to end at a tiny size: a real ``netemu apiserver``
process, simulated agents whose pods all come up Running, a stalled watcher, the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from netemu.bench import apiserver_scale as scalebench

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scalebench_small_run(capsys):
    assert scalebench.main(["--trees", f"here={ROOT}", "--nodes", "4", "--pods", "12",
                            "--steady", "1", "--stalled", "1", "--heartbeat", "0.5"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| here |"))
    cells = [float(c) for c in row.strip("|").split("|")[1:]]
    assert len(cells) == len(scalebench.COLUMNS)
    assert all(c >= 0 for c in cells) and cells[-1] > 10      # peak RSS of a real process, MB
