"""A tiny run of the kube-proxy replay benchmark against a real kernel (netemu/bench/proxysync.py
--kernel netns): it makes its own network namespace, restores real rules there, and deletes it."""

from __future__ import annotations

import argparse
import os
import subprocess

import pytest

from netemu.bench import proxysync, proxysync_events

pytestmark = pytest.mark.root


def test_replay_restores_into_its_own_namespace_and_removes_it(tmp_path):
    proxysync_events.write_file(tmp_path / "ev.json", 1, 6, nodes=2)
    args = argparse.Namespace(rate=3.0, min_sync_period=1.0, kernel="netns", backend="iptables")
    result = proxysync.run_child(tmp_path / "ev.json", args)
    counts = result["counts"]
    assert 0 < counts["restores"] <= counts["syncs"] and counts["restore_bytes"] > 0
    assert result["cpu"]["restore_child"] > 0              # the child's CPU (and the kernel's) is counted
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"kpsync-{os.getpid()}-" not in after        # other engineers' namespaces come and go meanwhile
