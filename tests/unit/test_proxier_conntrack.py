"""Conntrack cleanup planning (upstream cleanup.go) and the applier's idempotent jump rules."""

from __future__ import annotations

from netemu.agent.proxy.conntrack import Conntrack, plan_cleanup
from netemu.agent.proxy.commands import Result
from netemu.agent.proxy.xtables.apply import Iptables
from netemu.agent.proxy.iptables.chains import jump_rules
from netemu.agent.proxy.model import EndpointInfo, ServicePortInfo, ServicePortName
from netemu.agent.proxy.tracker import UpdateEndpointsMapResult, UpdateServiceMapResult

DNS = ServicePortName("kube-system", "dns", "dns", "UDP")
INFO = ServicePortInfo(name=DNS, cluster_ip="10.96.0.10", port=53, protocol="UDP", node_port=30053,
                       external_ips=("192.0.2.10",))


def test_removed_udp_endpoint_clears_every_service_ip_and_the_node_port():
    ep = EndpointInfo(ip="10.244.1.12", port=53)
    plan = plan_cleanup({DNS: INFO}, UpdateServiceMapResult(),
                        UpdateEndpointsMapResult(deleted_udp_endpoints=[(DNS, ep)]))
    assert plan == [
        ["conntrack", "-D", "-p", "udp", "--dport", "30053", "--dst-nat", "10.244.1.12"],
        ["conntrack", "-D", "--orig-dst", "10.96.0.10", "--dst-nat", "10.244.1.12", "-p", "udp"],
        ["conntrack", "-D", "--orig-dst", "192.0.2.10", "--dst-nat", "10.244.1.12", "-p", "udp"],
    ]


def test_newly_active_udp_service_clears_entries_to_its_ips_and_node_port():
    plan = plan_cleanup({DNS: INFO}, UpdateServiceMapResult(),
                        UpdateEndpointsMapResult(newly_active_udp_services=[DNS]))
    assert ["conntrack", "-D", "--orig-dst", "10.96.0.10", "-p", "udp"] in plan
    assert ["conntrack", "-D", "-p", "udp", "--dport", "30053"] in plan


def test_endpoint_of_a_deleted_service_is_covered_by_the_cluster_ip_cleanup():
    ep = EndpointInfo(ip="10.244.1.12", port=53)
    plan = plan_cleanup({}, UpdateServiceMapResult(deleted_udp_cluster_ips={"10.96.0.10"}),
                        UpdateEndpointsMapResult(deleted_udp_endpoints=[(DNS, ep)]))
    assert plan == [["conntrack", "-D", "--orig-dst", "10.96.0.10", "-p", "udp"]]


def test_conntrack_nothing_to_delete_is_not_a_failure():
    answers = iter([Result(1, "", "0 flow entries have been deleted."), Result(1, "", "Operation not permitted")])
    assert Conntrack(lambda argv, input=None: next(answers)).run([["conntrack"], ["conntrack"]]) == 1


def test_ensure_jumps_checks_then_inserts_only_missing_rules():
    calls = []

    def fake(argv, input=None):
        calls.append(argv)
        if "-C" in argv:
            return Result(0 if "PREROUTING" in argv else 1)
        if "-N" in argv:
            return Result(1, "", "iptables: Chain already exists.")
        return Result(0)

    ipt = Iptables("legacy", fake)
    rules = jump_rules()
    added = ipt.ensure_jumps(rules)
    assert added == len(rules) - sum(r.src_chain == "PREROUTING" for r in rules)
    inserts = [a for a in calls if "-I" in a]
    assert all(a[0] == "iptables-legacy" for a in inserts)
    assert not any("PREROUTING" in a for a in inserts)


def test_add_jumps_puts_insert_lines_before_the_tables_commit():
    from netemu.agent.proxy.xtables.apply import add_jumps

    text = "*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n"
    rules = [r for r in jump_rules() if r.dst_chain in ("KUBE-SERVICES", "KUBE-FIREWALL")]
    out, leftovers = add_jumps(text, rules)
    assert {r.dst_chain for r in leftovers} == {"KUBE-FIREWALL"}     # not declared: -N/-I path
    nat = out.split("*nat")[1]
    assert '-I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\nCOMMIT' in nat
    assert '-I OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" ' \
           '-j KUBE-SERVICES' in out.split("*nat")[0]


def test_missing_jumps_reads_each_builtin_chain_once():
    listed = ('-P PREROUTING ACCEPT\n'
              '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n')
    calls = []

    def fake(argv, input=None):
        calls.append(argv)
        return Result(0, listed if argv[-1] == "PREROUTING" else "")

    rules = jump_rules()
    missing = Iptables("nft", fake).missing_jumps(rules)
    assert len(calls) == len({(r.table, r.src_chain) for r in rules})
    assert [r for r in rules if r not in missing] == [r for r in rules if r.src_chain == "PREROUTING"]


def test_deleted_udp_node_port_clears_flows_to_it():
    plan = plan_cleanup({}, UpdateServiceMapResult(deleted_udp_node_ports={30053}), UpdateEndpointsMapResult())
    assert plan == [["conntrack", "-D", "-p", "udp", "--dport", "30053"]]
