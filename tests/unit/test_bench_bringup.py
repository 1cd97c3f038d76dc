"""The bring-up benchmark's pure parts: where a run's node network goes, and the wait for a
quiet box between the trees of a comparison."""

from __future__ import annotations

import itertools

from netemu.bench import bringup


def test_node_network_is_a_24_until_the_nodes_need_a_23():
    assert bringup.node_network(100, 17) == "172.30.17.0/24"
    assert bringup.node_network(200, 17) == "172.30.16.0/23"


def test_settle_waits_for_the_load_to_fall_and_reports_the_wait(monkeypatch):
    loads = iter([300.0, 120.0, 30.0, 3.5, 3.0])
    clock = itertools.count(0, 5)
    monkeypatch.setattr(bringup.os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    monkeypatch.setattr(bringup.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(bringup.time, "sleep", lambda s: None)
    assert bringup.settle(4.0) == 20.0            # four reads above 4 (one clock tick each), then go


def test_settle_gives_up_after_its_limit_and_is_off_without_a_load(monkeypatch):
    clock = itertools.count(0, 100)
    monkeypatch.setattr(bringup.os, "getloadavg", lambda: (50.0, 0.0, 0.0))
    monkeypatch.setattr(bringup.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(bringup.time, "sleep", lambda s: None)
    assert bringup.settle(4.0, limit=300) == 400.0
    assert bringup.settle(None) == 0.0
