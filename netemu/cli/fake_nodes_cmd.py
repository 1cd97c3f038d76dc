"""``netemu fake-nodes``: KWOK-style nodes for scheduling and controller experiments without kernel
networking: Node objects with a pretend kubelet (netemu/testing/fakenodes.py) until Ctrl-C.

The one CLI module that runs the fake-nodes harness (named in .importlinter's
no-harness-in-the-cli contract)."""

from __future__ import annotations

import argparse
import asyncio
import os

from netemu.cli.main import Command, UsageError


def _quantity(text: str) -> str:
    from netemu.controllers.kube import quantity
    try:
        quantity(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a Kubernetes quantity: {text!r} (e.g. 2, 500m, 8Gi)") from None
    return text


def add_fake_nodes_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                   help="kubeconfig of the cluster (default: $KUBECONFIG)")
    p.add_argument("--count", type=int, default=3, help="how many nodes (default %(default)s)")
    p.add_argument("--prefix", default="fake-", help="node name prefix (default %(default)s)")
    p.add_argument("--cpu", type=_quantity, default="2", help="allocatable cpu per node (default %(default)s)")
    p.add_argument("--memory", type=_quantity, default="8Gi", help="allocatable memory (default %(default)s)")
    p.add_argument("--max-pods", type=int, default=110, help="pods per node (default %(default)s)")
    p.add_argument("--zones", type=int, default=0, help="spread nodes over N topology.kubernetes.io/zone values")
    p.add_argument("--heartbeat", type=float, default=10.0, help="Lease renewal period, seconds (default %(default)s)")
    p.add_argument("--keep", action="store_true", help="leave the Node objects behind on exit")


def run_fake_nodes(args: argparse.Namespace) -> int:
    import signal

    from netemu.api import errors
    from netemu.client import ApiClient
    from netemu.testing.fakenodes import FakeKubelet, node_object
    from netemu.controllers.runtime import rt

    if not args.kubeconfig or not os.path.exists(args.kubeconfig):
        raise UsageError("no kubeconfig: pass --kubeconfig or set KUBECONFIG (netemu up / apiserver print it)")
    if not 1 <= args.count <= 5000 or args.heartbeat <= 0 or args.zones < 0 or args.max_pods < 1:
        raise UsageError("--count must be 1-5000, --heartbeat > 0, --zones >= 0, --max-pods >= 1")
    names = [f"{args.prefix}{i}" for i in range(args.count)]

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with ApiClient.from_kubeconfig(args.kubeconfig) as client:
            kubelet = FakeKubelet(client, heartbeat=args.heartbeat)
            try:
                for i, name in enumerate(names):
                    labels = {"topology.kubernetes.io/zone": f"zone-{i % args.zones}"} if args.zones else {}
                    await kubelet.add_node(node_object(name, cpu=args.cpu, memory=args.memory, pods=args.max_pods,
                                                       labels=labels))
                print(f"fake nodes up: {', '.join(names)} (Ctrl-C to stop"
                      f"{'' if args.keep else ' and remove them'})", flush=True)
                await kubelet.run(stop)
            finally:
                if not args.keep:
                    for name in names:
                        try:
                            await client.delete(rt("Node"), name)
                        except errors.NotFound:
                            pass

    try:
        asyncio.run(main())
    except OSError as exc:
        raise UsageError(f"cannot reach the API server: {exc}") from None
    return 0


COMMANDS = [
    Command("fake-nodes", "KWOK-style nodes: Node objects with a pretend kubelet (no kernel networking)",
            add_fake_nodes_arguments, run_fake_nodes),
]
