"""Waiting for the cluster: the API server answering, then every node Ready (polled via the API).

``node_ready`` and ``readiness`` are pure; ``wait_nodes`` polls and reports progress, and gives
up early when a process it depends on has died (``alive`` says which one, by name).
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from netemu.api.kinds import by_kind_name


class NotReady(RuntimeError):
    """The cluster did not become ready; the message says what is missing."""


def node_ready(node: dict) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def registered(nodes: list[dict], expected: list[str]) -> int:
    """How many of the expected nodes have a Node object (their kubelet registered). Pure."""
    names = {n["metadata"]["name"] for n in nodes}
    return sum(1 for e in expected if e in names)


def stage_times(timings: dict[str, float], stages: tuple[str, ...], end: float) -> list[tuple[str, float]]:
    """Seconds each stage took, from the supervisor's phase start times (seconds after it
    started) and the time it ended; stages that did not happen are left out. Pure."""
    started = [(s, timings[s]) for s in stages if s in timings]
    ends = [t for _, t in started[1:]] + [end]
    return [(s, round(max(0.0, e - t), 2)) for (s, t), e in zip(started, ends)]


def pod_routes(nodes: list[dict]) -> dict[str, str]:
    """{podCIDR: InternalIP} of the nodes that have both. Pure."""
    out = {}
    for n in nodes:
        cidr = (n.get("spec") or {}).get("podCIDR")
        ip = next((a.get("address") for a in (n.get("status") or {}).get("addresses") or []
                   if a.get("type") == "InternalIP"), None)
        if cidr and ip:
            out[cidr] = ip
    return out


def readiness(nodes: list[dict], expected: list[str]) -> tuple[list[str], list[str]]:
    """(ready, not yet ready) among the expected node names."""
    ready = {n["metadata"]["name"] for n in nodes if node_ready(n)}
    return [e for e in expected if e in ready], [e for e in expected if e not in ready]


async def wait_nodes(kubeconfig: str, expected: list[str], timeout: float,
                     progress: Callable[[int, int, list[str], int], None],
                     dead: Callable[[], str | None]) -> list[dict]:
    """Poll until every expected node is Ready (returns the Nodes then); raise NotReady on
    timeout or a dead process. ``progress(ready, total, not ready names, registered)`` after
    each poll."""
    from netemu.client import ApiClient

    nodes_rt = by_kind_name("Node")
    deadline = time.monotonic() + timeout
    last_error = "API server not answering yet"
    async with ApiClient.from_kubeconfig(kubeconfig) as client:
        client.timeout = 5
        while True:
            gone = dead()
            if gone:
                raise NotReady(gone)
            try:
                listed = await client.list(nodes_rt)
                ready, waiting = readiness(listed.items, expected)
                progress(len(ready), len(expected), waiting, registered(listed.items, expected))
                if not waiting:
                    return listed.items
                last_error = f"nodes not Ready: {', '.join(waiting)}"
            except Exception as exc:  # connection refused while the API server starts, TLS, 5xx
                last_error = f"API server: {type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise NotReady(f"timed out after {timeout:.0f}s: {last_error}")
            await asyncio.sleep(0.2)
