"""The Service-behaviour suite's fixtures: a cluster per proxy mode per module, a namespace per test.

Proxy modes: ``NETEMU_PROXY_MODES=iptables,nftables`` names them; by default every selectable mode
of the registry (netemu.agent.proxy.modes) this kernel can run (``netemu.features``): iptables
and nftables on the host, ipvs in the lab VM (tests/labvm/test_service_behaviours.py). Every
test taking ``proxy_mode`` (through ``jig`` or ``cluster``) runs once per mode, on one cluster
per mode, and a new mode is a new column, not an edit of the suite.

Marks a test may carry, per mode:
- ``@pytest.mark.not_applicable("ipvs", reason=...)``: upstream does not expect the behaviour of
  that mode (the reason quotes upstream); reported as ``n/a``, never run;
- ``@pytest.mark.known_failure("nftables", reason=..., raises=Exc)``: a netemu gap, strict xfail
  in that mode (no mode named: every mode); ``raises`` narrows it to the step that shows the gap,
  so a failure anywhere else is still a failure;
- ``@pytest.mark.vm_subset``: part of the lab-VM subset (Python is ~10x slower there).

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
from tests.e2e.service_behaviours import results
from tests.e2e.service_behaviours.jig import Jig, unique_namespace
from tests.e2e.service_behaviours.traffic import Client



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
    for line in ("not_applicable(*modes, reason): upstream does not expect this behaviour of these proxy modes",
                 "known_failure(*modes, reason): a netemu gap in these proxy modes (all if none): strict xfail",
                 "vm_subset: part of the Service-behaviour subset run in the lab VM"):
        config.addinivalue_line("markers", line)
    config._behaviour_results = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "proxy_mode" in metafunc.fixturenames:
        modes = suite_modes()
        metafunc.parametrize("proxy_mode", modes, ids=modes, scope="session")


def _mode_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("proxy_mode") if callspec else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Per-mode marks, and the order: each mode's tests together (one cluster per mode), the
    disruptive ones (test_restarts.py) last, when nothing else needs that cluster any more."""
    modes = suite_modes()
    slots = [n for n, i in enumerate(items) if i.path.parent == results.SUITE_DIR]
    ours = sorted((items[n] for n in slots), key=lambda i: (
        modes.index(_mode_of(i)) if _mode_of(i) in modes else -1, i.path.name == "test_restarts.py"))
    for n, item in zip(slots, ours):
        items[n] = item
    for item in items:
        mode = _mode_of(item)
        if mode is None:
            continue
        for mark in item.iter_markers("not_applicable"):
            if mode in mark.args:
                item.add_marker(pytest.mark.skip(reason=f"n/a in {mode}: {mark.kwargs['reason']}"))
                item.user_properties.append(("not_applicable", mark.kwargs["reason"]))
        for mark in item.iter_markers("known_failure"):
            if not mark.args or mode in mark.args:
                item.add_marker(pytest.mark.xfail(strict=True, reason=mark.kwargs["reason"],
                                                  raises=mark.kwargs.get("raises")))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = (yield).get_result()
    mode = _mode_of(item)
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
        results.DOC.write_text(results.render(known, results.load()))
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


@pytest.fixture(scope="session")
def clients(cluster) -> dict[str, Client]:
    """One exec pod per worker (namespace e2e-clients), shared by the suite's tests: the
    requests a test sends from one are stateless, so a fresh pod per test buys nothing."""
    jig = Jig(cluster, "e2e-clients", "")
    cluster.kubectl("create", "namespace", "e2e-clients")
    out = {}
    for node in cluster.workers():
        out[node] = jig.exec_pod(f"client-{node}", node)
    return out


@pytest.fixture(scope="session")
def outside(cluster) -> Client:
    """A client outside the cluster (upstream's tests send "external" traffic from the test
    runner): netemu's external host on the node network, neither a node nor a pod; it goes
    with the cluster."""
    from netemu.emulator import external
    ext = external.ensure(str(cluster.state_dir))
    return Client(ext.netns, ext.ip, "external")


@pytest.fixture
def jig(request, cluster, proxy_mode):
    """The test's own namespace (removed after it, pods first and at once)."""
    ns = unique_namespace(request.node.originalname)
    cluster.kubectl("create", "namespace", ns)
    j = Jig(cluster, ns, proxy_mode)
    try:
        yield j
    finally:
        for undo in reversed(j.cleanups):
            undo()
        cluster.kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=0", "--force", "--wait=false",
                        check=False)
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
