"""Helpers for the lab VM tests: scratch namespaces and links that always go away, ping parsing,
and the binomial tolerance for measured loss.

Why here and not in netemu: these are test fixtures for the full-kernel suite (plain `ip` argv
lists, no shell strings); the parsers are pure and unit-tested on the host
(tests/unit/test_features_lab_helpers.py), because the lab VM runs Python ~10x slower.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
from dataclasses import dataclass
from typing import Iterator

TAG = str(os.getpid() % 100000)  # unique per test process; keeps names within 15 characters


def ip(*argv: str) -> str:
    """Run `ip ARGV...`; raise with its stderr when it fails."""
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


@contextlib.contextmanager
def netns(name: str) -> Iterator[str]:
    """A network namespace that is deleted (with its links) however the test ends."""
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def veth_into(ns: str, host_if: str, host_cidr: str, ns_cidr: str, gateway: str) -> None:
    """host_if in this namespace, eth0 in ``ns``, addressed, up, default route back through us."""
    ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
    ip("addr", "add", host_cidr, "dev", host_if)
    ip("link", "set", host_if, "up")
    ip("-n", ns, "addr", "add", ns_cidr, "dev", "eth0")
    ip("-n", ns, "link", "set", "eth0", "up")
    ip("-n", ns, "route", "add", "default", "via", gateway)


@contextlib.contextmanager
def sysctls(values: dict[str, str]) -> Iterator[None]:
    """Set /proc/sys values for the test, restore the old ones afterwards."""
    paths = {key: "/proc/sys/" + key.replace(".", "/") for key in values}
    old = {key: open(path).read().strip() for key, path in paths.items()}
    try:
        for key, value in values.items():
            with open(paths[key], "w") as f:
                f.write(value)
        yield
    finally:
        for key, value in old.items():
            with open(paths[key], "w") as f:
                f.write(value)


@dataclass(frozen=True)
class PingSummary:
    transmitted: int
    received: int
    rtts_ms: tuple[float, ...]


_COUNTS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_RTT = re.compile(r"time=([\d.]+) ms")


def parse_ping(output: str) -> PingSummary:
    """iputils ping output -> counts and every reply's RTT (not just the summary's min/avg/max)."""
    counts = _COUNTS.search(output)
    if not counts:
        raise ValueError(f"no ping summary in: {output[-200:]!r}")
    rtts = tuple(float(m) for m in _RTT.findall(output))
    return PingSummary(int(counts.group(1)), int(counts.group(2)), rtts)


def median(values: tuple[float, ...] | list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def binomial_interval(n: int, p: float, alpha: float) -> tuple[int, int]:
    """[lo, hi] holding a Binomial(n, p) count with probability >= 1 - alpha (equal tails).

    Exact sums, no scipy: n is a few hundred pings.
    """
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    lo, tail = 0, 0.0
    while tail + pmf[lo] <= alpha / 2:
        tail += pmf[lo]
        lo += 1
    hi, tail = n, 0.0
    while tail + pmf[hi] <= alpha / 2:
        tail += pmf[hi]
        hi -= 1
    return lo, hi
