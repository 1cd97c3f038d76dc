"""A stand-in node agent (``netemu up --fake-agents``): KWOK-style kubelet, no kernel work.

It takes the real agent's argv, registers the Node (InternalIP = the node's emulated address,
labels, taints, capacity) and heartbeats its Lease from inside the node's network namespace, so
the emulator's plumbing (hosts, addressing, control plane, readiness, link cuts) and the control
plane at scale can be exercised without running pods. Pods bound to its nodes are reported
Running with an IP from the podCIDR, but nothing runs: this is not a kubelet, and says so in the
node's ``type=kwok`` label.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netemu.testing.fakeagent")
    p.add_argument("--node", required=True)
    p.add_argument("--node-ip", required=True)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--capacity", default="")
    p.add_argument("--labels", default="")
    p.add_argument("--taints", default="")
    p.add_argument("--heartbeat-interval", type=float, default=2.0)
    args, _unknown = p.parse_known_args(argv)      # the real agent's other flags do not apply
    return args


def pairs(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in text.split(",") if item)


def taints(text: str) -> list[dict]:
    out = []
    for item in filter(None, text.split(",")):
        head, _, effect = item.rpartition(":")
        key, _, value = head.partition("=")
        out.append({"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect})
    return out


async def main(args: argparse.Namespace) -> None:
    from netemu.client import ApiClient
    from netemu.testing.fakenodes import FakeKubelet, node_object

    capacity = pairs(args.capacity)
    node = node_object(args.node, cpu=capacity.get("cpu", "2"), memory=capacity.get("memory", "4Gi"),
                       pods=int(capacity.get("pods", 110)), labels=pairs(args.labels), taints=taints(args.taints))
    node["status"]["addresses"].insert(0, {"type": "InternalIP", "address": args.node_ip})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with ApiClient.from_kubeconfig(args.kubeconfig) as client:
        kubelet = FakeKubelet(client, heartbeat=args.heartbeat_interval,
                              field_selector=f"spec.nodeName={args.node}")
        while not stop.is_set():            # the API server may still be starting
            try:
                await kubelet.add_node(node)
                break
            except OSError:
                await asyncio.sleep(0.5)
        print(f"fake agent: node {args.node} registered", flush=True)
        await kubelet.run(stop)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
