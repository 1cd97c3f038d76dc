"""Shared pytest setup: markers decide where a test can run, and say so when it cannot.

- ``root``: needs root and kernel networking; skipped (with the reason) when not root.
- ``labvm``: needs the full Debian kernel; runs only inside the lab VM (scripts/labvm sets
  NETEMU_IN_LABVM=1); on the host it is reported as skipped, never silently passed.
- ``etcd`` / ``kubectl``: need those binaries; skipped with the reason when missing.
- ``serial``: runs alone (scripts/test runs these after the parallel part).

scripts/test's parallel run keeps each module's tests on one worker, and each proxy mode's tests
of the Service-behaviour suite (one session cluster per mode): :func:`worker_group`.
"""

from __future__ import annotations

import os
import shutil

import pytest


def _skip_reason(item: pytest.Item) -> str | None:
    if item.get_closest_marker("labvm") and os.environ.get("NETEMU_IN_LABVM") != "1":
        return "needs the full Debian kernel: runs in the lab VM (scripts/labvm --pytest -m labvm tests/labvm)"
    if item.get_closest_marker("root") and os.geteuid() != 0:
        return "needs root (network namespaces, netfilter)"
    if item.get_closest_marker("etcd") and not shutil.which("etcd"):
        return "needs etcd (Debian package etcd-server; scripts/provision.sh installs it)"
    if item.get_closest_marker("kubectl") and not shutil.which("kubectl"):
        return "needs kubectl on PATH"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = _skip_reason(item)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def worker_group(nodeid: str) -> str:
    """The parallel worker a test shares with others (scripts/test: ``pytest -n N --dist
    loadscope``): its module's, so a module-scoped cluster is made once; the Service-behaviour
    suite's tests share one session cluster per proxy mode, so one group per mode there (and its
    disruptive tests stay last on it)."""
    path, _, name = nodeid.partition("::")
    if "/service_behaviours/" in path and "[" in name:
        from netemu.agent.proxy import modes     # the registry: a new mode is a new group too
        params = name[name.index("[") + 1:name.rindex("]")].split("-")
        mode = next((m for m in modes.selectable() if m in params), None)
        if mode:
            return f"service-behaviours-{mode}"
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """--dist loadscope by :func:`worker_group` (xdist's own loadgroup marks do not reach the
    scheduler under pytest 9: it appends them to ``item._nodeid``, which pytest 9 no longer reads).
    Optional: a pytest without pytest-xdist (a venv made before it joined the test extra) must
    still run the suite in one process, not fail with "unknown hook"."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByCluster(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return ByCluster(config, log)
