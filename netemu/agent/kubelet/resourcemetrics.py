"""The kubelet's ``/metrics/resource``: the node's and each container's CPU and memory, in the
Prometheus text format and names of upstream's kubelet (pkg/kubelet/metrics/collectors/
resource_metrics.go), which metrics-server scrapes and the API server's metrics.k8s.io reads.

The node's usage is its process tree (the node supervisor and everything below it: kubelet,
kube-proxy, the runtime, process containers), the containers' from the runtime's
ListContainerStats (upstream: the CRI's ListContainerStats). CPU is cumulative
(``*_cpu_usage_seconds_total``, a counter), memory a gauge (``*_memory_working_set_bytes``);
every sample carries the time it was taken, in milliseconds. ``render`` is pure.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from netemu.agent.runtime import stats
from netemu.api.meta import Obj

_HELP = {
    "container_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the container in core-seconds"),
    "container_memory_working_set_bytes": ("gauge", "Current working set of the container in bytes"),
    "node_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the node in core-seconds"),
    "node_memory_working_set_bytes": ("gauge", "Current working set of the node in bytes"),
    "pod_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the pod in core-seconds"),
    "pod_memory_working_set_bytes": ("gauge", "Current working set of the pod in bytes"),
}


@dataclass(frozen=True)
class ContainerSample:
    namespace: str
    pod: str
    container: str
    cpu_ns: int
    memory_bytes: int


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(node: stats.Usage | None, containers: list[ContainerSample], now: float) -> str:
    """The exposition text (metrics in upstream's order, samples sorted by their labels)."""
    ms = int(now * 1000)
    series: dict[str, list[tuple[str, float]]] = {name: [] for name in _HELP}
    pods: dict[tuple[str, str], list[int]] = {}
    for c in sorted(containers, key=lambda c: (c.namespace, c.pod, c.container)):
        labels = f'{{container="{_label(c.container)}",namespace="{_label(c.namespace)}",pod="{_label(c.pod)}"}}'
        series["container_cpu_usage_seconds_total"].append((labels, c.cpu_ns / 1e9))
        series["container_memory_working_set_bytes"].append((labels, float(c.memory_bytes)))
        total = pods.setdefault((c.namespace, c.pod), [0, 0])
        total[0] += c.cpu_ns
        total[1] += c.memory_bytes
    for (ns, pod), (cpu, mem) in pods.items():
        labels = f'{{namespace="{_label(ns)}",pod="{_label(pod)}"}}'
        series["pod_cpu_usage_seconds_total"].append((labels, cpu / 1e9))
        series["pod_memory_working_set_bytes"].append((labels, float(mem)))
    if node is not None:
        series["node_cpu_usage_seconds_total"].append(("", node.cpu_ns / 1e9))
        series["node_memory_working_set_bytes"].append(("", float(node.memory_bytes)))
    lines = []
    for name, samples in series.items():
        kind, text = _HELP[name]
        lines += [f"# HELP {name} [STABLE] {text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{labels} {value!r} {ms}" for labels, value in samples]
    lines += ["# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise",
              "# TYPE scrape_error gauge", f"scrape_error {0 if node is not None else 1}"]
    return "\n".join(lines) + "\n"


async def collect(list_stats: Callable[[], Awaitable[dict]] | None, pod_by_uid: Callable[[str], Obj | None],
                  node_root: int) -> str:
    """Measure now: the node's process tree rooted at ``node_root``, the containers through
    ``list_stats`` (the runtime's ListContainerStats; None: a runtime without stats)."""
    node = stats.tree_usage(stats.snapshot(), node_root)
    samples = []
    listed = await list_stats() if list_stats is not None else {"stats": []}
    for entry in listed.get("stats") or []:
        pod = pod_by_uid(entry.get("pod_uid", ""))
        if pod is None:
            continue
        md = pod.get("metadata") or {}
        samples.append(ContainerSample(md.get("namespace", "default"), md.get("name", ""), entry.get("name", ""),
                                       int(entry.get("cpu_ns") or 0), int(entry.get("memory_bytes") or 0)))
    return render(node, samples, time.time())


def node_root_pid(separate_runtime: bool) -> int:
    """The node's topmost process: the node supervisor above the kubelet when the components
    run as processes of their own, else the agent itself."""
    return os.getppid() if separate_runtime else os.getpid()
