"""The suite's per-mode marks, shared by its own conftest and the lab VM's IPVS subset
(tests/labvm/test_ipvs_cluster_behaviours.py runs some of the suite's functions on the lab's
cluster: the same marks must mean the same there).

- ``@pytest.mark.not_applicable("ipvs", reason=...)``: upstream does not expect the behaviour of
  that mode (the reason quotes upstream); reported as ``n/a``, never run;
- ``@pytest.mark.known_failure("nftables", reason=..., raises=Exc)``: a netemu gap, strict xfail
  in that mode (no mode named: every mode); ``raises`` narrows it to the step that shows the gap;
- ``@pytest.mark.vm_subset``: part of the lab-VM subset (Python is ~10x slower there).
"""

from __future__ import annotations

import pytest

MARKERS = ("not_applicable(*modes, reason): upstream does not expect this behaviour of these proxy modes",
           "known_failure(*modes, reason): a netemu gap in these proxy modes (all if none): strict xfail",
           "vm_subset: part of the Service-behaviour subset run in the lab VM")


def register(config: pytest.Config) -> None:
    """The markers, for --strict-markers (a module importing the suite's tests needs them too)."""
    for line in MARKERS:
        config.addinivalue_line("markers", line)


def mode_of(item: pytest.Item) -> str | None:
    """The proxy mode a test item runs in (its ``proxy_mode`` parameter), if it has one."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("proxy_mode") if callspec else None


def apply(item: pytest.Item) -> None:
    """The item's not_applicable (skip, remembered for the table) and known_failure (strict
    xfail) marks for its own proxy mode."""
    mode = mode_of(item)
    if mode is None:
        return
    for mark in item.iter_markers("not_applicable"):
        if mode in mark.args:
            item.add_marker(pytest.mark.skip(reason=f"n/a in {mode}: {mark.kwargs['reason']}"))
            item.user_properties.append(("not_applicable", mark.kwargs["reason"]))
    for mark in item.iter_markers("known_failure"):
        if not mark.args or mode in mark.args:
            item.add_marker(pytest.mark.xfail(strict=True, reason=mark.kwargs["reason"],
                                              raises=mark.kwargs.get("raises")))
