"""The experiments' `link` event with netem (delay, loss) in the full kernel: netemu.emulator.shaping
puts the qdisc on both ends of a node's link, the RTT grows by twice the delay, and `reset`
takes it away. (The host has no sch_netem: there the event is refused before anything starts.)
"""

from __future__ import annotations

import subprocess

import pytest

from netemu.emulator.shaping import Shape, shape
from tests.labvm._lab import TAG, median, netns, parse_ping, veth_into

pytestmark = [pytest.mark.labvm, pytest.mark.timeout(300)]
DELAY = 0.04


def rtt_ms(address: str) -> float:
    out = subprocess.run(["ping", "-n", "-c", "5", "-i", "0.2", address], capture_output=True, text=True).stdout
    return median(parse_ping(out).rtts_ms)


def test_netem_delay_on_both_ends_then_reset():
    with netns(f"neshp{TAG}") as ns:
        host_if = f"vshp{TAG}"
        veth_into(ns, host_if, "172.31.251.1/24", "172.31.251.2/24", "172.31.251.1")
        try:
            plain = rtt_ms("172.31.251.2")
            devs = shape(ns, "172.31.251.2", Shape(delay=DELAY))
            assert devs == ["eth0", host_if]
            delayed = rtt_ms("172.31.251.2")
            assert delayed - plain > 2 * DELAY * 1000 * 0.8, (plain, delayed)
            shape(ns, "172.31.251.2", Shape())
            assert rtt_ms("172.31.251.2") < plain + 10
            assert "netem" not in subprocess.run(["tc", "qdisc", "show", "dev", host_if], capture_output=True,
                                                 text=True).stdout
        finally:
            subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
