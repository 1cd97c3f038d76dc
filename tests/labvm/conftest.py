"""Fixtures for the lab VM suite: Open vSwitch started for the test session if it is not running,
and the one IPVS cluster the cluster tests share.

The CI lab VM boots without systemd (scripts/labvm's own init), so nothing starts ovs-vswitchd;
in the Vagrant lab systemd already runs it and this fixture leaves it alone.

``ipvs_cluster``: `netemu up --proxy-mode ipvs` takes 3-4 minutes under TCG, so
test_ipvs_cluster.py and test_ipvs_cluster_behaviours.py run on one cluster (session-scoped), and
the tests that use it run last (``pytest_collection_modifyitems``): the cluster is up only for
them, not while the proxier, kernel and Mininet tests run.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e import _cluster as c
from tests.e2e.service_behaviours import marks

HERE = Path(__file__).resolve().parent

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"


def _ovs_running() -> bool:
    return subprocess.run(["ovs-vsctl", "--timeout=5", "show"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def ovs():
    """ovs-vswitchd and ovsdb-server running; stopped again only if this fixture started them."""
    started = False
    if not _ovs_running():
        done = subprocess.run([OVS_CTL, "start", "--system-id=random"], capture_output=True, text=True, check=False)
        assert done.returncode == 0 and _ovs_running(), f"ovs-ctl start failed: {done.stdout}{done.stderr}"
        started = True
    try:
        yield
    finally:
        if started:
            subprocess.run([OVS_CTL, "stop"], capture_output=True, check=False)


@pytest.fixture
def quiet_mininet():
    from mininet.log import setLogLevel

    setLogLevel("warning")
    yield


class NetemuCluster(c.Cluster):
    """The e2e Cluster; without kubectl in the VM (it comes from the host: scripts/labvm's
    LABVM_KUBECTL), ``get`` and ``apply`` run as ``netemu get``/``netemu apply`` in this process
    (a Python start costs seconds in the VM), so the cluster checks still run; anything else
    needs the real kubectl (the Service behaviours are marked ``kubectl``)."""

    def kubectl(self, *words: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        if shutil.which("kubectl"):
            return super().kubectl(*words, input=input, check=check)
        from netemu.cli.main import main
        verb, *rest = words
        if verb not in ("get", "apply"):
            raise NotImplementedError(f"kubectl {verb}: no kubectl in the lab VM")
        if input is not None:
            path = self.state_dir / "stdin.yaml"
            path.write_text(input)
            rest = [str(path) if w == "-" else w for w in rest]
        argv = [verb, *rest, "--state-dir", str(self.state_dir)]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
        proc = subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
        if check and proc.returncode != 0:
            raise AssertionError(f"netemu {' '.join(words)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def ipvs_cluster(tmp_path_factory):
    """`netemu up --proxy-mode ipvs`: control plane + 2 workers on Linux bridges (nothing starts
    Open vSwitch in the VM; the VM has 2 emulated CPUs and 2 GB) and the cluster DNS (the Service
    behaviours reach Services by name from their exec pods, as upstream's do)."""
    state = tmp_path_factory.mktemp("lab-ipvs")
    cl = NetemuCluster(state, 2, c.node_network(3), ("--proxy-mode", "ipvs", "--switch", "linuxbridge",
                                                     "--agent-arg=--heartbeat-interval=2"))
    try:
        cl.up()
        yield cl
    finally:
        cl.down()


def pytest_configure(config: pytest.Config) -> None:
    """The Service-behaviour suite's markers: test_ipvs_cluster_behaviours.py imports its tests."""
    marks.register(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests on the shared IPVS cluster last (a stable sort: their own order kept), so the
    cluster, brought up by the first of them, is up only while they run; the behaviours' per-mode
    marks (not_applicable, known_failure) mean here what they mean in their suite."""
    items.sort(key=lambda item: "ipvs_cluster" in getattr(item, "fixturenames", ()))
    for item in items:
        if item.path.parent == HERE:
            marks.apply(item)
