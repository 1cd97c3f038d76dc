"""IPVS mode next to iptables mode (root, a kernel with ip_vs: the lab VM; namespaces of its own).

Sync cost, for each scale (Services x endpoints), each proxier in a fresh network namespace:
  full     - the first sync (empty kernel): plan + apply (virtual servers, sets, fixed chains,
             kube-ipvs0 addresses)
  one      - one Service's endpoints changed (an endpoint replaced: one real server added, one
             set to weight 0 to drain), then a sync (median of --repeats)
for the IPVS mode and the iptables mode (the backends of --iptables-backends), by
netemu.bench.nftables.sync_cost (the same loop for every mode). The issue's
target: IPVS one-Service <= 50 ms and flat from 1k to 5k Services.

Applier against ipvsadm (same scale, same virtual and real servers, each into a fresh
namespace): our netlink batch of every add (kernel.NetlinkKernel.apply, what a full sync sends)
against a raw ``ipvsadm -R`` of the same servers (``ipvsadm -Sn`` form, ipvsadm.save_text).

Wall-clock seconds, ratios within one run (the machine is shared: absolute times are noisy).

    scripts/labvm -- python -m netemu.bench.ipvs [--scales 1000,5000] [--endpoints 5]
        [--repeats 5] [--iptables-backends legacy] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from netemu.bench.iptables import _objects
from netemu.bench.nftables import NODE, _drop, _netns, sync_cost


def _fresh() -> str:
    """A new namespace with lo up: with no local address at all its kernel has no local routing
    table, and IPVS refuses every NAT real server (EINVAL: it checks the address's route type)."""
    ns = _netns()
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    return ns


def applier_vs_ipvsadm(n: int, eps: int) -> dict:
    """Every virtual and real server of ``n`` Services added by our netlink batch, and by a raw
    ``ipvsadm -R`` of the same servers, each into an empty namespace."""
    from netemu.agent.proxy.ipvs import ipvsadm, render
    from netemu.agent.proxy.ipvs.kernel import NetlinkKernel, Op

    services, slices = _objects(n, eps)
    plan = render(services, slices, NODE)
    ops = []
    for key, vs in plan.services.items():
        ops.append(Op("add_service", vs))
        ops += [Op("add_dest", vs, rs) for rs in plan.reals.get(key, ())]
    ns = _fresh()
    try:
        kernel = NetlinkKernel(ns)
        t0 = time.perf_counter()
        kernel.apply(ops)
        ours = time.perf_counter() - t0
        got = len(kernel.services())
        kernel.close()
    finally:
        _drop(ns)
    text = ipvsadm.save_text(plan.services, plan.reals)
    ns = _fresh()
    try:
        t0 = time.perf_counter()
        done = subprocess.run(["ip", "netns", "exec", ns, "ipvsadm", "-R"], input=text, text=True,
                              capture_output=True)
        raw = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"ipvsadm -R failed: {done.stderr[:300]}")
    finally:
        _drop(ns)
    if got != len(plan.services):
        raise RuntimeError(f"the netlink batch made {got} virtual servers, not {len(plan.services)}")
    return {"services": n, "virtual_servers": len(plan.services), "messages": len(ops),
            "netlink_s": ours, "ipvsadm_restore_s": raw}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netemu.bench.ipvs", description=__doc__.split("\n")[0])
    p.add_argument("--scales", default="1000,5000")
    p.add_argument("--endpoints", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--iptables-backends", default="legacy", help="comma-separated: legacy, nft ('' for none; "
                   "iptables-nft-restore's full sync at 5k Services takes many minutes)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    for n in (int(x) for x in args.scales.split(",")):
        _show(sync_cost("ipvs", "netlink", n, args.endpoints, args.repeats), args.json)
        for backend in filter(None, args.iptables_backends.split(",")):
            _show(sync_cost("iptables", backend, n, args.endpoints, args.repeats), args.json)
        _show(applier_vs_ipvsadm(n, args.endpoints), args.json)
    return 0


def _show(row: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
    elif "netlink_s" in row:
        print(f"{row['services']:>6} Services  {row['messages']} IPVS adds: netlink batch {row['netlink_s']:.3f} s, "
              f"ipvsadm -R {row['ipvsadm_restore_s']:.3f} s (ratio {row['netlink_s'] / row['ipvsadm_restore_s']:.2f})",
              flush=True)
    else:
        print(f"{row['services']:>6} Services  {row['mode']:<9} {row['backend']:<8} full {row['full_s']:8.3f} s "
              f"(plan {row['full_build_s']:.2f} s)   "
              f"one Service {row['one_s'] * 1000:8.1f} ms (plan {row['one_build_s'] * 1000:.1f} ms)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
