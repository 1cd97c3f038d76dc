"""The kube-proxy replay benchmark runs at a tiny size (so it cannot rot), and its accounting holds."""

from __future__ import annotations

import json
from pathlib import Path

from netemu.bench import proxysync, proxysync_events

REPO = Path(__file__).resolve().parents[2]


def test_recorded_events_are_watch_lines_with_managed_fields(tmp_path):
    made = proxysync_events.write_file(tmp_path / "ev.json", 2, 3, nodes=2)
    services, lines = proxysync_events.read_file(tmp_path / "ev.json")
    assert len(services) == 2 and made["events"] == len(lines) == 2 + 2 * 2 * 3   # placeholders + 2 per pod
    events = [json.loads(line) for line in lines]
    assert {e["type"] for e in events} <= {"ADDED", "MODIFIED"}
    last = events[-1]["object"]
    assert last["metadata"]["managedFields"][0]["manager"] == "kube-controller-manager"
    assert last["metadata"]["resourceVersion"]
    ready = [ep for e in events for ep in e["object"].get("endpoints") or [] if ep["conditions"]["ready"]]
    assert ready


def test_replay_splits_cpu_by_stage_and_counts_syncs(tmp_path):
    proxysync_events.write_file(tmp_path / "ev.json", 2, 5, nodes=2)
    services, lines = proxysync_events.read_file(tmp_path / "ev.json")
    result = proxysync.replay(services, lines, node="node0", rate=5.0, min_sync_period=1.0,
                              exec_=proxysync._fake_exec, backend="nft")
    counts = result["counts"]
    assert counts["events"] == len(lines) and 0 < counts["syncs"] <= len(lines)
    assert counts["restores"] <= counts["syncs"]          # a sync that changes no rule restores nothing
    assert counts["syncs"] <= result["virtual_seconds"] + 3   # at most one per second, burst 2
    assert set(result["cpu"]) == set(proxysync.STAGES) and result["cpu"]["tracker"] > 0
    row = proxysync.summarize(result)
    assert abs(row["total"] - sum(row[s] for s in proxysync.STAGES)) < 1e-9


def test_main_compares_two_trees_in_child_processes(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert proxysync.main(["--services", "1", "--endpoints", "4", "--kernel", "none", "--json", str(out),
                           "--compare", f"a={REPO},b={REPO}"]) == 0
    text = capsys.readouterr().out
    assert "b/a" in text and "tracker" in text
    doc = json.loads(out.read_text())
    assert set(doc["per_event_ms"]) == {"a", "b"} and doc["runs"]["a"][0]["counts"]["events"] == 9
