"""The suite's per-test fixtures over a ``cluster`` fixture and a ``proxy_mode``: the test's own
namespace and jig, the shared exec pods, the client outside the cluster.

Shared by the suite's conftest (one cluster per proxy mode) and the lab VM's IPVS subset
(tests/labvm/test_ipvs_cluster_behaviours.py: the lab's own IPVS cluster), which import them, so
a behaviour runs on the same fixtures wherever it runs.
"""

from __future__ import annotations

import pytest

from tests.e2e.service_behaviours.jig import Jig, unique_namespace
from tests.e2e.service_behaviours.traffic import Client


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
