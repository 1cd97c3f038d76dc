"""netemu.features.detect on this machine's real kernel (root: it probes in a scratch netns).

Nothing is hard-coded about this machine: every verdict is checked against evidence found a
different way (the kernel's build config, or pyroute2 creating the object itself), so the test
holds on this CI host (no ip_vs, openvswitch, netem, dummy) and in the lab VM (all of them) alike.
"""

from __future__ import annotations

import os

import pytest

from netemu import features

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def verdicts():
    return features.detect()


def test_detection_cleans_up_its_scratch_namespace(verdicts):
    leftovers = [n for n in os.listdir("/run/netns") if n.startswith("nfeat")] if os.path.isdir("/run/netns") else []
    assert f"nfeat{os.getpid()}" not in leftovers


def test_every_feature_gets_a_verdict_with_evidence(verdicts):
    assert set(verdicts) == set(features.FEATURES)
    for verdict in verdicts.values():
        assert verdict.evidence


def test_verdicts_agree_with_the_kernel_build_config(verdicts):
    config = features.read_kernel_config()
    if config is None:
        pytest.skip("no /proc/config.gz or /boot/config-RELEASE for this kernel")
    for name, feature in features.FEATURES.items():
        value = config.get(feature.config, "n")
        if value == "y":
            assert verdicts[name].available is True, (name, verdicts[name])
        elif value == "n":
            assert verdicts[name].available is False, (name, verdicts[name])


def test_dummy_verdict_matches_creating_one_with_pyroute2(verdicts):
    from pyroute2 import NetNS, netns
    from pyroute2.netlink.exceptions import NetlinkError

    name = f"nftd{os.getpid()}"
    netns.create(name)
    try:
        with NetNS(name) as ns:
            try:
                ns.link("add", ifname="nftdummy0", kind="dummy")
                created = True
            except NetlinkError:
                created = False
    finally:
        netns.remove(name)
    assert verdicts["dummy"].available is created, verdicts["dummy"]
