"""`netemu proxy cleanup`: remove what every proxy mode left in the kernel (like kube-proxy
--cleanup), on this host or inside a named network namespace.

The plans come from each mode's cleanup, found through the registry (netemu.agent.proxy.modes);
the kernel is read and changed through argv lists only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

from netemu.agent.proxy import modes
from netemu.cli.main import Command, UsageError


def add_cleanup_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--netns", help="clean inside this network namespace instead of the host's")
    modes.add_options(p, "cleanup")
    p.add_argument("--json", action="store_true", help="machine-readable report")


def run_cleanup(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise UsageError("proxy cleanup changes netfilter rules: run it as root")
    if args.netns and not os.path.exists(f"/run/netns/{args.netns}"):
        raise UsageError(f"no network namespace {args.netns!r} (ip netns list)")
    from netemu.agent.proxy.leftovers import Cleaner

    report = Cleaner(netns=args.netns, **modes.every_mode_options(args, "cleanup")).cleanup()
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        where = f"netns {args.netns}" if args.netns else "this host"
        if report.nothing_to_do:
            print(f"nothing to clean in {where}")
        else:
            print(f"removed {len(report.removed_chains)} KUBE-* chains and "
                  f"{len(report.removed_jumps)} jump rules in {where}")
        for argv in report.commands:
            if not argv[0].endswith("-restore"):
                print("ran: " + " ".join(argv))
        for s in report.skipped:
            print(f"skipped: {s}")
        for e in report.errors:
            print(f"error: {e}", file=sys.stderr)
    return 1 if report.errors else 0


COMMANDS = [
    Command("proxy cleanup", "remove what every proxy mode left: KUBE-* chains and jump rules, nftables "
            "kube-proxy tables, kube-ipvs0 (like kube-proxy --cleanup)", add_cleanup_arguments, run_cleanup),
]
