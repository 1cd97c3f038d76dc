"""The canary monitor on a real kernel, both backends: someone flushes the node namespace's
nat and filter tables (rules and chains), the monitor notices, a full resync brings the
Service back. Only inside the lab's namespaces."""

from __future__ import annotations

import pytest

from netemu.testing.netnslab import in_netns, requests, run

from .test_proxy_iptables import CLUSTER_IP, Cluster, backend, endpoint_slice, lab, pod_names, service  # noqa: F401

pytestmark = pytest.mark.root


def test_a_flushed_node_is_noticed_and_resynced_in_full(lab, backend):  # noqa: F811
    c = Cluster(lab, backend)
    c.proxier.load([service()], [endpoint_slice(c.pods)])
    assert c.proxier.sync().ok
    assert c.proxier.canary.ensure()
    for table in ("mangle", "nat", "filter"):
        assert ":KUBE-PROXY-CANARY" in c.save(table)
    assert not c.proxier.canary.check()

    ipt = f"iptables-{c.proxier.backend}"
    for table in ("mangle", "nat", "filter"):           # what a firewall reload does
        run(in_netns(c.n1.netns, [ipt, "-t", table, "-F"]))
        run(in_netns(c.n1.netns, [ipt, "-t", table, "-X"]))
    assert pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=3, timeout=0.5)) == [None] * 3

    assert c.proxier.canary.check()
    c.proxier.force_full_sync()
    assert not c.proxier.need_full_sync
    answers = pod_names(requests(c.client.netns, CLUSTER_IP, 80, count=30))
    assert None not in answers and set(answers) <= {"p0", "p1", "p2"}
    assert c.proxier.canary.ensure() and not c.proxier.canary.check()
    c.proxier.canary.remove()
    assert "KUBE-PROXY-CANARY" not in c.save("mangle")
