"""The pure helpers of the lab VM suite (tests/labvm/_lab.py), checked on the host where Python is fast."""

from __future__ import annotations

import math

import pytest

from tests.labvm._lab import binomial_interval, median, parse_ping

PING_OUTPUT = """\
PING 172.31.1.2 (172.31.1.2) 56(84) bytes of data.
64 bytes from 172.31.1.2: icmp_seq=1 ttl=64 time=100.9 ms
64 bytes from 172.31.1.2: icmp_seq=3 ttl=64 time=101.2 ms

--- 172.31.1.2 ping statistics ---
3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms
rtt min/avg/max/mdev = 100.900/101.050/101.200/0.150 ms
"""


def test_parse_ping_counts_and_every_rtt():
    summary = parse_ping(PING_OUTPUT)
    assert (summary.transmitted, summary.received) == (3, 2)
    assert summary.rtts_ms == (100.9, 101.2)


def test_parse_ping_without_summary_is_an_error():
    with pytest.raises(ValueError, match="no ping summary"):
        parse_ping("ping: connect: Network is unreachable\n")


def test_median():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5


def test_binomial_interval_holds_the_mass_it_promises():
    n, p, alpha = 300, 0.64, 1e-6
    lo, hi = binomial_interval(n, p, alpha)
    inside = sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(lo, hi + 1))
    assert inside >= 1 - alpha
    assert lo < n * p < hi


def test_loss_tolerance_tells_applied_loss_from_none_or_one_sided():
    # the lab test's numbers: 20% loss on both ends of the link, 300 pings
    lo, hi = binomial_interval(300, 0.8**2, 1e-6)
    assert not lo <= 300 <= hi   # no loss applied at all (sch_netem missing)
    assert not lo <= 240 <= hi   # loss applied on one end only
