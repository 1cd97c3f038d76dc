"""``netemu node add`` and ``netemu node remove``: the cloud starting or terminating a node's VM
on a running cluster (the supervisor does it: netemu/emulator/nodeops.py).

``add`` returns once the new Node is Ready (it registered, got a podCIDR, set up its network);
``remove`` returns once the host is gone, or with ``--wait`` once the cloud node-lifecycle
controller has deleted the Node object (after the node-monitor grace period).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from netemu.cli.cluster_cmd import add_state_dir, no_cluster, running_supervisor, state_dir_of
from netemu.cli.main import Command, UsageError


def _args_add(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the new node's name (a lowercase DNS name)")
    p.add_argument("--zone", help="its topology.kubernetes.io/zone label")
    p.add_argument("--labels", default="", help="more labels k=v,...")
    p.add_argument("--taints", default="", help="taints k=v:Effect,...")
    p.add_argument("--switch", help="the topology switch to plug it into (default: the control plane's)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for Ready (default %(default)s)")
    add_state_dir(p)


def _args_remove(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the node to take away")
    p.add_argument("--wait", action="store_true", help="until the cloud node-lifecycle controller deleted the Node")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds for --wait (default %(default)s)")
    add_state_dir(p)


def _supervisor(args) -> tuple[str, dict]:
    state = state_dir_of(args)
    doc, pid = running_supervisor(state)
    if pid is None:
        raise UsageError(no_cluster(state) + " (netemu up first)")
    return state, doc


def _request(state: str, request: dict) -> dict:
    from netemu.emulator.supervisor import control_request
    answer = control_request(state, request, timeout=60.0)
    if "error" in answer:
        raise UsageError(f"node {request['op'].split('-')[1]}: {answer['error']}")
    return answer


def run_add(args: argparse.Namespace) -> int:
    from netemu.agent.kubelet.nodestatus import parse_labels, parse_taints
    state, doc = _supervisor(args)
    try:
        labels = parse_labels(args.labels)
        taints = [f"{t['key']}={t.get('value', '')}:{t['effect']}" if t.get("value") else f"{t['key']}:{t['effect']}"
                  for t in parse_taints(args.taints)]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    answer = _request(state, {"op": "node-add", "node": args.name, "zone": args.zone, "labels": labels,
                              "taints": taints, "switch": args.switch})
    print(f"node {args.name}: host up at {answer['ip']} (namespace {answer['netns']}); waiting for Ready...", flush=True)
    from netemu.emulator.ready import wait_nodes
    try:
        asyncio.run(wait_nodes(doc["kubeconfig"], [args.name], args.timeout, lambda *a: None, lambda: None))
    except Exception as exc:  # NotReady with its reason
        print(f"netemu node add: {exc}", file=sys.stderr)
        return 1
    print(f"node {args.name} is Ready")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    state, doc = _supervisor(args)
    answer = _request(state, {"op": "node-remove", "node": args.name})
    print(f"node {args.name}: host removed ({answer.get('pods', 0)} pod namespaces with it)", flush=True)
    if not args.wait:
        return 0
    return 0 if asyncio.run(_wait_deleted(doc["kubeconfig"], args.name, args.timeout)) else 1


async def _wait_deleted(kubeconfig: str, name: str, timeout: float) -> bool:
    from netemu.api import errors
    from netemu.api.kinds import by_kind
    from netemu.client import ApiClient
    deadline = time.monotonic() + timeout
    async with ApiClient.from_kubeconfig(kubeconfig) as api:
        while time.monotonic() < deadline:
            try:
                await api.get(by_kind("v1", "Node"), name)
            except errors.NotFound:
                print(f"Node {name} deleted by the cloud node-lifecycle controller")
                return True
            await asyncio.sleep(1.0)
    print(f"netemu node remove: Node {name} still exists after {timeout:.0f}s", file=sys.stderr)
    return False


COMMANDS = [
    Command("node add", "add a worker node to the running cluster (a new VM): returns when it is Ready",
            _args_add, run_add),
    Command("node remove", "take a worker node away (its VM is gone): the cloud then deletes the Node",
            _args_remove, run_remove),
]
