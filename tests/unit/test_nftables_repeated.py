"""Upstream's TestSyncProxyRulesRepeated for the nftables mode: the transaction of each sync.

Each step makes one change, syncs, and checks (as upstream does) the whole table the kernel
then holds and how many operations the sync's transaction carried: a partial sync sends only the
changed Services' chains and the map elements that differ; stale chains are flushed at once and
deleted in a separate transaction by the first sync a second later. The kernel here is our
in-memory Table, which refuses what nft would (deleting a missing chain, a rule or map element
pointing at a missing chain). Source of the port: nft_upstream_cases.py.
"""

from __future__ import annotations

import copy

from netemu.agent.proxy.model import ServiceName
from netemu.agent.proxy.nftables.table import Table
from netemu.agent.proxy.nftables.transaction import Planner
from tests.unit.nft_upstream_cases import BASE_RULES, assert_tables_equal, dedent, ep, eps, maps, port, svc, \
    upstream_context

SVC1 = dedent("""
    add element ip kube-proxy cluster-ips { 172.30.0.41 }
    add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
    add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
    add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 }
    add chain ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80
    add rule ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 ip saddr 10.0.1.1 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 meta l4proto tcp dnat to 10.0.1.1:80
""")
SVC2 = dedent("""
    add element ip kube-proxy cluster-ips { 172.30.0.42 }
    add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 8080 : goto service-MHHHYRWA-ns2/svc2/tcp/p8080 }
    add chain ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080
    add rule ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080 ip daddr 172.30.0.42 tcp dport 8080 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080 numgen random mod 1 vmap { 0 : goto endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 }
    add chain ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080
    add rule ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 ip saddr 10.0.2.1 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 meta l4proto tcp dnat to 10.0.2.1:8080
""")
SVC3_MASQ = ("add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 tcp dport 80 "
             "ip saddr != 10.0.0.0/8 jump mark-for-masquerade\n")
SVC3 = dedent("""
    add element ip kube-proxy cluster-ips { 172.30.0.43 }
    add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
    add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
    add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80 }
    add chain ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80
    add rule ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80 ip saddr 10.0.3.1 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80 meta l4proto tcp dnat to 10.0.3.1:80
""")
SVC4 = dedent("""
    add element ip kube-proxy cluster-ips { 172.30.0.44 }
    add element ip kube-proxy service-ips { 172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80 }
    add chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80
    add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 ip daddr 172.30.0.44 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 }
    add chain ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80
    add rule ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 ip saddr 10.0.4.1 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 meta l4proto tcp dnat to 10.0.4.1:80
""")
SVC3_TWO = dedent("""
    add element ip kube-proxy cluster-ips { 172.30.0.43 }
    add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
    add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
    add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 , 1 : goto endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80 }
    add chain ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80
    add rule ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 ip saddr 10.0.3.2 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 meta l4proto tcp dnat to 10.0.3.2:80
    add chain ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80
    add rule ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80 ip saddr 10.0.3.3 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80 meta l4proto tcp dnat to 10.0.3.3:80
""")


class Node:
    """Upstream's fake proxier, reduced to what a sync needs: objects, a clock, a kernel."""

    def __init__(self):
        self.services, self.slices = {}, {}
        self.planner, self.kernel, self.now, self.first = Planner(), Table(exists=False), 100.0, True
        self.last_ops = None

    def sync(self, *changed):
        svc_map, eps_map = maps(self.services.values(), self.slices.values())
        plan = self.planner.plan(svc_map, eps_map, upstream_context(), full=self.first,
                                 changed={ServiceName(*c.split("/")) for c in changed}, now=self.now,
                                 kernel_chains=self.kernel.service_chains() if self.first else None)
        if plan.delete_text:
            self.kernel.apply(plan.delete_text)
        self.last_ops = self.kernel.apply(plan.text) if plan.text else 0
        self.planner.commit(plan)
        self.first = False
        return plan

    def age_stale_chains(self):
        self.now += 2.0


def test_sync_proxy_rules_repeated():
    node = Node()
    node.services["svc1"] = svc("ns1", "svc1", type="ClusterIP", clusterIP="172.30.0.41", ports=[port()])
    node.services["svc2"] = svc("ns2", "svc2", type="ClusterIP", clusterIP="172.30.0.42", ports=[port("p8080", 8080)])
    node.slices["svc1"] = eps("ns1", "svc1", [ep("10.0.1.1")])
    node.slices["svc2"] = eps("ns2", "svc2", [ep("10.0.2.1")], [{"name": "p8080", "port": 8080, "protocol": "TCP"}])
    plan = node.sync()
    assert plan.full
    assert_tables_equal(BASE_RULES + SVC1 + SVC2, node.kernel.dump())

    # a new Service and its endpoints: its elements and chains only
    node.services["svc3"] = svc("ns3", "svc3", type="ClusterIP", clusterIP="172.30.0.43", ports=[port()])
    node.slices["svc3"] = eps("ns3", "svc3", [ep("10.0.3.1")])
    node.sync("ns3/svc3")
    assert_tables_equal(BASE_RULES + SVC1 + SVC2 + SVC3, node.kernel.dump())
    assert node.last_ops == 10      # 2 elements, add+flush of 2 chains, 2 rules in each

    # delete a Service: its chains are flushed now, deleted later
    del node.services["svc2"]
    node.sync("ns2/svc2")
    stale2 = dedent("""
        add chain ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080
        add chain ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080
    """)
    assert_tables_equal(BASE_RULES + SVC1 + stale2 + SVC3, node.kernel.dump())
    assert node.last_ops == 4       # delete 2 elements, flush 2 chains

    # a second later the stale chains go, in a transaction of their own
    node.age_stale_chains()
    plan = node.sync()
    assert plan.deleted_chains == ("endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080",
                                   "service-MHHHYRWA-ns2/svc2/tcp/p8080")
    assert_tables_equal(BASE_RULES + SVC1 + SVC3, node.kernel.dump())
    assert node.last_ops == 0

    # a Service without endpoints: its ClusterIP rejects
    node.services["svc4"] = svc("ns4", "svc4", type="ClusterIP", clusterIP="172.30.0.44", ports=[port()])
    node.sync("ns4/svc4")
    no_eps4 = dedent("""
        add element ip kube-proxy cluster-ips { 172.30.0.44 }
        add element ip kube-proxy no-endpoint-services { 172.30.0.44 . tcp . 80 comment "ns4/svc4:p80" : goto reject-chain }
    """)
    assert_tables_equal(BASE_RULES + SVC1 + SVC3 + no_eps4, node.kernel.dump())
    assert node.last_ops == 2

    # ... then its endpoints
    node.slices["svc4"] = eps("ns4", "svc4", [ep("10.0.4.1")])
    node.sync("ns4/svc4")
    assert_tables_equal(BASE_RULES + SVC1 + SVC3 + SVC4, node.kernel.dump())
    assert node.last_ops == 10      # service-ips in, no-endpoint-services out, 2 chains

    # change an endpoint: the old endpoint chain is flushed and stays for now
    eps3 = node.slices["svc3"]
    node.slices["svc3"] = eps3_update = copy.deepcopy(eps3)
    eps3_update["endpoints"][0]["addresses"] = ["10.0.3.2"]
    node.sync("ns3/svc3")
    svc3_one = SVC3_TWO.replace("numgen random mod 2 vmap { 0 : goto endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 , "
                                "1 : goto endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80 }",
                                "numgen random mod 1 vmap { 0 : goto endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 }")
    svc3_one = "\n".join(l for l in svc3_one.splitlines() if "TQ2QKHCZ" not in l) + "\n"
    old_ep = "add chain ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80\n"
    assert_tables_equal(BASE_RULES + SVC1 + svc3_one + old_ep + SVC4, node.kernel.dump())
    assert node.last_ops == 9       # 2 chains rewritten (8), the old endpoint chain flushed (1)

    # add an endpoint; the old chain is deleted by this sync's first transaction
    node.age_stale_chains()
    node.slices["svc3"] = eps3_update2 = copy.deepcopy(eps3_update)
    eps3_update2["endpoints"].append(ep("10.0.3.3"))
    node.sync("ns3/svc3")
    assert_tables_equal(BASE_RULES + SVC1 + SVC3_TWO + SVC4, node.kernel.dump())
    assert node.last_ops == 12      # 3 chains, add+flush and 2 rules each

    # empty its endpoints: chains flushed, the ClusterIP rejects
    node.slices["svc3"] = eps3_update3 = copy.deepcopy(eps3_update2)
    eps3_update3["endpoints"] = []
    node.sync("ns3/svc3")
    flushed3 = dedent("""
        add element ip kube-proxy cluster-ips { 172.30.0.43 }
        add element ip kube-proxy no-endpoint-services { 172.30.0.43 . tcp . 80 comment "ns3/svc3:p80" : goto reject-chain }
        add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
        add chain ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80
        add chain ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80
    """)
    assert_tables_equal(BASE_RULES + SVC1 + flushed3 + SVC4, node.kernel.dump())
    assert node.last_ops == 5
    assert set(node.planner.state.stale) == {"service-4AT6LBPK-ns3/svc3/tcp/p80",
                                             "endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80",
                                             "endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80"}

    # restore them at once: the chains come back and leave the stale list
    node.slices["svc3"] = eps3_update2
    node.sync("ns3/svc3")
    assert_tables_equal(BASE_RULES + SVC1 + SVC3_TWO + SVC4, node.kernel.dump())
    assert node.last_ops == 14
    assert node.planner.state.stale == {}

    # empty, age, restore: deleted by the first transaction, recreated by the second
    node.slices["svc3"] = eps3_update3
    node.sync("ns3/svc3")
    node.age_stale_chains()
    node.slices["svc3"] = eps3_update2
    node.sync("ns3/svc3")
    assert_tables_equal(BASE_RULES + SVC1 + SVC3_TWO + SVC4, node.kernel.dump())

    # no change: an empty transaction
    node.sync()
    assert_tables_equal(BASE_RULES + SVC1 + SVC3_TWO + SVC4, node.kernel.dump())
    assert node.last_ops == 0


def test_full_resync_after_restart_deletes_what_a_previous_run_left():
    """A new process (first sync: full) finds chains of Services gone while it was down: they
    are flushed, and deleted a second later, as upstream's listing of existing chains does."""
    node = Node()
    node.services["svc1"] = svc("ns1", "svc1", type="ClusterIP", clusterIP="172.30.0.41", ports=[port()])
    node.services["svc2"] = svc("ns2", "svc2", type="ClusterIP", clusterIP="172.30.0.42", ports=[port("p8080", 8080)])
    node.slices["svc1"] = eps("ns1", "svc1", [ep("10.0.1.1")])
    node.slices["svc2"] = eps("ns2", "svc2", [ep("10.0.2.1")], [{"name": "p8080", "port": 8080, "protocol": "TCP"}])
    node.sync()
    restarted = Node()
    restarted.kernel = node.kernel
    restarted.services = {"svc1": node.services["svc1"]}
    restarted.slices = {"svc1": node.slices["svc1"]}
    plan = restarted.sync()
    assert plan.full and "flush chain ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080" in plan.text
    assert "add chain ip kube-proxy filter-input\ndelete chain ip kube-proxy filter-input" in plan.text
    restarted.age_stale_chains()
    restarted.sync()
    assert_tables_equal(BASE_RULES + SVC1, restarted.kernel.dump())
