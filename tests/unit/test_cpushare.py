"""The control plane's CPU weight (netemu/emulator/cpushare.py): the nice matching N nodes, and
where it is written (the session's autogroup, or the threads without autogroup), on a fake /proc."""

from __future__ import annotations

import os

import pytest

from netemu.emulator import cpushare


@pytest.mark.parametrize("nodes, nice", [(0, 0), (1, 0), (2, -4), (3, -5), (10, -11), (30, -16),
                                          (86, -20), (87, -20), (100, -20), (500, -20)])
def test_nice_for_weighs_the_control_plane_as_all_the_nodes(nodes, nice):
    assert cpushare.nice_for(nodes) == nice


def test_the_weight_chosen_is_the_smallest_that_covers_the_nodes():
    for nodes in range(1, 87):
        index = cpushare.nice_for(nodes) + cpushare.NICE_0
        assert cpushare.WEIGHTS[index] >= nodes * 1024
        assert index == cpushare.NICE_0 or cpushare.WEIGHTS[index + 1] < nodes * 1024


def fake_proc(tmp_path, autogroup: str):
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "sys/kernel/sched_autogroup_enabled").write_text(autogroup + "\n")
    (tmp_path / "42").mkdir()
    (tmp_path / "42/autogroup").write_text("/autogroup-7 nice 0\n")
    return tmp_path


def test_with_autogroup_the_session_gets_the_nice(tmp_path):
    proc = fake_proc(tmp_path, "1")
    assert cpushare.favour(42, 10, proc=proc) == -11
    assert (proc / "42/autogroup").read_text() == "-11\n"


def test_without_autogroup_each_thread_gets_it(tmp_path, monkeypatch):
    proc = fake_proc(tmp_path, "0")
    for tid in (42, 43):
        (proc / "42/task" / str(tid)).mkdir(parents=True)
    set_to = {}
    monkeypatch.setattr(os, "setpriority", lambda which, who, prio: set_to.__setitem__(who, prio))
    assert cpushare.favour(42, 3, proc=proc) == -5
    assert set_to == {42: -5, 43: -5}


def test_a_refusal_is_logged_not_raised(tmp_path, caplog):
    proc = fake_proc(tmp_path, "1")
    assert cpushare.favour(99, 10, proc=proc) is None      # no such process
    assert "could not favour" in caplog.text


def test_current_reads_the_autogroup_nice(tmp_path):
    proc = fake_proc(tmp_path, "1")
    (proc / "42/autogroup").write_text("/autogroup-7 nice -11\n")
    assert cpushare.current(42, proc=proc) == -11
    assert cpushare.current(99, proc=proc) is None
