"""Upstream's Service behaviours in IPVS mode, in CI: two of tests/e2e/service_behaviours' tests
(the same functions and fixtures the host's iptables and nftables columns run, imported) on the
lab's IPVS cluster (conftest.py's ``ipvs_cluster``, which test_ipvs_cluster.py brought up), so
CI pays only for the behaviours themselves, not for another cluster.

The two are where IPVS mode works most unlike the iptables rules: ClientIP affinity is IPVS
persistence on the virtual server (its template connections, not the ``recent`` match), and a
NodePort with externalTrafficPolicy Local is the KUBE-NODE-PORT-LOCAL sets and a virtual server
on the node's address with only the local real servers (the outside client's address kept).
Under TCG on a loaded machine one behaviour takes 2-5 minutes (pods start slowly), so CI runs
two; the suite's whole lab-VM subset (16 behaviours, ~40-80 min) is recorded by hand:
``sudo scripts/service-behaviours --labvm ipvs`` (docs/service-behaviours.md, its ipvs column).
"""

from __future__ import annotations

import pytest

from tests.e2e.service_behaviours.fixtures import jig, outside  # noqa: F401 - the suite's fixtures
from tests.e2e.service_behaviours.test_affinity import (  # noqa: F401
    test_should_have_session_affinity_work_for_service_with_type_clusterip)
from tests.e2e.service_behaviours.test_traffic_policies import test_should_work_for_type_nodeport  # noqa: F401

# timeout: the first test's setup brings the cluster up when this module runs alone (~4-10 min)
pytestmark = [pytest.mark.labvm, pytest.mark.kubectl, pytest.mark.timeout(1200),
              pytest.mark.parametrize("proxy_mode", ["ipvs"], scope="session")]


@pytest.fixture(scope="session")
def cluster(ipvs_cluster):
    """The suite's ``cluster``: here the lab's IPVS cluster, not one of its own."""
    return ipvs_cluster
