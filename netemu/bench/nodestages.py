"""Each node's bring-up stage by stage, as a watch on Nodes sees it while `netemu up` runs.

The bring-up benchmark (bringup.py) reports the supervisor's phases (hosts, control plane,
node processes, registered, Ready) as wall times for all nodes at once; this says how the
nodes spread over them: when each Node object appeared (its kubelet registered), when it got
its podCIDR (the nodeipam controller's PATCH reached it) and when it turned Ready (the
kubelet set up the pod network and reported status). A node that registers early but waits
long for its podCIDR points at the controller or the API server; one that has its CIDR and is
slow to turn Ready points at the node's own processes.

The watcher runs in a thread of the benchmark: it waits for the cluster's kubeconfig, lists
and then watches Nodes (retrying while the API server is not up yet) until told to stop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

NODE_STAGES = ("registered", "cidr", "ready")


def node_marks(node: dict) -> list[str]:
    """The stages this Node object shows it has reached. Pure."""
    marks = ["registered"]
    if (node.get("spec") or {}).get("podCIDR"):
        marks.append("cidr")
    conds = (node.get("status") or {}).get("conditions") or []
    if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
        marks.append("ready")
    return marks


def summary(times: dict[str, dict[str, float]], start: float, skip: set[str] = frozenset()) -> dict:
    """Per stage: when the first and the last node reached it (seconds after ``start``) and
    p50/max of the time each node spent since its previous stage. Nodes in ``skip`` (the
    control plane) are left out. Pure."""
    out = {}
    for i, stage in enumerate(NODE_STAGES):
        ends, deltas = [], []
        for name, t in times.items():
            if name in skip or stage not in t:
                continue
            ends.append(t[stage] - start)
            if i:
                prev = t.get(NODE_STAGES[i - 1])
                if prev is not None:
                    deltas.append(t[stage] - prev)
        if not ends:
            continue
        row = {"first_at": round(min(ends), 2), "last_at": round(max(ends), 2), "nodes": len(ends)}
        if deltas:
            deltas.sort()
            row.update(p50=round(deltas[len(deltas) // 2], 2), max=round(deltas[-1], 2))
        out[stage] = row
    return out


class NodeWatcher:
    """A thread that records when each Node reached each stage (monotonic seconds)."""

    def __init__(self, kubeconfig: Path):
        self.kubeconfig = kubeconfig
        self.times: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> "NodeWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _mark(self, node: dict) -> None:
        name = (node.get("metadata") or {}).get("name")
        if name:
            now = time.monotonic()
            for stage in node_marks(node):
                self.times.setdefault(name, {}).setdefault(stage, now)

    async def _run(self) -> None:
        from netemu.api.kinds import by_kind_name
        from netemu.client import ApiClient
        nodes_rt = by_kind_name("Node")
        while not self._stop.is_set():
            if not self.kubeconfig.exists():
                await asyncio.sleep(0.1)
                continue
            try:
                async with ApiClient.from_kubeconfig(str(self.kubeconfig), timeout=5) as api:
                    listed = await api.list(nodes_rt)
                    for node in listed.items:
                        self._mark(node)
                    watch = asyncio.ensure_future(self._watch(api, nodes_rt, listed.resource_version))
                    while not self._stop.is_set() and not watch.done():
                        await asyncio.sleep(0.1)
                    watch.cancel()
                    await asyncio.gather(watch, return_exceptions=True)
            except Exception:  # the API server not answering yet, a kubeconfig half written, a 410
                await asyncio.sleep(0.2)

    async def _watch(self, api, nodes_rt, rv: str) -> None:
        async for kind, node in api.watch(nodes_rt, resource_version=rv, timeout_seconds=600):
            if kind in ("ADDED", "MODIFIED"):
                self._mark(node)


PROXY_METRICS = "http://127.0.0.1:10249/metrics"        # kube-proxy's default, in the node's namespace
SYNC_SERIES = ("kubeproxy_sync_partial_proxy_rules_duration_seconds", "kubeproxy_sync_full_proxy_rules_duration_seconds")


def sync_counts(metrics_text: str) -> dict[str, float]:
    """{series_count/series_sum: value} of kube-proxy's partial and full sync histograms. Pure."""
    out = {}
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        for series in SYNC_SERIES:
            if name in (series + "_count", series + "_sum"):
                out[name] = float(value)
    return out


def proxy_syncs(node_pids: dict[str, int]) -> dict[str, dict[str, float]]:
    """Each node's kube-proxy sync counters, read from its /metrics inside the node's network
    namespace (nsenter + curl: argv, no shell); nodes that do not answer are left out."""
    import subprocess
    out = {}
    for name, pid in node_pids.items():
        try:
            text = subprocess.run(["nsenter", "-t", str(pid), "-n", "curl", "-s", "-m", "5", PROXY_METRICS],
                                  capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        counts = sync_counts(text)
        if counts:
            out[name] = counts
    return out


def sync_delta(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict:
    """What the nodes' kube-proxies did between two readings: syncs per node (p50, max), all
    syncs, their total and mean seconds (partial and full together). Pure."""
    per_node, seconds = [], 0.0
    for name, now in after.items():
        was = before.get(name, {})
        n = sum(now.get(s + "_count", 0) - was.get(s + "_count", 0) for s in SYNC_SERIES)
        seconds += sum(now.get(s + "_sum", 0) - was.get(s + "_sum", 0) for s in SYNC_SERIES)
        per_node.append(n)
    if not per_node:
        return {}
    per_node.sort()
    total = sum(per_node)
    return {"nodes": len(per_node), "syncs_total": int(total), "syncs_per_node_p50": per_node[len(per_node) // 2],
            "syncs_per_node_max": per_node[-1], "sync_seconds_total": round(seconds, 1),
            "sync_seconds_mean": round(seconds / total, 3) if total else None}
