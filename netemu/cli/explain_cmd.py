"""``netemu explain pod NAME``: why the scheduler put a pod where it is, or nowhere (its scores,
filters and events)."""

from __future__ import annotations

import argparse
import asyncio
import os

from netemu.cli.main import Command, UsageError


def add_explain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["pod", "pods", "po"], help="what to explain (pods only)")
    p.add_argument("name", help="the pod's name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                   help="kubeconfig of the cluster (default: $KUBECONFIG)")


def run_explain(args: argparse.Namespace) -> int:
    from netemu.api import errors
    from netemu.client import ApiClient
    from netemu.controllers.explain import explain_pod

    if not args.kubeconfig:
        raise UsageError("no kubeconfig: pass --kubeconfig or set KUBECONFIG (netemu up / apiserver print it)")
    if not os.path.exists(args.kubeconfig):
        raise UsageError(f"--kubeconfig {args.kubeconfig}: no such file")

    async def main() -> str:
        async with ApiClient.from_kubeconfig(args.kubeconfig) as client:
            return await explain_pod(client, args.namespace, args.name)

    try:
        print(asyncio.run(main()))
    except errors.NotFound:
        raise UsageError(f'pod "{args.name}" not found in namespace "{args.namespace}"') from None
    except errors.StatusError as exc:
        raise UsageError(str(exc)) from None
    return 0


COMMANDS = [
    Command("explain", "why a pod was scheduled where it is (scores, filters, events)",
            add_explain_arguments, run_explain),
]
