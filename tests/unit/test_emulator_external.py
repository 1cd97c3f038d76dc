"""External hosts' names and addresses (pure): never a node's, the root's or an LB address."""

from __future__ import annotations

import ipaddress

import pytest

from netemu.emulator.external import ExternalError, candidate_ips, check_name, external_link, external_netns, pick_ip
from netemu.emulator.plan import lb_pool


def test_addresses_sit_below_the_lb_pool():
    first = candidate_ips("172.31.40.0/24")[:3]
    assert first == ["172.31.40.199", "172.31.40.198", "172.31.40.197"]
    low, _, high = lb_pool("172.31.40.0/24").partition("-")
    assert all(ipaddress.ip_address(ip) < ipaddress.ip_address(low) for ip in candidate_ips("172.31.40.0/24"))
    assert candidate_ips("172.18.0.0/16")[0] == "172.18.255.199"


def test_pick_skips_what_is_taken():
    assert pick_ip("172.31.40.0/24", {"172.31.40.199", "172.31.40.2"}) == "172.31.40.198"
    with pytest.raises(ExternalError, match="no free address"):
        pick_ip("172.31.40.0/24", set(candidate_ips("172.31.40.0/24")))


def test_names():
    assert external_netns("ab12", "external") == "nex-ab12-external"
    link = external_link("ab12", "external")
    assert link.startswith("nab12x") and len(link) <= 15 and link != external_link("ab12", "edge")
    assert check_name("edge-1") == "edge-1"
    for bad in ("", "Edge", "a" * 21, "-x", "x_y"):
        with pytest.raises(ExternalError):
            check_name(bad)
