"""Will a cluster fit in this machine's memory? ``netemu up`` asks before it makes anything.

The costs are measured, not guessed: PSS (each shared page divided among the processes that
map it, so sums are real totals) of a running cluster, from ``python -m netemu.bench.bringup``
(docs/benchmarks.md, "Bring-up at scale"): per node, every process in the node's namespace (its
supervisor, runtime, kubelet and kube-proxy forked from the launcher template); fixed, the API
server with its controllers, the cluster supervisor with Mininet, the template. They are
re-measured when the node's processes change. A cluster whose estimate exceeds what the kernel
reports available (MemAvailable) is refused with the numbers; ``--ignore-memory`` overrides.
"""

from __future__ import annotations

# measured 2026-12-06 at 30 nodes, no pods, 5 s after Ready (docs/benchmarks.md "Per-node
# memory: the template's shared pages"): 32.2 MB per node (kube-proxy 11.0, kubelet 10.3,
# runtime 7.3, node supervisor 3.5; the same run's main before those cuts: 37.4); ~0.7 MB more
# once settled. At 100 nodes before the cuts: API server 177 MB, cluster supervisor 55 MB
# (44 MB after), template 6 MB.
PER_NODE_MB = 32.2
FIXED_MB = 160.0            # API server's base (~100), cluster supervisor with Mininet, template
API_PER_NODE_MB = 1.0       # the API server's growth per node (watches, connections, objects)


def estimate_mb(nodes: int) -> float:
    """Memory a cluster of ``nodes`` workers needs once every node is Ready (no pods). Pure."""
    return FIXED_MB + nodes * (PER_NODE_MB + API_PER_NODE_MB)


def refusal(nodes: int, available_mb: float) -> str | None:
    """The message refusing ``nodes`` with ``available_mb`` free, or None when it fits. Pure."""
    need = estimate_mb(nodes)
    if need <= available_mb:
        return None
    fits = max(0, int((available_mb - FIXED_MB) / (PER_NODE_MB + API_PER_NODE_MB)))
    return (f"--nodes {nodes} needs about {need:.0f} MB ({PER_NODE_MB + API_PER_NODE_MB:.0f} MB per node, "
            f"measured, + {FIXED_MB:.0f} MB for the control plane) but this machine has {available_mb:.0f} MB "
            f"available: at most about {fits} nodes fit (--ignore-memory starts it anyway)")


def available_mb(meminfo: str | None = None) -> float:
    """MemAvailable from /proc/meminfo, in MB."""
    if meminfo is None:
        with open("/proc/meminfo") as f:
            meminfo = f.read()
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise ValueError("no MemAvailable in /proc/meminfo")
