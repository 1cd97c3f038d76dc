"""The emulated cloud, pure parts: the edge's addressing, the provider LB's listeners and nft
table, its health checks' state machine, the cloud node-lifecycle decision, planning a node
added to a running cluster, and cleanup finding the edge by name."""

import asyncio

import pytest

from netemu.emulator import cleanup, nodeops
from netemu.emulator.cloud import lbplan
from netemu.emulator.cloud.edge import EdgeError, client_ips, plan_edge
from netemu.emulator.cloud.health import HealthChecker, HealthSettings, TargetState
from netemu.emulator.cloud.nodes import deleting_event, to_delete
from netemu.emulator.plan import PlanError, make_plan


def node(name, ip, ready=True, labels=None):
    return {"metadata": {"name": name, "labels": labels or {}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def lb_service(name, ip="172.31.5.200", local=False, ranges=None, ports=((80, 30080, "TCP"),), hc=31000):
    spec = {"type": "LoadBalancer", "ports": [{"port": p, "nodePort": np, "protocol": pr} for p, np, pr in ports]}
    if local:
        spec.update(externalTrafficPolicy="Local", healthCheckNodePort=hc)
    if ranges:
        spec["loadBalancerSourceRanges"] = ranges
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}


NODES = [node("worker", "172.31.5.3"), node("worker2", "172.31.5.4"),
         node("edge-excluded", "172.31.5.9", labels={lbplan.EXCLUDE_LABEL: ""})]


def test_edge_addresses_sit_above_the_lb_pool_and_clients_from_ten():
    edge = plan_edge("ab12", "172.31.5.0/24", "nab12s1")
    assert (edge.netns, edge.bridge, edge.node_link, edge.internet_link) == ("nel-ab12", "nab12i", "nab12l0", "nab12l1")
    assert edge.node_ip == "172.31.5.254" and edge.gateway == "203.0.113.1"
    assert client_ips(edge)[:2] == ["203.0.113.10", "203.0.113.11"]
    with pytest.raises(EdgeError):
        plan_edge("ab12", "203.0.113.0/24", "s")


def test_listeners_target_healthy_nodes_and_fail_open():
    svc = lb_service("web", local=True)
    healthy = lambda key, target, port: target.node == "worker2" and port == 31000   # noqa: E731
    (lis,) = lbplan.listeners([svc], NODES, healthy)
    assert [t.node for t in lis.targets] == ["worker2"] and lis.local and lis.health_port == 31000
    (open_,) = lbplan.listeners([svc], NODES, lambda *a: False)
    assert [t.node for t in open_.targets] == ["worker", "worker2"]     # none healthy: all (not the excluded one)
    (cluster,) = lbplan.listeners([lb_service("c")], NODES, lambda *a: True)
    assert cluster.health_port == 30080 and not cluster.local


def test_source_ranges_from_the_field_or_the_annotation():
    assert lbplan.source_ranges(lb_service("a", ranges=["10.0.0.0/8", "192.168.0.0/16"])) == ("10.0.0.0/8", "192.168.0.0/16")
    svc = lb_service("b")
    svc["metadata"]["annotations"] = {lbplan.RANGES_ANNOTATION: "203.0.113.10/32, 198.51.100.0/24"}
    assert lbplan.source_ranges(svc) == ("198.51.100.0/24", "203.0.113.10/32")
    assert lbplan.source_ranges(lb_service("c", ranges=["0.0.0.0/0"])) == ()


def test_render_is_one_table_replaced_atomically():
    svcs = [lb_service("web", ranges=["203.0.113.10/32"], ports=((80, 30080, "TCP"), (53, 30053, "UDP"))),
            {"metadata": {"name": "plain", "namespace": "default"}, "spec": {"type": "ClusterIP"}}]
    text = lbplan.render(lbplan.listeners(svcs, NODES, lambda *a: True))
    lines = text.splitlines()
    assert lines[:3] == ["table ip netemu-lb {}", "delete table ip netemu-lb", "table ip netemu-lb {"]
    assert "ip daddr 172.31.5.200 tcp dport 80 ip saddr != { 203.0.113.10/32 } counter drop" in text
    assert "ip daddr 172.31.5.200 udp dport 53 ip saddr != { 203.0.113.10/32 } counter drop" in text
    assert "map { 0 : 172.31.5.3, 1 : 172.31.5.4 } : 30080" in text and ": 30053" in text
    assert text.count("jump lb-") == 2 and "plain" not in text


def test_health_state_needs_rise_passes_and_fall_failures():
    s, st = HealthSettings(rise=2, fall=2), TargetState()
    assert not st.record(True, s) and not st.healthy
    assert st.record(True, s) and st.healthy
    assert not st.record(False, s) and st.healthy
    assert st.record(False, s) and not st.healthy


def test_health_checker_probes_and_forgets(monkeypatch):
    checker = HealthChecker(None, HealthSettings(rise=1, fall=1))
    answers = {("10.0.0.1", 31000): True, ("10.0.0.2", 31000): False}

    async def probe(ip, port, http):
        return answers[(ip, port)]
    monkeypatch.setattr(checker, "_probe", probe)
    asyncio.run(checker.check({("s", "10.0.0.1", 31000): True, ("s", "10.0.0.2", 31000): True}))
    assert checker.healthy("s", "10.0.0.1", 31000) and not checker.healthy("s", "10.0.0.2", 31000)
    asyncio.run(checker.check({}))
    assert checker.states == {} and checker.healthy("s", "10.0.0.9", None)


def test_cloud_deletes_not_ready_nodes_without_an_instance_only():
    nodes = [node("a", "1.1.1.1"), node("b", "1.1.1.2", ready=False), node("c", "1.1.1.3", ready=False)]
    assert to_delete(nodes, {"a", "c"}) == ["b"]
    assert to_delete(nodes, {"a"}) == ["b", "c"]
    assert to_delete([node("a", "1.1.1.1")], set()) == []              # Ready: kept until it is not
    assert deleting_event(nodes[1])["message"] == "Deleting node b because it does not exist in the cloud provider"


class Topo:
    def __init__(self, hosts, links, switches=("s1",)):
        self._hosts, self._links, self._switches = hosts, links, switches

    def hosts(self, sort=False):
        return list(self._hosts)

    def switches(self, sort=False):
        return list(self._switches)

    def nodeInfo(self, name):
        return self._hosts.get(name, {})

    def links(self, sort=False, withKeys=False, withInfo=False):
        return self._links


def small_plan(tmp_path):
    topo = Topo({"control-plane": {"role": "control-plane"}, "worker": {}}, [("control-plane", "s1"), ("worker", "s1")])
    return make_plan(topo, str(tmp_path), "172.31.7.0/24")


def test_a_new_node_gets_the_next_host_and_a_free_address(tmp_path):
    plan = small_plan(tmp_path)
    plan2, new = nodeops.plan_node(plan, "worker3", zone="zone-b", labels={"disk": "ssd"}, taints=["dedicated=db:NoSchedule"])
    assert new.mn_name.endswith("h2") and new.ip == "172.31.7.4" and new.netns.endswith("-worker3")
    assert new.labels == {"disk": "ssd", "topology.kubernetes.io/zone": "zone-b", "node-role.kubernetes.io/worker": ""}
    assert new.taints == ("dedicated=db:NoSchedule",) and plan2.nodes[-1] == new
    assert nodeops.plan_node(plan2, "w4", taken={"172.31.7.5"})[1].ip == "172.31.7.6"
    with pytest.raises(PlanError, match="already exists"):
        nodeops.plan_node(plan2, "worker3")
    with pytest.raises(PlanError, match="lowercase DNS name"):
        nodeops.plan_node(plan, "Worker_3")
    with pytest.raises(PlanError, match="control plane"):
        nodeops.without_node(plan, "control-plane")
    assert [n.name for n in nodeops.without_node(plan2, "worker3")[0].nodes] == ["control-plane", "worker"]


def test_cleanup_finds_the_edge_by_name():
    machine = cleanup.Machine(netns=["nel-ab12", "nel-ffff", "nen-ab12-worker"], pod_peers={}, netns_keys={},
                              procs=[], links=["nab12i", "nab12l0", "nab12l1", "nffffi", "nab12s1"])
    plan = cleanup.plan_cleanup("ab12", "/tmp/x", None, machine, me=1)
    assert plan.node_netns == ["nel-ab12", "nen-ab12-worker"]
    assert plan.links == ["nab12i", "nab12l0", "nab12l1", "nab12s1"]


def test_the_edge_benchmark_spreads_its_backends_and_shows_the_median_round():
    from types import SimpleNamespace

    from netemu.bench.edge import median_run, objects

    kinds = {(o["kind"], o["metadata"]["name"]): o for o in objects()}
    assert {kinds[("Service", n)]["spec"]["externalTrafficPolicy"] for n in ("web-cluster", "web-local")} == {"Cluster", "Local"}
    spread = kinds[("Deployment", "web")]["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["whenUnsatisfiable"] == "DoNotSchedule"
    runs = [SimpleNamespace(throughput={"requests_per_s": v}) for v in (900, 300, 600)]
    assert median_run(runs).throughput["requests_per_s"] == 600


def test_lb_health_check_settings_parse_with_clear_errors():
    assert HealthSettings.parse("interval=30,timeout=10,rise=3,fall=3") == HealthSettings(30.0, 10.0, 3, 3)
    assert HealthSettings.parse("fall=1") == HealthSettings(fall=1)
    for bad, words in (("interval", "give interval=S"), ("speed=3", "give interval=S"), ("rise=two", "whole number"),
                       ("interval=x", "number of seconds"), ("timeout=5,interval=2", "timeout <= interval"),
                       ("interval=0", "0 < timeout"), ("rise=0", "each 1 to 10"), ("fall=11", "each 1 to 10")):
        with pytest.raises(ValueError, match=words):
            HealthSettings.parse(bad)


def test_up_takes_lb_health_check_with_edge_only_and_hands_it_to_the_supervisor():
    from netemu.cli import cluster_cmd
    from netemu.cli.main import UsageError, build_parser

    def parse(*words):
        return build_parser(cluster_cmd.COMMANDS).parse_args(["up", *words])
    args = parse("--edge", "--lb-health-check", "interval=30,timeout=10")
    assert cluster_cmd.lb_health_settings(args) == HealthSettings(interval=30.0, timeout=10.0)
    argv = cluster_cmd._argv_for_supervisor(args)
    assert argv[argv.index("--lb-health-check") + 1] == "interval=30,timeout=10"
    assert cluster_cmd.lb_health_settings(parse("--edge")) == HealthSettings()
    with pytest.raises(UsageError, match="goes with --edge"):
        cluster_cmd.lb_health_settings(parse("--lb-health-check", "rise=3"))
    with pytest.raises(UsageError, match="--lb-health-check: 'rise=0'|each 1 to 10"):
        cluster_cmd.lb_health_settings(parse("--edge", "--lb-health-check", "rise=0"))


def test_the_lb_reports_what_the_kernel_runs_after_each_round_and_keeps_it_when_nft_fails():
    from netemu.emulator.cloud.lb import LoadBalancers

    applied, reports, fail = [], [], []

    def apply(netns, text):
        if fail:
            raise RuntimeError("nft -f in nel-ab12: Error: boom")
        applied.append((netns, text))
    edge = plan_edge("ab12", "172.31.5.0/24", "nab12s1")
    lbs = LoadBalancers(None, edge, HealthSettings(rise=1, fall=1), apply=apply, report=reports.append)
    lbs.services.cache = {("default", "web"): lb_service("web", local=True)}
    lbs.nodes.cache = {("", n["metadata"]["name"]): n for n in NODES}
    lbs.sync()                                                     # no verdicts yet: fail open, all undecided
    doc = reports[-1]
    assert doc["listeners"][0]["fail_open"] and doc["listeners"][0]["targets"] == ["worker", "worker2"]
    assert doc["nodes"] == ["worker", "worker2"] and doc["error"] is None and len(applied) == 1
    asyncio.run(lbs.health.check({}))                               # (nothing probed)
    lbs.health.states[("default/web", "172.31.5.4", 31000)] = TargetState(True, 1, 0, True)
    lbs.health.states[("default/web", "172.31.5.3", 31000)] = TargetState(False, 0, 1, False)
    lbs.sync()
    doc = reports[-1]
    assert doc["listeners"][0]["targets"] == ["worker2"] and not doc["listeners"][0]["fail_open"]
    assert doc["undecided"] == ["default/web 172.31.5.3:31000"] and doc["time"] >= reports[0]["time"]
    fail.append(True)
    lbs.health.states[("default/web", "172.31.5.3", 31000)] = TargetState(True, 1, 0, True)
    lbs.sync()                                                     # nft refused: the kernel still runs the last table
    assert reports[-1]["error"] == "nft -f in nel-ab12: Error: boom"
    assert reports[-1]["listeners"][0]["targets"] == ["worker2"] and reports[-1]["undecided"] == []
    fail.clear()
    lbs.sync()
    assert reports[-1]["error"] is None and reports[-1]["listeners"][0]["targets"] == ["worker", "worker2"]


def test_a_target_is_decided_at_its_first_verdict_either_way():
    s = HealthSettings(rise=2, fall=2)
    up, down = TargetState(), TargetState()
    up.record(True, s)
    down.record(False, s)
    assert not up.decided and not down.decided
    up.record(True, s)
    down.record(False, s)
    assert up.decided and up.healthy and down.decided and not down.healthy


def test_an_experiment_waits_until_the_lb_sends_where_the_endpoints_are():
    from netemu.experiments.settle import lb_mismatch

    def slice_on(*nodes, ready=True):
        return {"metadata": {"labels": {"kubernetes.io/service-name": "web"}},
                "endpoints": [{"nodeName": n, "conditions": {"ready": ready}} for n in nodes]}

    def report(targets, time=10.0, undecided=(), fail_open=False):
        return {"time": time, "nodes": ["worker", "worker2"], "undecided": list(undecided),
                "listeners": [{"service": "default/web", "ip": "172.31.5.200", "targets": targets, "fail_open": fail_open}]}
    local, cluster = lb_service("web", local=True), lb_service("web")
    assert lb_mismatch(local, [slice_on("worker2")], report(["worker2"]), since=5.0) is None
    assert "sends default/web to ['worker', 'worker2'], not ['worker2']" in \
        lb_mismatch(local, [slice_on("worker2")], report(["worker", "worker2"]), since=5.0)
    assert "not reported since" in lb_mismatch(local, [slice_on("worker2")], report(["worker2"], time=4.0), since=5.0)
    assert "no verdict yet" in lb_mismatch(local, [slice_on("worker2")],
                                           report(["worker2"], undecided=["default/web 172.31.5.3:31000"]), 5.0)
    # no ready endpoint anywhere: the LB fails open to every node, which is settled
    assert lb_mismatch(local, [slice_on("worker2", ready=False)], report(["worker", "worker2"], fail_open=True), 5.0) is None
    assert lb_mismatch(cluster, [slice_on("worker2")], report(["worker", "worker2"]), 5.0) is None
    assert "no listener for default/web" in lb_mismatch(cluster, [], {**report([]), "listeners": []}, 5.0)
    assert lb_mismatch(cluster, [], None, 5.0) == "the provider load balancer has not reported since the change"
    no_ip = lb_service("web")
    no_ip["status"] = {}
    assert lb_mismatch(no_ip, [], None, 5.0) is None                 # no LB address yet: nothing to wait for


def test_status_shows_where_each_lb_listener_sends_and_why():
    from netemu.emulator.status import lb_rows

    healthy = lambda key, target, port: target.node == "worker2"        # noqa: E731
    lis = lbplan.listeners([lb_service("web", local=True, ranges=["203.0.113.10/32"]), lb_service("c", ip="172.31.5.201")],
                           NODES, healthy)
    doc = lbplan.status_doc(lis, lbplan.node_targets(NODES), [], 1.0)
    assert lb_rows(doc) == [
        ["default/web", "172.31.5.200:80/tcp", "30080", "worker2", "healthCheckNodePort 31000", "203.0.113.10/32"],
        ["default/c", "172.31.5.201:80/tcp", "30080", "worker2", "TCP to the NodePort 30080", "any"]]
    doc = lbplan.status_doc(lbplan.listeners([lb_service("c")], NODES, lambda *a: False), [], [], 1.0)
    assert lb_rows(doc)[0][3:5] == ["worker, worker2", "TCP to the NodePort 30080, none passing: fail open"]
    assert lb_rows(None) == []
