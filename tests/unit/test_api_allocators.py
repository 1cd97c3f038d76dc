"""ClusterIP and NodePort allocation: requests, reserved addresses, exhaustion, rollback, rebuild."""

import copy
import ipaddress
import random

import pytest

from netemu.api import errors
from netemu.api.allocators import (AlreadyAllocated, IPAllocator, NotInRange, PortAllocator,
                                   RangeFull, ServiceAllocations)


def svc(name="web", **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}], **spec}}


def cause(exc):
    c = exc.value.details["causes"][0]
    return c["field"], c["message"]


def test_random_ips_are_in_range_and_never_reserved_network_or_broadcast():
    alloc = IPAllocator("10.96.0.0/28", rng=random.Random(1))  # 14 usable, .1 reserved (.10 too)
    got = {alloc.allocate_next() for _ in range(12)}
    assert len(got) == 12
    assert "10.96.0.1" not in got and "10.96.0.10" not in got
    assert "10.96.0.0" not in got and "10.96.0.15" not in got
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/28") for ip in got)
    with pytest.raises(RangeFull):
        alloc.allocate_next()
    alloc.allocate("10.96.0.1")  # a request by value is honoured
    alloc.allocate("10.96.0.10")
    assert alloc.free() == 0


def test_requested_ip_taken_or_outside_is_refused():
    alloc = IPAllocator()
    alloc.allocate("10.96.0.1")
    with pytest.raises(AlreadyAllocated, match="provided IP is already allocated"):
        alloc.allocate("10.96.0.1")
    for bad in ("10.95.255.255", "10.112.0.0", "10.96.0.0", "10.111.255.255", "nonsense"):
        with pytest.raises(NotInRange):
            alloc.allocate(bad)
    alloc.release("10.96.0.1")
    alloc.allocate("10.96.0.1")


def test_dynamic_allocation_prefers_the_upper_band():
    alloc = IPAllocator("10.96.0.0/12", rng=random.Random(7))
    band = ipaddress.ip_address("10.96.0.1") + 256
    assert all(ipaddress.ip_address(alloc.allocate_next()) >= band for _ in range(200))


def test_node_ports_range_and_exhaustion():
    ports = PortAllocator(30000, 30019, rng=random.Random(3))
    got = {ports.allocate_next() for _ in range(20)}
    assert got == set(range(30000, 30020))
    with pytest.raises(RangeFull):
        ports.allocate_next()
    with pytest.raises(NotInRange, match="30000-30019"):
        ports.allocate(80)
    ports.release(30005)
    assert ports.allocate_next() == 30005


def test_service_gets_ip_and_kubernetes_gets_its_request():
    a = ServiceAllocations()
    k = svc("kubernetes", clusterIP="10.96.0.1", clusterIPs=["10.96.0.1"])
    a.allocate(k)
    s = svc()
    a.allocate(s)
    ip = s["spec"]["clusterIP"]
    assert s["spec"]["clusterIPs"] == [ip] and ip not in ("10.96.0.1", "10.96.0.10")
    with pytest.raises(errors.Invalid) as exc:
        a.allocate(svc("dup", clusterIP=ip, clusterIPs=[ip]))
    assert cause(exc) == ("spec.clusterIPs",
                          f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: provided IP is already allocated')
    assert exc.value.code == 422


def test_headless_and_external_name_get_nothing():
    a = ServiceAllocations()
    before = a.ips.free()
    headless = svc(clusterIP="None", clusterIPs=["None"])
    a.allocate(headless)
    ext = {"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "x.example"}}
    a.allocate(ext)
    assert a.ips.free() == before and "clusterIP" not in ext["spec"]


def test_node_ports_requested_shared_and_refused():
    a = ServiceAllocations()
    s = svc(type="NodePort", ports=[{"port": 53, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"},
                                    {"port": 8080, "protocol": "TCP", "nodePort": 30080}])
    a.allocate(s)
    p = s["spec"]["ports"]
    assert p[0]["nodePort"] == p[1]["nodePort"] and 30000 <= p[0]["nodePort"] <= 32767
    assert p[2]["nodePort"] == 30080
    with pytest.raises(errors.Invalid) as exc:
        a.allocate(svc("b", type="NodePort", ports=[{"port": 1, "nodePort": 30080}]))
    assert cause(exc) == ("spec.ports[0].nodePort", "Invalid value: 30080: provided port is already allocated")
    with pytest.raises(errors.Invalid) as exc:
        a.allocate(svc("c", type="NodePort", ports=[{"port": 1, "nodePort": 80}]))
    assert "provided port is not in the valid range. The range of valid ports is 30000-32767" in cause(exc)[1]


def test_failed_allocation_rolls_back_everything_it_took():
    a = ServiceAllocations()
    a.allocate(svc("a", type="NodePort", ports=[{"port": 1, "nodePort": 30001}]))
    ips, ports = a.ips.free(), a.ports.free()
    bad = svc("b", type="NodePort", ports=[{"port": 1}, {"port": 2, "nodePort": 30001}])
    with pytest.raises(errors.Invalid):
        a.allocate(bad)
    assert (a.ips.free(), a.ports.free()) == (ips, ports)


def test_undo_after_failed_store_write_and_release_on_delete():
    a = ServiceAllocations()
    ips, ports = a.ips.free(), a.ports.free()
    s = svc(type="LoadBalancer", externalTrafficPolicy="Local")
    undo = a.allocate(s)
    assert s["spec"]["healthCheckNodePort"] and s["spec"]["ports"][0]["nodePort"]
    assert (a.ips.free(), a.ports.free()) == (ips - 1, ports - 2)
    undo()
    assert (a.ips.free(), a.ports.free()) == (ips, ports)
    a.allocate(s)
    a.release(s)
    assert (a.ips.free(), a.ports.free()) == (ips, ports)


def test_lb_without_node_port_allocation_takes_only_requested():
    a = ServiceAllocations()
    s = svc(type="LoadBalancer", allocateLoadBalancerNodePorts=False,
            ports=[{"port": 1}, {"port": 2, "nodePort": 31000}])
    a.allocate(s)
    assert "nodePort" not in s["spec"]["ports"][0] and a.ports.has(31000)


def test_update_type_change_releases_on_commit_and_keeps_on_failure():
    a = ServiceAllocations()
    old = svc(type="NodePort")
    a.allocate(old)
    node_port = old["spec"]["ports"][0]["nodePort"]
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    del new["spec"]["ports"][0]["nodePort"]
    commit = a.update(old, new)
    commit(True)
    assert not a.ports.has(node_port) and a.ips.has(old["spec"]["clusterIP"])
    # back to NodePort: a new port is taken, and a failed write gives it back
    again = copy.deepcopy(new)
    again["spec"]["type"] = "NodePort"
    commit = a.update(new, again)
    taken = again["spec"]["ports"][0]["nodePort"]
    assert a.ports.has(taken)
    commit(False)
    assert not a.ports.has(taken)


def test_update_from_external_name_allocates_and_to_external_name_releases():
    a = ServiceAllocations()
    ext = {"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "x.example"}}
    a.allocate(ext)
    cip = svc("e")
    a.update(ext, cip)(True)
    ip = cip["spec"]["clusterIP"]
    assert a.ips.has(ip)
    a.update(cip, ext)(True)
    assert not a.ips.has(ip)


def test_rebuild_restores_allocations_and_reports_conflicts():
    a = ServiceAllocations()
    s1 = svc("a", type="NodePort")
    s2 = svc("b")
    a.allocate(s1)
    a.allocate(s2)
    fresh = ServiceAllocations()
    assert fresh.rebuild([s1, s2]) == []
    assert fresh.ips.has(s1["spec"]["clusterIP"]) and fresh.ports.has(s1["spec"]["ports"][0]["nodePort"])
    with pytest.raises(errors.Invalid):
        fresh.allocate(svc("c", clusterIP=s2["spec"]["clusterIP"]))
    clash = copy.deepcopy(s2)
    clash["metadata"]["name"] = "clash"
    problems = ServiceAllocations().rebuild([s2, clash])
    assert len(problems) == 1 and "default/clash" in problems[0]


def test_exhaustion_of_a_small_service_range_is_reported():
    a = ServiceAllocations("10.96.0.0/29", rng=random.Random(2))  # 6 usable, 10.96.0.1 reserved
    for i in range(5):
        a.allocate(svc(f"s{i}"))
    with pytest.raises(errors.InternalError, match="range is full"):
        a.allocate(svc("last"))
    a.allocate(svc("kubernetes", clusterIP="10.96.0.1"))
