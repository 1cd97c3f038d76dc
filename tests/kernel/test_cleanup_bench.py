"""Cleanup at scale in a scratch namespace: a root test, and (run as a module) the benchmark.

    sudo .venv/bin/python -m tests.kernel.test_cleanup_bench     # --scales 1000,10000 --backends nft,legacy

Per backend and scale, in one run: load our builder's rules for N Services x 5 endpoints into a
fresh namespace, then time (a) `netemu proxy cleanup`'s whole job (iptables-save, plan, restore),
and, after loading the same rules again, (b) the same steps raw: `iptables-save`, the pure plan,
`iptables-restore --noflush` of the plan: save + restore is the floor. Only namespaces made here
are touched.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import pytest

from netemu.agent.proxy.iptables.cleanup import plan_iptables
from netemu.agent.proxy.leftovers import Cleaner
from netemu.agent.proxy.iptables import UPSTREAM_TEST_NODE, render
from tests.unit.test_trace_bench import cluster


def _ns_name(tag: str) -> str:
    return f"ntp{os.getpid() % 10**7}{tag}"


def _sh(argv: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{argv}: {done.stderr[:500]}")
    return done.stdout


def _load(ns: str, backend: str, text: str) -> None:
    _sh(["ip", "netns", "exec", ns, f"iptables-{backend}-restore", "--noflush"], text)


def measure(n: int, backend: str) -> dict[str, float]:
    text = render(*cluster(n), UPSTREAM_TEST_NODE).text
    ns = _ns_name("b")
    _sh(["ip", "netns", "add", ns])
    try:
        _load(ns, backend, text)
        t0 = time.perf_counter()
        report = Cleaner(netns=ns, backend=backend).cleanup()
        t1 = time.perf_counter()
        assert not report.errors, report.errors
        _load(ns, backend, text)
        t2 = time.perf_counter()
        saved = _sh(["ip", "netns", "exec", ns, f"iptables-{backend}-save"])
        t3 = time.perf_counter()
        plan = plan_iptables(saved)
        t4 = time.perf_counter()
        _load(ns, backend, plan.restore_text)
        t5 = time.perf_counter()
        assert "KUBE-" not in _sh(["ip", "netns", "exec", ns, f"iptables-{backend}-save"])
        return {"cleanup": t1 - t0, "save": t3 - t2, "plan": t4 - t3, "restore": t5 - t4,
                "chains": len(plan.chains)}
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.mark.root
@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_cleanup_of_many_services(backend):
    result = measure(200, backend)
    assert result["chains"] > 200 * 6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1000,10000")
    ap.add_argument("--backends", default="nft,legacy")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so `finally` removes the netns
    print("| backend | Services x 5 eps | KUBE chains | netemu proxy cleanup | raw save | plan (pure) "
          "| raw restore of the plan | cleanup / (save + restore) |")
    print("|---|---|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        for n in (int(s) for s in args.scales.split(",")):
            r = measure(n, backend)
            floor = r["save"] + r["restore"]
            print(f"| {backend} | {n} | {r['chains']} | {r['cleanup']:.2f} s | {r['save']:.2f} s "
                  f"| {r['plan']:.2f} s | {r['restore']:.2f} s | {r['cleanup'] / floor:.2f} |", flush=True)


if __name__ == "__main__":
    main()
