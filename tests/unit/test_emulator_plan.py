"""The cluster plan: names, addresses, roles, argv lists, and the errors for what cannot work."""

from __future__ import annotations

import pytest

pytest.importorskip("mininet.topo")
from mininet.topo import Topo  # noqa: E402

from netemu.emulator import plan as P  # noqa: E402
from netemu.emulator.topoload import load_topo  # noqa: E402


def test_default_topology_gets_kind_names_and_addresses_in_order():
    topo = load_topo("topologies/cluster.py:ClusterTopo,3")
    p = P.make_plan(topo, "/tmp/state-a", "172.31.5.0/24")
    assert [n.name for n in p.nodes] == ["control-plane", "worker", "worker2", "worker3"]
    assert [n.ip for n in p.nodes] == ["172.31.5.2", "172.31.5.3", "172.31.5.4", "172.31.5.5"]
    assert p.root_ip == "172.31.5.1" and p.apiserver_url == "https://172.31.5.2:6443"
    assert p.control_plane.role == "control-plane" and all(w.role == "worker" for w in p.workers)
    assert p.workers[0].netns == f"nen-{p.cluster_id}-worker"
    assert p.workers[0].capacity == {"cpu": "2", "memory": "4Gi", "pods": "110"}


def test_mininet_names_are_unique_per_state_dir_and_short_enough_for_interfaces():
    topo = load_topo("topologies/cluster.py:ClusterTopo,12")
    a = P.make_plan(topo, "/tmp/state-a", "172.31.5.0/24")
    b = P.make_plan(topo, "/tmp/state-b", "172.31.6.0/24")
    assert a.cluster_id != b.cluster_id
    assert not {n.mn_name for n in a.nodes} & {n.mn_name for n in b.nodes}
    assert set(a.switches.values()).isdisjoint(b.switches.values())
    longest = max([n.mn_name for n in a.nodes] + list(a.switches.values()), key=len)
    assert len(longest + "-eth99") <= 15
    assert P.cluster_id("/tmp/state-a") == a.cluster_id          # found again from the state dir


def test_zones_topology_labels_and_root_switch():
    topo = load_topo("topologies/zones.py:TwoZoneTopo,per_zone=1,zone_a=east")
    p = P.make_plan(topo, "/tmp/z", "172.31.7.0/24")
    labels = {n.name: n.labels.get(P.ZONE_LABEL) for n in p.workers}
    assert labels == {"a1": "east", "b1": "zone-b"}
    assert p.root_switch == p.switches["s1"]                      # the control plane's switch
    renamed = P.mininet_topo(p, topo)
    assert len(renamed.links()) == 4 and set(renamed.switches()) == set(p.switches.values())
    info = renamed.nodeInfo(p.workers[0].mn_name)
    assert info["ip"] == f"{p.workers[0].ip}/24" and "labels" not in info and "role" not in info


class Plain(Topo):
    def build(self, hosts=2):
        s = self.addSwitch("s1")
        for i in range(1, hosts + 1):
            self.addLink(self.addHost(f"h{i}"), s)


def test_any_mn_topology_works_first_host_is_control_plane():
    p = P.make_plan(Plain(hosts=3), "/tmp/p", "172.31.8.0/24")
    assert p.control_plane.name == "h1" and [w.name for w in p.workers] == ["h2", "h3"]
    assert p.workers[0].labels == {"node-role.kubernetes.io/worker": ""}


class Tainted(Topo):
    def build(self):
        s = self.addSwitch("s1")
        self.addLink(self.addHost("cp", role="control-plane"), s)
        self.addLink(self.addHost("gpu", role="gpu", cpu=8, taints=["gpu=yes:NoSchedule",
                                                                     {"key": "x", "effect": "NoExecute"}]), s)


def test_roles_taints_and_agent_argv():
    p = P.make_plan(Tainted(), "/tmp/t", "172.31.9.0/24")
    gpu = p.workers[0]
    assert gpu.role == "gpu" and gpu.taints == ("gpu=yes:NoSchedule", "x:NoExecute")
    argv = P.agent_argv(p, gpu, "/py", "/kc", extra=["--heartbeat-interval=1"])
    assert argv[:4] == ["/py", "-m", "netemu", "agent"]
    assert argv[argv.index("--node") + 1] == "gpu" and argv[argv.index("--node-ip") + 1] == "172.31.9.3"
    assert argv[argv.index("--taints") + 1] == "gpu=yes:NoSchedule,x:NoExecute"
    assert argv[argv.index("--capacity") + 1] == "cpu=8"
    assert argv[-1] == "--heartbeat-interval=1"
    api = P.apiserver_argv(p, "/py", None)
    assert api[api.index("--listen") + 1] == "172.31.9.2:6443"
    assert api[api.index("--lb-pool") + 1] == "172.31.9.200-172.31.9.250"
    assert P.nsenter(42, ["x"]) == ["nsenter", "--net=/proc/42/ns/net", "--", "x"]


@pytest.mark.parametrize("network, message", [
    ("10.244.0.0/16", "overlaps the pod CIDR"),
    ("10.96.0.0/16", "overlaps the service CIDR"),
    ("172.18.0.0/28", "/8 to /24"),
    ("fd00::/64", "IPv4"),
    ("172.18.0.1/16", "host bits"),
])
def test_bad_node_networks(network, message):
    with pytest.raises(P.PlanError, match=message):
        P.make_plan(Plain(), "/tmp/x", network)


class TwoControlPlanes(Topo):
    def build(self):
        s = self.addSwitch("s1")
        for h in ("a", "b"):
            self.addLink(self.addHost(h, role="control-plane"), s)


class Unlinked(Topo):
    def build(self):
        s = self.addSwitch("s1")
        self.addLink(self.addHost("cp"), s)
        self.addHost("lonely")


class BadName(Topo):
    def build(self):
        s = self.addSwitch("s1")
        self.addLink(self.addHost("cp"), s)
        self.addLink(self.addHost("Worker_1"), s)


class BadTaint(Topo):
    def build(self):
        s = self.addSwitch("s1")
        self.addLink(self.addHost("cp"), s)
        self.addLink(self.addHost("w", taints=["a=b:Sometimes"]), s)


@pytest.mark.parametrize("topo, message", [
    (Plain(hosts=1), "at least one worker"),
    (TwoControlPlanes(), "2 control-plane hosts"),
    (Unlinked(), "no link to a switch"),
    (BadName(), "lowercase DNS"),
    (BadTaint(), "Effect one of"),
])
def test_topologies_that_cannot_make_a_cluster(topo, message):
    with pytest.raises(P.PlanError, match=message):
        P.make_plan(topo, "/tmp/x", "172.31.10.0/24")


def test_node_network_too_small_for_the_nodes():
    with pytest.raises(P.PlanError, match="too small"):
        P.make_plan(Plain(hosts=250), "/tmp/x", "172.31.10.0/24")


def test_zone_link_shaping_is_reported_for_the_features_check():
    plain = load_topo("topologies/zones.py:TwoZoneTopo,1")
    shaped = load_topo("topologies/zones.py:TwoZoneTopo,1,cross_bw=100,cross_delay=5ms")
    assert not any(P.link_params(plain))
    assert {"bw": 100, "delay": "5ms"} in P.link_params(shaped)


def test_a_topology_can_give_each_node_its_proxy_mode():
    p = P.make_plan(load_topo("topologies/cluster.py:MixedProxyTopo"), "/tmp/m", "172.31.10.0/24")
    assert [(n.name, n.proxy_mode) for n in p.workers] == [("worker", "iptables"), ("worker2", "nftables")]
    argv = P.agent_argv(p, p.workers[1], "python", "/k", p.workers[1].proxy_mode)
    assert argv[argv.index("--proxy-mode") + 1] == "nftables"
    assert argv[argv.index("--service-cidr") + 1] == P.SERVICE_CIDR
    with pytest.raises(P.PlanError, match="host 'worker': proxy_mode 'bpf': choose one of"):
        P.make_plan(load_topo("topologies/cluster.py:MixedProxyTopo,modes=bpf"), "/tmp/m", "172.31.10.0/24")
