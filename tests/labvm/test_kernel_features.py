"""The lab VM's promise: its kernel has every feature netemu uses, and netemu sees them."""

from __future__ import annotations

import socket

import pytest

from netemu import features
from tests.labvm._lab import TAG

pytestmark = pytest.mark.labvm


def test_detect_finds_every_feature_in_the_lab_kernel():
    verdicts = features.detect()
    missing = {n: v.evidence for n, v in verdicts.items() if v.available is not True}
    assert not missing
    wants = [*features.NEEDS]
    assert features.require(wants, verdicts) == []


def test_dummy_interface_with_an_address_in_a_scratch_namespace():
    from pyroute2 import NetNS, netns

    name = f"lvdm-{TAG}"
    netns.create(name)
    try:
        with NetNS(name) as ns:
            ns.link("add", ifname="kube-ipvs0", kind="dummy")
            index = ns.link_lookup(ifname="kube-ipvs0")[0]
            ns.addr("add", index=index, address="10.96.0.1", prefixlen=32)
            ns.link("set", index=index, state="up")
            link = ns.get_links(index)[0]
            assert link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "dummy"
            addrs = [a.get_attr("IFA_ADDRESS") for a in ns.get_addr(index=index, family=socket.AF_INET)]
            assert addrs == ["10.96.0.1"]
    finally:
        netns.remove(name)
