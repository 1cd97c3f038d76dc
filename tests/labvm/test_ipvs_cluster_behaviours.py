"""Upstream's Service behaviours in IPVS mode, in CI: tests/e2e/service_behaviours' own test (the
same function and fixtures the host's iptables and nftables columns run, imported) on the lab's
IPVS cluster (conftest.py's ``ipvs_cluster``, which test_ipvs_cluster.py brought up), so CI pays
only for the behaviour itself, not for another cluster.

The behaviour is where IPVS mode works most unlike the iptables rules and test_ipvs_cluster.py
does not already look: ClientIP session affinity, which is IPVS persistence on the virtual server
(template connections, not the ``recent`` match). Measured under TCG on a loaded machine (load
average 15-35), a behaviour takes 3-7 minutes with its setup and teardown (pods start slowly),
so CI runs one (~3 min: the budget); more is one import line each. The suite's whole lab-VM
subset (16 behaviours, 40-80 min) is recorded by hand: ``sudo scripts/service-behaviours --labvm
ipvs`` (docs/service-behaviours.md, its ipvs column).
"""

from __future__ import annotations

import pytest

from tests.e2e.service_behaviours.fixtures import jig  # noqa: F401 - the suite's fixture
from tests.e2e.service_behaviours.test_affinity import (  # noqa: F401
    test_should_have_session_affinity_work_for_service_with_type_clusterip)

# timeout: the first test's setup brings the cluster up when this module runs alone (~4-10 min)
pytestmark = [pytest.mark.labvm, pytest.mark.kubectl, pytest.mark.timeout(1200),
              pytest.mark.parametrize("proxy_mode", ["ipvs"], scope="session")]


@pytest.fixture(scope="session")
def cluster(ipvs_cluster):
    """The suite's ``cluster``: here the lab's IPVS cluster, not one of its own."""
    return ipvs_cluster
