"""Upstream's Service behaviours in IPVS mode, in CI: tests/e2e/service_behaviours' own tests (the
same functions and fixtures the host's iptables and nftables columns run, imported) on the lab's
IPVS cluster (conftest.py's ``ipvs_cluster``, which test_ipvs_cluster.py brought up), so CI pays
only for the behaviours themselves, not for another cluster.

What runs, in this order (pytest keeps the import order), and why: where IPVS mode works most
unlike the iptables rules and test_ipvs_cluster.py does not already look:
- a NodePort Service answers by name, ClusterIP and on every node's address (IPVS: a virtual
  server per node address, the KUBE-NODE-PORT-* sets);
- a Service without endpoints is refused at once (IPVS: a virtual server without real servers,
  the kernel's IPVS answers ICMP port unreachable itself, "no destination available");
- a pod reaches itself through its own Service (IPVS: the KUBE-LOOP-BACK set masquerades the
  hairpin, as the iptables mode's KUBE-MARK-MASQ in the endpoint chain does);
- ExternalTrafficPolicy Local from outside keeps the client's address (IPVS: the KUBE-NODE-PORT-
  LOCAL-* sets, no masquerade);
- ClientIP session affinity, and switching it off and on (IPVS persistence on the virtual server:
  template connections, not the ``recent`` match).

Measured in the lab VM on the one shared cluster (the CI layout; quiet host, 2026-12-06,
`scripts/labvm --pytest -m labvm tests/labvm/test_ipvs_cluster.py tests/labvm/test_ipvs_cluster_behaviours.py
--durations=0`: 10 passed in 9:21), seconds per behaviour with its setup and teardown: NodePort on
every node 114 (44 of them the session's client pods, made once), no endpoints refused 50,
ETP Local NodePort 61, ClientIP affinity 78, switching affinity 119; hairpin (added after, measured
with ``-k "hairpin or rejected"``) 34 + its teardown: ~8 min in all, against ~1.3 min for the one
behaviour CI ran before (the lab run was ~6 min of a ~24 min CI).
The suite's other nineteen vm_subset behaviours (UDP conntrack across a server pod's cycle, headless
and service-proxy-name labels, source ranges, restart of kube-proxy, affinity on NodePort,
terminating-endpoint fallbacks, ...) take 30-220 s each there (docs/service-behaviours/ipvs.json has
each one's seconds): all 25 are about an hour, more than CI's budget, so they are the by-hand column:
``sudo scripts/service-behaviours --labvm ipvs``.
"""

from __future__ import annotations

import pytest

from tests.e2e.service_behaviours.fixtures import clients, jig, outside  # noqa: F401 - the suite's fixtures
from tests.e2e.service_behaviours.test_endpoints import (  # noqa: F401
    test_should_be_able_to_create_a_functioning_nodeport_service, test_should_be_rejected_when_no_endpoints_exist,
    test_should_allow_pods_to_hairpin_back_to_themselves_through_services)
from tests.e2e.service_behaviours.test_traffic_policies import test_should_work_for_type_nodeport  # noqa: F401
from tests.e2e.service_behaviours.test_affinity import (  # noqa: F401, I001 - value order, not sorted
    test_should_have_session_affinity_work_for_service_with_type_clusterip,
    test_should_be_able_to_switch_session_affinity_for_service_with_type_clusterip)

# timeout: the first test's setup brings the cluster up when this module runs alone (~4-10 min)
pytestmark = [pytest.mark.labvm, pytest.mark.kubectl, pytest.mark.timeout(1200),
              pytest.mark.parametrize("proxy_mode", ["ipvs"], scope="session")]


@pytest.fixture(scope="session")
def cluster(ipvs_cluster):
    """The suite's ``cluster``: here the lab's IPVS cluster, not one of its own."""
    return ipvs_cluster
