"""Upstream's Service behaviours in IPVS mode, in CI: a few of tests/e2e/service_behaviours'
tests (the same functions the host's iptables and nftables columns run, imported) on the lab's
IPVS cluster (conftest.py's ``ipvs_cluster``, which test_ipvs_cluster.py brought up), so CI pays
only for the behaviours themselves, not for another cluster.

The few are the ones where IPVS mode works differently from the iptables rules: endpoints
becoming real servers and going again (to an empty virtual server that REJECTs), ClientIP
affinity as IPVS persistence switched off and on again on a live virtual server, a NodePort with
externalTrafficPolicy Local (the KUBE-NODE-PORT-LOCAL sets, the client's address kept), and a
terminating endpoint used when no ready one is left. The whole lab-VM subset of the suite
(~40 min under TCG) is recorded by hand: ``scripts/service-behaviours --labvm ipvs``
(docs/service-behaviours.md, its ipvs column).
"""

from __future__ import annotations

import pytest

from tests.e2e.service_behaviours.fixtures import clients, jig, outside  # noqa: F401 - the suite's fixtures
from tests.e2e.service_behaviours.test_affinity import (  # noqa: F401
    test_should_be_able_to_switch_session_affinity_for_service_with_type_clusterip,
    test_should_have_session_affinity_work_for_service_with_type_clusterip)
from tests.e2e.service_behaviours.test_endpoints import (  # noqa: F401
    test_should_be_rejected_when_no_endpoints_exist, test_should_serve_a_basic_endpoint_from_pods)
from tests.e2e.service_behaviours.test_terminating import (  # noqa: F401
    test_should_fallback_to_terminating_endpoints_when_there_are_no_ready_endpoints_with_internaltrafficpolicy_cluster)
from tests.e2e.service_behaviours.test_traffic_policies import test_should_work_for_type_nodeport  # noqa: F401

# timeout: the first test's setup brings the cluster up when this module runs alone (~4 min)
pytestmark = [pytest.mark.labvm, pytest.mark.kubectl, pytest.mark.timeout(900),
              pytest.mark.parametrize("proxy_mode", ["ipvs"], scope="session")]


@pytest.fixture(scope="session")
def cluster(ipvs_cluster):
    """The suite's ``cluster``: here the lab's IPVS cluster, not one of its own."""
    return ipvs_cluster
