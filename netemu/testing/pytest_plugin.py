"""pytest plugin (entry point ``netemu``): the ``netemu_cluster`` fixture.

A small real cluster per test module, always taken down (also when a test or ``up`` failed),
so a user scripts an experiment as a test::

    import pytest
    pytestmark = pytest.mark.netemu_cluster(nodes=3)

    def test_spread(netemu_cluster):
        netemu_cluster.apply(deployment, service)
        netemu_cluster.wait_ready("app=web", 3)
        result = netemu_cluster.traffic("node/worker", "svc/web", requests=600, concurrency=8)
        assert result.chi_square["p_value"] > 0.001

``@pytest.mark.netemu_cluster(nodes=N, args=[...])`` on the module sets the size and extra
``netemu up`` flags (default 2 workers). ``NETEMU_CLUSTER_NODES=N`` in the environment makes
every such cluster at least N workers (the same tests on a bigger cluster: issue 17's 10-node
run of the e2e suite). Needs root and kubectl: skipped, with the reason, without them.
"""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netemu_cluster(nodes=2, args=()): size and `netemu up` flags of the "
                                       "module's netemu_cluster fixture")


@pytest.fixture(scope="module")
def netemu_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if os.geteuid() != 0:
        pytest.skip("netemu_cluster needs root (network namespaces, netfilter)")
    if not shutil.which("kubectl"):
        pytest.skip("netemu_cluster needs kubectl on PATH")
    from netemu.testing.cluster import NetemuCluster    # here: every pytest run loads this plugin

    marker = request.node.get_closest_marker("netemu_cluster")
    options = dict(marker.kwargs) if marker else {}
    nodes = max(int(options.get("nodes", 2)), min_nodes())
    cluster = NetemuCluster(tmp_path_factory.mktemp("netemu-cluster"), nodes=nodes, args=options.get("args", ()))
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def min_nodes() -> int:
    """NETEMU_CLUSTER_NODES (0 when unset); a value that is not a number is refused by name."""
    value = os.environ.get("NETEMU_CLUSTER_NODES", "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise pytest.UsageError(f"NETEMU_CLUSTER_NODES={value!r}: a number of nodes")
    return int(value)
