#!/usr/bin/env python3
"""Benchmark kube-proxy iptables mode: build, apply through our Proxier, and the kernel's floor.

For each scale (Services x 5 endpoints) and each iptables backend, in scratch namespaces made
here and removed at the end (also on failure):
  build   - the builder alone turning the service/endpoint maps into restore text
  sync    - our Proxier's first (full) sync: fold tracker changes + build + jumps + restore
  raw     - plain `iptables-restore --noflush --counters` of the very same text (rules and jump
            rules, as the first sync restores them) in a fresh netns
  and at the largest scale one-Service changes (one endpoint replaced; 7 rounds, medians):
  partial - our Proxier's partial sync (it restores the BuildCache's delta)
  raw-partial - raw restore of upstream's partial text (top-level chains rewritten; round 1)
  raw-delta   - raw restore of the minimal delta (only the changed Service's chains)
Ratios compare numbers from the same run. Run as root:
  .venv/bin/python scripts/bench_proxy.py [--scales 1000,5000,10000] [--backends nft,legacy]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from netemu.agent.proxy.commands import netns_exec  # noqa: E402
from netemu.agent.proxy.xtables.apply import Iptables, add_jumps  # noqa: E402
from netemu.agent.proxy.iptables.chains import jump_rules  # noqa: E402
from netemu.agent.proxy.iptables.builder import build  # noqa: E402
from netemu.agent.proxy.model import NodeInfo, ProxyConfig, endpoints_by_service_port  # noqa: E402
from netemu.agent.proxy.iptables.proxier import IptablesProxier  # noqa: E402
from netemu.testing.netnslab import Lab, run  # noqa: E402

NODE = NodeInfo(name="bench", ips=("172.18.0.2",), cluster_cidr="10.244.0.0/16")
ENDPOINTS = 5


def service(i: int) -> dict:
    return {"metadata": {"name": f"svc-{i}", "namespace": "bench"},
            "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}", "type": "ClusterIP",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


def endpoint_slice(i: int, first_ep: int = 0) -> dict:
    ips = []
    for k in range(first_ep, first_ep + ENDPOINTS):
        j = i * (ENDPOINTS + 1) + k + 1      # +1 spare so a change can bring in a new IP
        ips.append(f"10.{128 + j // 65536}.{j // 256 % 256}.{j % 256}")
    return {"metadata": {"name": f"svc-{i}-x", "namespace": "bench",
                         "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": "other"}
                          for ip in ips]}


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def raw_restore(exec_, backend: str, text: str) -> float:
    seconds, result = timed(exec_, [f"iptables-{backend}-restore", "-w", "5", "-W", "100000",
                                    "--noflush", "--counters"], text)
    if result.returncode != 0:
        raise SystemExit(f"raw restore failed: {result.stderr[:500]}")
    return seconds


_SERVICE_CHAINS = ("KUBE-SVC-", "KUBE-SEP-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-")


def minimal_delta(partial_text: str) -> str:
    """Only the per-Service chains a partial text writes (those of the changed Service, and the
    -X of its stale ones): what a perfectly minimal applier would send, leaving every top-level
    chain (KUBE-SERVICES with its 10k rules, ...) alone."""
    out = []
    for line in partial_text.splitlines():
        words = line.split()
        if not words:
            continue
        if line.startswith("*") or line == "COMMIT":
            out.append(line)
            continue
        chain = words[0][1:] if words[0].startswith(":") else (words[1] if len(words) > 1 else "")
        if chain.startswith(_SERVICE_CHAINS):
            out.append(line)
    return "\n".join(out) + "\n"


def bench_scale(lab: Lab, backend: str, n: int, repeats: int, change: bool) -> dict:
    services = [service(i) for i in range(n)]
    slices = [endpoint_slice(i) for i in range(n)]
    row: dict = {"backend": backend, "services": n}
    builds, syncs, raws = [], [], []
    for r in range(repeats):
        ns_proxy, ns_raw = lab.netns(f"{backend[0]}{n // 1000}p{r}"), lab.netns(f"{backend[0]}{n // 1000}r{r}")
        proxier = IptablesProxier(NODE, ProxyConfig(), backend=backend, exec_=netns_exec(ns_proxy))
        load_s, _ = timed(proxier.load, services, slices)
        # raw: the same text, built outside the timing; alternate which of the two goes first
        # (a shared, noisy machine drifts over minutes)
        if r % 2 == 0:
            raws.append(raw_full(ns_raw, backend, services, slices))
        result = proxier.sync()
        if not result.ok:
            raise SystemExit(f"sync failed: {result.error}")
        if r % 2 == 1:
            raws.append(raw_full(ns_raw, backend, services, slices))
        build_s, ruleset = timed(build, proxier.service_map, proxier.endpoints_map, NODE, ProxyConfig())
        builds.append(build_s)
        syncs.append(result.duration)
        row["sync_build"] = result.build_seconds   # the builder's part of the (last) sync
        row["load"] = load_s
        row["rules"] = sum(result.rules.values())
        if change and r == repeats - 1:
            row.update(bench_change(proxier, ns_raw, backend, slices))
        for ns in (ns_proxy, ns_raw):  # free kernel memory before the next round
            lab.namespaces.remove(ns)
            run(["ip", "netns", "del", ns])
    row["all"] = " ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(syncs, raws))
    row["build"] = statistics.median(builds)
    row["sync"] = statistics.median(syncs)
    row["raw"] = statistics.median(raws)
    return row


def raw_full(ns: str, backend: str, services: list[dict], slices: list[dict]) -> float:
    """Raw restore of exactly what the proxier's first sync restores in a fresh namespace: the
    rules plus the jump rules from the built-in chains (-I lines in the same restore; the two
    whose target we do not declare are added untimed). The jumps matter to the floor: with
    them, nft validates every chain reachable from the hooks on each later transaction, so a
    namespace without them would make later (delta) restores look cheaper than they are."""
    text, leftovers = add_jumps(_full_text(services, slices), jump_rules())
    seconds = raw_restore(netns_exec(ns), backend, text)
    Iptables(backend, netns_exec(ns)).ensure_jumps(leftovers)
    return seconds


def _full_text(services: list[dict], slices: list[dict]) -> str:
    """The full restore text for these objects, as the Proxier's first sync builds it."""
    from netemu.agent.proxy.tracker import EndpointsChangeTracker, ServiceChangeTracker

    service_map, endpoints_map = {}, {}
    svc, eps = ServiceChangeTracker(NODE), EndpointsChangeTracker(NODE)
    for obj in services:
        svc.update(None, obj)
    for obj in slices:
        eps.update(None, obj)
    svc.apply(service_map)
    eps.apply(endpoints_map)
    return build(service_map, endpoints_map, NODE, ProxyConfig()).text


def bench_change(proxier: IptablesProxier, ns_raw: str, backend: str, slices: list[dict],
                 rounds: int = 7) -> dict:
    """Replace one endpoint of one Service (a different Service each round): our partial sync
    vs the raw restore of the minimal delta for the same change, which of the two goes first
    alternating per round (medians). The raw namespace applies the same deltas, so both keep
    the same tables; the first round also restores upstream's partial text there (top-level
    chains rewritten, as upstream does)."""
    partial, delta, builds, raw_partial = [], [], [], None
    for k in range(rounds):
        i = len(slices) // 2 + k
        new = endpoint_slice(i, first_ep=1)
        before = proxier.previous_chains
        proxier.on_slice_update(slices[i], new)
        slices[i] = new
        if k % 2 == 1:
            result = _partial_sync(proxier)
        # the same change as text for the raw namespace: the uncached builder's partial text
        # (the slice is the Service's only one, so it replaces its entry in the maps)
        eps_map = dict(proxier.endpoints_map)
        eps_map.update(endpoints_by_service_port([new], NODE))
        text = build(proxier.service_map, eps_map, NODE, ProxyConfig(), changed={("bench", f"svc-{i}")},
                     previous_chains=before).text
        delta.append(raw_restore(netns_exec(ns_raw), backend, minimal_delta(text)))
        if k % 2 == 0:
            result = _partial_sync(proxier)
        partial.append(result.duration)
        builds.append(result.build_seconds)
        if raw_partial is None:
            raw_partial = raw_restore(netns_exec(ns_raw), backend, text)
    return {"partial": statistics.median(partial), "raw_partial": raw_partial,
            "raw_delta": statistics.median(delta), "partial_build": statistics.median(builds),
            "change_rounds": " ".join(f"{a * 1000:.0f}/{b * 1000:.0f}" for a, b in zip(partial, delta))}


def _partial_sync(proxier: IptablesProxier):
    result = proxier.sync()
    if not result.ok or result.full:
        raise SystemExit(f"partial sync failed or was full: {result}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1000,5000,10000")
    ap.add_argument("--backends", default="nft,legacy")
    ap.add_argument("--repeats", type=int, default=2, help="rounds per scale (median reported)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_proxy: run as root (it makes network namespaces)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))  # clean up on kill
    scales = [int(s) for s in args.scales.split(",")]
    rows = []
    with Lab() as lab:
        for backend in args.backends.split(","):
            for n in scales:
                row = bench_scale(lab, backend, n, args.repeats, change=(n == max(scales)))
                rows.append(row)
                print(format_row(row), flush=True)
    print()
    print(markdown(rows))
    return 0


def format_row(r: dict) -> str:
    s = (f"{r['backend']:>6} {r['services']:>6} svc ({r['rules']} rules): build {r['build']:.3f}s  "
         f"sync {r['sync']:.3f}s  raw {r['raw']:.3f}s  sync/raw {r['sync'] / r['raw']:.2f} "
         f"(first-sync build {r['sync_build']:.3f}s; rounds sync/raw {r['all']})")
    if "partial" in r:
        s += (f" | change: partial {r['partial']:.3f}s raw-partial {r['raw_partial']:.3f}s "
              f"raw-delta {r['raw_delta']:.3f}s partial/raw-delta {r['partial'] / r['raw_delta']:.2f} "
              f"(partial build {r['partial_build'] * 1000:.1f} ms; rounds partial/raw-delta ms {r['change_rounds']})")
    return s


def markdown(rows: list[dict]) -> str:
    lines = ["| backend | services | rules | build (s) | sync = build+apply (s) | raw restore (s) | sync/raw |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['services']} | {r['rules']} | {r['build']:.3f} | {r['sync']:.3f} "
                     f"| {r['raw']:.3f} | {r['sync'] / r['raw']:.2f} |")
    lines += ["", "| backend | services | partial sync (s) | raw restore of the partial text (s) "
                  "| raw minimal delta (s) | partial/raw-delta |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "partial" in r:
            lines.append(f"| {r['backend']} | {r['services']} | {r['partial']:.3f} | {r['raw_partial']:.3f} "
                         f"| {r['raw_delta']:.3f} | {r['partial'] / r['raw_delta']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
