"""A tiny run of the kube-proxy replay benchmark against a real kernel (netemu/bench/proxysync.py
--kernel netns): it makes its own network namespace, restores real rules there, and deletes it."""

from __future__ import annotations

import argparse
import os
import subprocess

import pytest

from netemu.bench import proxysync, proxysync_events

pytestmark = pytest.mark.root


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_replay_restores_into_its_own_namespace_and_removes_it(tmp_path, mode):
    proxysync_events.write_file(tmp_path / "ev.json", 1, 6, nodes=2)
    args = argparse.Namespace(rate=3.0, min_sync_period=1.0, kernel="netns", backend=None, mode=mode)
    result = proxysync.run_child(tmp_path / "ev.json", args)
    counts = result["counts"]
    assert 0 < counts["restores"] <= counts["syncs"] and counts["restore_bytes"] > 0
    if result["cpu"]["restore_child"] == 0:                # libnftables: the kernel's work is ours
        assert mode == "nftables" and result["cpu"]["restore_self"] > 0
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"kpsync-{os.getpid()}-" not in after        # other engineers' namespaces come and go meanwhile
