"""nftables mode next to iptables mode, on this machine's kernel (root; namespaces of its own).

Sync cost, for each scale (Services x endpoints), each proxier in a fresh network namespace:
  full     - the first sync (empty kernel): build + apply
  one      - one Service's endpoints changed, then a sync (median of --repeats)
for the nftables mode through ``nft -f`` and through libnftables (in a child process inside the
namespace: the library works only in its own namespace), the iptables mode with the legacy and
the nft backends, and a raw ``nft -f`` of the very text the nftables full sync sent (the kernel's
floor: the issue's target is full <= 1.3 x raw).

First-packet cost (--first-packet): N Services in a lab (a node, one echo pod, a client pod), all
pointing at the pod; the median time of a new TCP connection to the first and to the last Service,
iptables mode (nft backend) against nftables mode: iptables walks KUBE-SERVICES rule by rule, so
its cost grows with the Service's position; nftables looks the Service up in a map.

Wall-clock seconds, ratios within one run (the machine is shared: absolute times are noisy).

    sudo .venv/bin/python -m netemu.bench.nftables [--scales 1000,5000,10000] [--endpoints 5]
        [--repeats 5] [--first-packet] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

from netemu.agent.proxy.commands import local_exec, netns_exec
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.bench.iptables import _objects

NODE = NodeInfo("bench", ("172.18.0.2",), "10.244.0.0/16")
SERVICE_CIDRS = ("10.96.0.0/12",)


def _netns() -> str:
    name = f"nb{os.getpid()}{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    return name


def _drop(ns: str) -> None:
    subprocess.run(["ip", "netns", "del", ns], check=False)


def _changed(slices: list[dict], index: int, step: int) -> tuple[dict, dict]:
    old = slices[index]
    new = json.loads(json.dumps(old))
    new["endpoints"][0]["addresses"] = [f"10.127.{step // 256 % 256}.{step % 256}"]
    slices[index] = new
    return old, new


def _proxier(mode: str, exec_, backend: str):
    if mode == "ipvs":                   # netemu.bench.ipvs (backend: "netlink", the only one)
        from netemu.agent.proxy.ipvs.proxier import make_proxier
        return make_proxier(NODE, ProxyConfig(), exec_=exec_)
    if mode == "nftables":
        from netemu.agent.proxy.nftables.proxier import NftablesProxier
        return NftablesProxier(NODE, ProxyConfig(service_cidrs=SERVICE_CIDRS), exec_=exec_, backend=backend,
                               service_cidrs=SERVICE_CIDRS, monitor_table=False)
    from netemu.agent.proxy.iptables.proxier import IptablesProxier
    return IptablesProxier(NODE, ProxyConfig(), backend=backend, exec_=exec_, monitor_canaries=False)


def sync_cost(mode: str, backend: str, n: int, eps: int, repeats: int, exec_=None) -> dict:
    """Full sync and one-Service syncs of ``mode``/``backend`` in a fresh namespace (or, with
    ``exec_``, wherever it runs commands)."""
    ns = None if exec_ is not None else _netns()
    try:
        proxier = _proxier(mode, exec_ or netns_exec(ns), backend)
        services, slices = _objects(n, eps)
        proxier.load(services, slices)
        preflight = 0.0
        if mode == "nftables":           # once per process, before the first sync: not a sync's cost
            t0 = time.perf_counter()
            proxier.nft.preflight()
            proxier.checked = True
            preflight = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = proxier.sync()
        full = time.perf_counter() - t0
        if not first.ok:
            raise RuntimeError(f"{mode}/{backend} full sync failed: {first.error}")
        ones, builds = [], []
        for step in range(repeats):
            old, new = _changed(slices, (step * 7919) % n, step + 1)
            proxier.on_slice_update(old, new)
            t0 = time.perf_counter()
            result = proxier.sync()
            ones.append(time.perf_counter() - t0)
            builds.append(result.build_seconds)
            if not result.ok or result.full:
                raise RuntimeError(f"{mode}/{backend} one-Service sync: {result}")
        out = {"mode": mode, "backend": backend, "services": n, "full_s": full, "full_build_s": first.build_seconds,
               "one_s": statistics.median(ones),
               "one_build_s": statistics.median(builds)}
        if mode == "nftables":
            out["preflight_s"] = preflight
        if mode == "nftables" and ns is not None:
            out["raw_nft_s"] = _raw_nft(services, slices)
        return out
    finally:
        if ns is not None:
            _drop(ns)


def _raw_nft(services, slices) -> float:
    """``nft -f`` of the full sync's transaction text into a fresh namespace (the kernel floor)."""
    from netemu.agent.proxy.model import endpoints_by_service_port, service_port_map
    from netemu.agent.proxy.nftables.builder import make_context
    from netemu.agent.proxy.nftables.transaction import Planner

    ctx = make_context(NODE, ProxyConfig(), service_cidrs=SERVICE_CIDRS)
    text = Planner().plan(service_port_map(services, NODE), endpoints_by_service_port(slices, NODE), ctx,
                          full=True).text
    ns = _netns()
    try:
        t0 = time.perf_counter()
        done = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True,
                              capture_output=True)
        raw = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"raw nft -f failed: {done.stderr[:300]}")
        return raw
    finally:
        _drop(ns)


def _inner(n: int, eps: int, repeats: int) -> None:
    """Run inside the namespace (``ip netns exec``): the libnftables backend, in-process."""
    print(json.dumps(sync_cost("nftables", "libnftables", n, eps, repeats, exec_=local_exec)))


def libnftables_cost(n: int, eps: int, repeats: int) -> dict:
    ns = _netns()
    try:
        done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "netemu.bench.nftables", "--inner",
                               str(n), "--endpoints", str(eps), "--repeats", str(repeats)],
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        _drop(ns)


def plan_cost(n: int, eps: int, repeats: int) -> dict:
    """The pure part alone (no kernel, no root): a full sync's plan and a one-Service plan."""
    from netemu.agent.proxy.model import ServiceName, endpoints_by_service_port, service_port_map
    from netemu.agent.proxy.nftables.builder import make_context
    from netemu.agent.proxy.nftables.transaction import Planner

    ctx = make_context(NODE, ProxyConfig(), service_cidrs=SERVICE_CIDRS)
    services, slices = _objects(n, eps)
    svc_map, eps_map = service_port_map(services, NODE), endpoints_by_service_port(slices, NODE)
    planner = Planner()
    t0 = time.perf_counter()
    planner.commit(planner.plan(svc_map, eps_map, ctx, full=True))
    full = time.perf_counter() - t0
    ones = []
    for step in range(repeats):
        index = (step * 7919) % n
        _changed(slices, index, step + 1)
        eps_map = endpoints_by_service_port(slices, NODE)
        name = ServiceName(slices[index]["metadata"]["namespace"], slices[index]["metadata"]["labels"][
            "kubernetes.io/service-name"])
        t0 = time.perf_counter()
        plan = planner.plan(svc_map, eps_map, ctx, full=False, changed={name}, now=step, ports={})
        ones.append(time.perf_counter() - t0)
        planner.commit(plan)
    return {"services": n, "plan_full_s": full, "plan_one_s": statistics.median(ones)}


# ---- first-packet cost ----------------------------------------------------------------

CONNECT_TIMER = r"""
import socket, statistics, sys, time
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = []
for _ in range(n):
    s = socket.socket(); s.settimeout(2)
    t0 = time.perf_counter(); s.connect((ip, port)); times.append(time.perf_counter() - t0); s.close()
print(statistics.median(times))
"""


def first_packet(n: int, connects: int = 200, iptables_backend: str = "nft") -> dict:
    """Median connect time to the first and the last of ``n`` Services, both modes."""
    from netemu.testing.netnslab import Lab, in_netns, run

    out = {"services": n, "iptables_backend": iptables_backend}
    for mode, backend in (("iptables", iptables_backend), ("nftables", "nft")):
        with Lab() as lab:
            node = lab.node("n1")
            pod = lab.pod(node, "p0")
            client = lab.pod(node, "cl")
            lab.echo_server(pod, 8080)
            services, slices = _objects(n, 1)
            for sl in slices:
                sl["endpoints"] = [{"addresses": [pod.ip], "nodeName": "other"}]
            proxier = _proxier(mode, netns_exec(node.netns), backend)
            proxier.load(services, slices)
            if not proxier.sync().ok:
                raise RuntimeError(f"{mode} sync failed")
            for which, svc in (("first", services[0]), ("last", services[-1])):
                ip = svc["spec"]["clusterIP"]
                done = run(in_netns(client.netns, [sys.executable, "-c", CONNECT_TIMER, ip, "80", str(connects)]))
                out[f"{mode}_{which}_us"] = float(done.stdout) * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netemu.bench.nftables", description=__doc__.split("\n")[0])
    p.add_argument("--scales", default="1000,5000,10000")
    p.add_argument("--endpoints", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--first-packet", action="store_true")
    p.add_argument("--skip-sync", action="store_true", help="only the first-packet part")
    p.add_argument("--plan-only", action="store_true", help="only the pure planner (no kernel, no root)")
    p.add_argument("--only", default="nftables/nft,iptables/legacy,iptables/nft,nftables/libnftables",
                   help="which MODE/BACKEND sync rows to run (comma list)")
    p.add_argument("--first-packet-iptables-backend", default="nft", choices=("nft", "legacy"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inner:
        _inner(args.inner, args.endpoints, args.repeats)
        return 0
    rows = []
    for n in (int(x) for x in args.scales.split(",")):
        if args.plan_only:
            rows.append(plan_cost(n, args.endpoints, args.repeats))
            _show(rows[-1], args.json)
            continue
        if not args.skip_sync:
            for row in args.only.split(","):
                mode, backend = row.split("/")
                rows.append(libnftables_cost(n, args.endpoints, args.repeats) if backend == "libnftables"
                            else sync_cost(mode, backend, n, args.endpoints, args.repeats))
                _show(rows[-1], args.json)
        if args.first_packet:
            rows.append(first_packet(n, iptables_backend=args.first_packet_iptables_backend))
            _show(rows[-1], args.json)
    return 0


def _show(row: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
        return
    if "plan_full_s" in row:
        print(f"{row['services']:>6} Services  planner: full {row['plan_full_s']:.2f} s, one Service "
              f"{row['plan_one_s'] * 1000:.2f} ms", flush=True)
        return
    if "full_s" in row:
        raw = f"  raw nft -f {row['raw_nft_s']:.3f} s (full/raw {row['full_s'] / row['raw_nft_s']:.2f})" \
            if "raw_nft_s" in row else ""
        print(f"{row['services']:>6} Services  {row['mode']:<9} {row['backend']:<12} full {row['full_s']:8.3f} s   "
              f"one Service {row['one_s'] * 1000:8.1f} ms (build {row['one_build_s'] * 1000:.1f} ms){raw}",
              flush=True)
    else:
        print(f"{row['services']:>6} Services  first packet: iptables ({row['iptables_backend']}) first "
              f"{row['iptables_first_us']:.0f} us, "
              f"last {row['iptables_last_us']:.0f} us; nftables first {row['nftables_first_us']:.0f} us, "
              f"last {row['nftables_last_us']:.0f} us", flush=True)


if __name__ == "__main__":
    sys.exit(main())
