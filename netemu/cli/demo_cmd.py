"""``netemu demo``: the whole cluster demo in one command.

A cluster of ``--nodes`` nodes on Mininet, a 3-replica agnhost Deployment and its Service, a
client pod on a node without replicas sending HTTP requests to the ClusterIP, the per-pod counts
and the client node's KUBE-SVC chain; ``netemu down`` at the end, also on failure or Ctrl-C
(netemu/emulator/demo.py says how).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from netemu.cli.main import Command, UsageError

DEFAULT_STATE_DIR = "/var/lib/netemu/demo"


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, default=3, help="worker nodes (default 3)")
    p.add_argument("--replicas", type=int, default=3, help="replicas behind the Service (default 3)")
    p.add_argument("--requests", type=int, default=300, help="HTTP requests to send (default 300)")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help=f"the demo cluster's state dir (default {DEFAULT_STATE_DIR})")
    p.add_argument("--node-network", help="node network CIDR for netemu up (default: its own)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each step")
    p.add_argument("--keep", action="store_true", help="leave the cluster up (netemu down later)")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_demo(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise UsageError("the demo builds a cluster on Mininet: run it as root")
    if not 1 <= args.nodes <= 100:
        raise UsageError(f"--nodes must be 1..100, got {args.nodes}")
    if not 1 <= args.replicas <= 50:
        raise UsageError(f"--replicas must be 1..50, got {args.replicas}")
    if not 1 <= args.requests <= 100000:
        raise UsageError(f"--requests must be 1..100000, got {args.requests}")
    from netemu.emulator import demo   # rich and the client only when the demo runs

    opts = demo.DemoOptions(state_dir=args.state_dir, nodes=args.nodes, replicas=args.replicas,
                            requests=args.requests, timeout=args.timeout, keep=args.keep,
                            up_args=("--node-network", args.node_network) if args.node_network else ())
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = demo.run(opts)
    except demo.DemoError as exc:
        print(f"netemu demo: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    missing = opts.replicas - len(result["counts"])
    if result["failed"] or missing > 0:
        print(f"netemu demo: {result['failed']} requests failed, {max(missing, 0)} replicas got none",
              file=sys.stderr)
        return 1
    return 0


COMMANDS = [Command("demo", "the full demo: a Mininet cluster, a Service, 300 requests, "
                    "the counts and the rules; netemu down at the end", _add_arguments, run_demo)]
