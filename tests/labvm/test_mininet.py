"""Mininet in the full kernel: the default OVS switch, and TCLink delay and loss actually applied.

On a kernel without sch_netem, Mininet's TCLink prints "50ms delay" and applies nothing; here we
measure: RTT against a plain link in the same run, and loss against a binomial tolerance.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.labvm._lab import binomial_interval, median, parse_ping

pytestmark = [pytest.mark.labvm, pytest.mark.timeout(900),
              pytest.mark.filterwarnings("ignore:distutils Version classes:DeprecationWarning")]

DELAY_MS = 50
LOSS_PCT = 20
LOSS_PINGS = 300


def ping(host, address: str, *options: str) -> str:
    """ping from inside a Mininet host, argv list (no shell)."""
    proc = host.popen(["ping", "-n", *options, address], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=300)
    return out


def test_default_ovs_switch_pingall(ovs, quiet_mininet):
    from mininet.net import Mininet
    from mininet.node import OVSSwitch
    from mininet.topo import SingleSwitchTopo

    net = Mininet(topo=SingleSwitchTopo(3), ipBase="172.31.0.0/24", waitConnected=True)
    try:
        net.start()
        assert all(isinstance(s, OVSSwitch) for s in net.switches)
        assert net.pingAll(timeout=5) == 0
    finally:
        net.stop()


def _two_hosts(link_params: dict):
    """h1 -- h2 over a TCLink with link_params, plus h3 -- h4 over a plain link to compare with."""
    from mininet.link import Link, TCLink
    from mininet.net import Mininet

    net = Mininet(topo=None, controller=None, ipBase="172.31.1.0/24")
    h1, h2, h3, h4 = (net.addHost(f"h{i}") for i in range(1, 5))
    net.addLink(h1, h2, cls=TCLink, **link_params)
    net.addLink(h3, h4, cls=Link)
    return net


def _start(net) -> None:
    """Start, with static ARP: ARP crosses the lossy link too, and a lost resolution would drop
    a burst of pings that says nothing about netem's loss rate."""
    net.start()
    net.staticArp()


def test_tclink_delay_is_applied_and_measured(quiet_mininet):
    net = _two_hosts({"delay": f"{DELAY_MS}ms"})
    try:
        _start(net)
        h1, h2, h3, h4 = (net.get(f"h{i}") for i in range(1, 5))
        qdiscs = h1.popen(["tc", "qdisc", "show", "dev", "h1-eth0"], stdout=subprocess.PIPE, text=True).communicate()[0]
        assert "netem" in qdiscs and f"delay {DELAY_MS}ms" in qdiscs, qdiscs
        delayed = parse_ping(ping(h1, h2.IP(), "-c", "10", "-i", "0.2"))
        plain = parse_ping(ping(h3, h4.IP(), "-c", "10", "-i", "0.2"))
    finally:
        net.stop()
    assert delayed.received == 10 and plain.received == 10
    # TCLink puts the delay on both ends: one round trip crosses it twice. netem never delivers
    # early; the slack above covers a slow emulated CPU, measured against the plain link.
    expected = 2 * DELAY_MS
    added = median(delayed.rtts_ms) - median(plain.rtts_ms)
    assert min(delayed.rtts_ms) >= expected - 1, delayed.rtts_ms
    assert expected - 2 <= added <= expected + 25, (added, delayed.rtts_ms, plain.rtts_ms)


def test_tclink_loss_rate_is_within_binomial_tolerance(quiet_mininet):
    net = _two_hosts({"loss": LOSS_PCT})
    try:
        _start(net)
        h1, h2 = net.get("h1"), net.get("h2")
        # -c without -w: exactly LOSS_PINGS requests (with -w, ping would resend until that many replies)
        result = parse_ping(ping(h1, h2.IP(), "-c", str(LOSS_PINGS), "-i", "0.01", "-W", "1"))
    finally:
        net.stop()
    assert result.transmitted == LOSS_PINGS, (result.transmitted, result.received)
    # loss on both ends: an echo survives the request's and the reply's crossing
    survive = (1 - LOSS_PCT / 100) ** 2
    lo, hi = binomial_interval(LOSS_PINGS, survive, alpha=1e-6)
    assert lo <= result.received <= hi, (result.received, (lo, hi))
