"""A command run without --state-dir while the cluster was started with one: the error names
the clusters that are running and the flag that reaches them, instead of a bare "no cluster
running" (found trying `netemu up --state-dir X` then `netemu status` as a new user would)."""

import json

from netemu.cli import cluster_cmd
from netemu.emulator import orphans


def test_no_cluster_names_the_running_ones_but_not_itself_or_dead_ones(tmp_path, monkeypatch):
    registry = tmp_path / "clusters"
    registry.mkdir()
    for cid, state in (("a1", "/tmp/alive"), ("b2", "/tmp/dead"), ("c3", "/var/lib/netemu/default")):
        (registry / f"{cid}.json").write_text(json.dumps({"state_dir": state}))
    (registry / "bad.json").write_text("{not json")
    monkeypatch.setattr(orphans, "REGISTRY_DIR", registry)
    alive = {"/tmp/alive", "/var/lib/netemu/default"}
    monkeypatch.setattr(cluster_cmd, "running_supervisor", lambda d: ({}, 42 if d in alive else None))
    text = cluster_cmd.no_cluster("/var/lib/netemu/default")
    assert text == "no cluster running at /var/lib/netemu/default; running: --state-dir /tmp/alive"


def test_no_cluster_without_a_registry_says_only_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(orphans, "REGISTRY_DIR", tmp_path / "none")
    assert cluster_cmd.no_cluster("/x") == "no cluster running at /x"
