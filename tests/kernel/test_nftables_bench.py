"""A tiny run of the nftables-vs-iptables benchmark's code (netemu/bench/nftables.py), so the
benchmark keeps working; the real scales are run by hand (docs/benchmarks.md)."""

from __future__ import annotations

import shutil

import pytest

from netemu.bench import nftables as bench

pytestmark = pytest.mark.root


def test_sync_cost_runs_at_a_tiny_scale():
    row = bench.sync_cost("nftables", "nft", 20, 2, 2)
    assert row["full_s"] > 0 and row["one_s"] > 0 and row["raw_nft_s"] > 0 and row["preflight_s"] > 0
    if shutil.which("iptables-legacy-restore"):
        assert bench.sync_cost("iptables", "legacy", 20, 2, 2)["full_s"] > 0
    assert bench.libnftables_cost(20, 2, 2)["backend"] == "libnftables"


def test_first_packet_runs_at_a_tiny_scale():
    row = bench.first_packet(20, connects=5)
    assert {k for k in row if k.endswith("_us")} == {"iptables_first_us", "iptables_last_us",
                                                     "nftables_first_us", "nftables_last_us"}
    assert all(v > 0 for k, v in row.items() if k.endswith("_us"))
