"""Pod IPAM: next free address (skipping network, gateway, broadcast), persistence, release."""

from __future__ import annotations

import ipaddress
import json
import os

import pytest

from netemu.agent.runtime.ipam import IPAMExhausted, PodIPAM, next_free, recorded


def test_first_address_skips_network_and_gateway():
    assert next_free(ipaddress.ip_network("10.244.1.0/24"), set(), None) == "10.244.1.2"


def test_round_robin_after_last_and_wraps_past_broadcast():
    net = ipaddress.ip_network("10.244.1.0/29")  # .2 .. .6 usable
    assert next_free(net, {"10.244.1.2"}, "10.244.1.5") == "10.244.1.6"
    assert next_free(net, {"10.244.1.2"}, "10.244.1.6") == "10.244.1.3"  # wrapped, .7 is broadcast
    with pytest.raises(IPAMExhausted):
        next_free(net, {f"10.244.1.{i}" for i in range(2, 7)}, None)


def test_allocations_survive_a_restart_and_are_idempotent(tmp_path):
    path = str(tmp_path / "ipam")
    ipam = PodIPAM("10.244.3.0/24", path)
    a = ipam.allocate("uid-a", netns="nep-a", pod="default/a")
    b = ipam.allocate("uid-b")
    assert (a, b) == ("10.244.3.2", "10.244.3.3")
    assert ipam.allocate("uid-a") == a
    again = PodIPAM("10.244.3.0/24", path)  # the agent restarted
    assert again.ip_of("uid-a") == a and again.allocations[a].pod == "default/a"
    assert again.allocate("uid-c") == "10.244.3.4"
    assert again.release("uid-a") == a and again.release("uid-a") is None
    # a just-released address is not handed out again at once (stale conntrack)
    assert again.allocate("uid-d") == "10.244.3.5"
    assert set(os.listdir(path)) == {"10.244.3.3", "10.244.3.4", "10.244.3.5"}
    assert json.load(open(os.path.join(path, "10.244.3.5")))["uid"] == "uid-d"
    summary = json.load(open(path + ".json"))  # what cleanup tools read
    assert set(summary["allocations"]) == set(os.listdir(path)) and summary["last"] == "10.244.3.5"
    assert summary["allocations"]["10.244.3.3"]["uid"] == "uid-b"
    assert set(recorded(path)) == set(os.listdir(path))


def test_restart_continues_after_the_newest_and_skips_junk(tmp_path):
    path = str(tmp_path / "ipam")
    ipam = PodIPAM("10.244.3.0/24", path)
    for uid in ("a", "b", "c"):
        ipam.allocate(uid)
    ipam.release("a")
    open(os.path.join(path, "10.244.3.9"), "w").write("{half")  # a crash mid-write
    open(os.path.join(path, "notes.txt"), "w").write("x")
    os.utime(os.path.join(path, "10.244.3.3"), ns=(1, 1))      # b is older than c
    again = PodIPAM("10.244.3.0/24", path)
    assert again.last == "10.244.3.4" and set(again.allocations) == {"10.244.3.3", "10.244.3.4"}
    assert again.allocate("d") == "10.244.3.5"
    assert not os.path.exists(os.path.join(path, "10.244.3.9"))  # the crash leftover is freed


def test_a_new_pod_cidr_drops_stale_entries(tmp_path):
    path = str(tmp_path / "ipam")
    PodIPAM("10.244.3.0/24", path).allocate("uid-a")
    moved = PodIPAM("10.244.9.0/24", path)
    assert moved.allocations == {} and moved.allocate("uid-a") == "10.244.9.2"
    assert os.listdir(path) == ["10.244.9.2"]
    assert list(json.load(open(path + ".json"))["allocations"]) == ["10.244.9.2"]
    moved.release("uid-a")
    assert json.load(open(path + ".json"))["allocations"] == {}  # shorter rewrite: no tail left
