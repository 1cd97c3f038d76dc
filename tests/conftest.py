"""Shared pytest setup: markers decide where a test can run, and say so when it cannot.

- ``root``: needs root and kernel networking; skipped (with the reason) when not root.
- ``labvm``: needs the full Debian kernel; runs only inside the lab VM (scripts/labvm sets
  NETEMU_IN_LABVM=1); on the host it is reported as skipped, never silently passed.
- ``etcd`` / ``kubectl``: need those binaries; skipped with the reason when missing.
- ``serial``: runs alone (scripts/test runs these after the parallel part).

Every test also gets an ``xdist_group`` (its module, or its proxy mode's cluster in the
Service-behaviour suite) for scripts/test's parallel run.
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


def _group(item: pytest.Item) -> str:
    """The parallel worker a test shares with others (``pytest -n N --dist loadgroup``, as
    scripts/test runs the host suite): its module's, so a module-scoped cluster is made once;
    the Service-behaviour suite's tests share one session cluster per proxy mode, so one group
    per mode (and its disruptive tests stay last on it)."""
    mode = getattr(getattr(item, "callspec", None), "params", {}).get("proxy_mode")
    if mode and item.path.parent.name == "service_behaviours":
        return f"service-behaviours-{mode}"
    return str(item.path.relative_to(item.config.rootpath))


@pytest.hookimpl(tryfirst=True)       # before xdist's loadgroup reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = _skip_reason(item)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
        item.add_marker(pytest.mark.xdist_group(_group(item)))
