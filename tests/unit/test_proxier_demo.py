"""Pure parts of `netemu proxy demo`: the objects it feeds the proxier and the chain excerpt it prints."""

from __future__ import annotations

from types import SimpleNamespace

from netemu.agent.proxy.model import endpoints_by_service_port, service_ports
from netemu.cli.proxy_demo_cmd import CLUSTER_IP, chain_excerpt, demo_service, demo_slice

SAVE = """*nat
:KUBE-SVC-AAA - [0:0]
:KUBE-SVC-BBB - [0:0]
-A KUBE-SERVICES -d 10.96.0.80/32 -j KUBE-SVC-AAA
-A KUBE-SVC-AAA -m statistic --mode random --probability 0.5 -j KUBE-SEP-1
-A KUBE-SVC-BBB -j KUBE-SEP-2
COMMIT
"""


def test_chain_excerpt_keeps_only_the_asked_chains():
    assert chain_excerpt(SAVE, {"KUBE-SVC-AAA"}) == [
        ":KUBE-SVC-AAA - [0:0]",
        "-A KUBE-SVC-AAA -m statistic --mode random --probability 0.5 -j KUBE-SEP-1",
    ]


def test_demo_objects_are_what_the_model_reads():
    node = SimpleNamespace(name="node")
    pods = [SimpleNamespace(ip=f"10.244.1.{10 + i}", name=f"web-{i}", node=node) for i in range(3)]
    ports = service_ports(demo_service())
    assert [p.cluster_ip for p in ports.values()] == [CLUSTER_IP]
    eps = endpoints_by_service_port([demo_slice(pods)], "node")
    assert list(eps) == list(ports)
    assert [e.ip for e in next(iter(eps.values()))] == ["10.244.1.10", "10.244.1.11", "10.244.1.12"]
