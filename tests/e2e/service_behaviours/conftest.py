"""The Service-behaviour suite's fixtures: a cluster per proxy mode per module, a namespace per test.

Proxy modes: ``NETEMU_PROXY_MODES=iptables,nftables`` names them; by default every selectable mode
of the registry (netemu.agent.proxy.modes) this kernel can run (``netemu.features``): iptables
and nftables on the host, ipvs in the lab VM (its ``vm_subset``: ``scripts/service-behaviours
--labvm ipvs``). Every test taking ``proxy_mode`` (through ``jig`` or ``cluster``) runs once per
mode, on one cluster per mode, and a new mode is a new column, not an edit of the suite.

Marks a test may carry, per mode (marks.py: not_applicable, known_failure, vm_subset), and the
per-test fixtures (fixtures.py: jig, clients, outside) are shared with the lab VM's IPVS subset
(tests/labvm/test_ipvs_cluster_behaviours.py), which runs some of these functions on its cluster.

``NETEMU_RECORD_BEHAVIOURS=1`` writes the outcomes to docs/service-behaviours/<mode>.json (or
``NETEMU_BEHAVIOURS_DIR``, also printed) and re-renders docs/service-behaviours.md
(scripts/service-behaviours does both; with --labvm, for a mode run in the lab VM).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil

import pytest

from tests.e2e import _cluster as c
from tests.e2e.service_behaviours import marks, results
from tests.e2e.service_behaviours.fixtures import clients, jig, outside  # noqa: F401 - the suite's fixtures


def runs_here(mode: str) -> bool:
    from netemu import features
    try:
        features.require_for(proxy_mode=mode)
    except features.FeatureMissing:
        return False
    return True


def suite_modes() -> list[str]:
    """NETEMU_PROXY_MODES, or every selectable mode of the registry that this kernel can run."""
    named = os.environ.get("NETEMU_PROXY_MODES", "").strip()
    if named:
        return [m.strip() for m in named.split(",") if m.strip()]
    from netemu.agent.proxy import modes
    return [m for m in modes.selectable() if runs_here(m)]


def pytest_configure(config: pytest.Config) -> None:
    marks.register(config)
    config._behaviour_results = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "proxy_mode" in metafunc.fixturenames:
        modes = suite_modes()
        metafunc.parametrize("proxy_mode", modes, ids=modes, scope="session")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Per-mode marks, and the order: each mode's tests together (one cluster per mode), the
    disruptive ones (test_restarts.py) last, when nothing else needs that cluster any more."""
    modes = suite_modes()
    slots = [n for n, i in enumerate(items) if i.path.parent == results.SUITE_DIR]
    ours = sorted((items[n] for n in slots), key=lambda i: (
        modes.index(marks.mode_of(i)) if marks.mode_of(i) in modes else -1, i.path.name == "test_restarts.py"))
    for n, item in zip(slots, ours):
        items[n] = item
    for n in slots:
        marks.apply(items[n])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = (yield).get_result()
    mode = marks.mode_of(item)
    if mode is None or item.path.parent != results.SUITE_DIR:
        return
    key = f"{item.path.name}::{item.originalname}"
    row = _row(item, report)
    if row is not None:
        store = item.config._behaviour_results.setdefault(mode, {})
        if report.when == "call" or row["outcome"] != "pass" or key not in store:
            store[key] = row


def _row(item: pytest.Item, report) -> dict | None:
    seconds = round(report.duration, 1)
    na = dict(item.user_properties).get("not_applicable")
    if report.skipped and na:
        return {"outcome": "n/a", "reason": na}
    if hasattr(report, "wasxfail") and report.skipped:
        return {"outcome": "xfail", "reason": report.wasxfail.removeprefix("reason: "), "seconds": seconds}
    if report.failed and str(report.longrepr).startswith("[XPASS(strict)]"):
        return {"outcome": "fail", "reason": "passes now: remove its known_failure mark"}
    if report.skipped:
        return {"outcome": "skipped", "reason": str(report.longrepr[-1]) if report.longrepr else ""}
    if report.failed:
        return {"outcome": "fail", "reason": f"failed in {report.when}", "seconds": seconds}
    return {"outcome": "pass", "seconds": seconds} if report.when == "call" else None


def pytest_sessionfinish(session: pytest.Session) -> None:
    if os.environ.get("NETEMU_RECORD_BEHAVIOURS") != "1":
        return
    known = results.inventory()
    recorded = {}
    for mode, rows in session.config._behaviour_results.items():
        rows = {k: v for k, v in rows.items() if v["outcome"] != "skipped"}   # could not run here
        if rows:
            recorded[mode] = results.write(mode, results.merge(mode, rows, known))
    if recorded and results.RESULTS_DIR.parent == results.DOC.parent:
        results.write_doc()
    for mode, path in recorded.items():     # for a run whose files stay behind (the lab VM)
        print(f"\n=== service-behaviours {mode}.json ===\n{path.read_text()}=== end ===")


# -- the cluster ---------------------------------------------------------------------------------

@contextlib.contextmanager
def running_cluster(proxy_mode: str, tmp_path_factory, tag: str):
    """``netemu up --nodes 3 --proxy-mode MODE`` (and ``NETEMU_BEHAVIOURS_UP_ARGS``, split as a
    shell would: the lab VM passes ``--switch linuxbridge``); down and nothing left after."""
    state = tmp_path_factory.mktemp(f"behaviours-{tag}-{proxy_mode}")
    extra = tuple(shlex.split(os.environ.get("NETEMU_BEHAVIOURS_UP_ARGS", "")))
    with c.running(state, 3, ("--proxy-mode", proxy_mode, *extra)) as cl:
        yield cl
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(proxy_mode, tmp_path_factory):
    """One cluster per proxy mode for the whole suite: every test works in its own namespace
    and removes it; the disruptive tests (test_restarts.py) run last on it."""
    with running_cluster(proxy_mode, tmp_path_factory, "suite") as cl:
        yield cl
