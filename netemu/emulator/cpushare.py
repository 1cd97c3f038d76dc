"""The control plane's share of the box's CPUs when every node is busy.

On a real cluster the control plane has a machine of its own. Here N nodes and the control
plane share one box, and the kernel's scheduler gives every *session* an equal share when the
CPUs are saturated (autogroup, on by default in Debian's and Ubuntu's kernels): each node's
supervisor starts a session of its own (netemu/agent/zygote.py), and so does the API server.
With 100 nodes busy (a 1000-pod burst: 100 kube-proxies restoring their rules) the API server,
the scheduler and the controllers then get 1/101 of the box, and scheduling became the slowest
stage of the pods' path (measured: docs/benchmarks.md, issue 17).

So the control plane's session is weighted as all the nodes together (capped at nice -20,
worth ~87 nodes): under saturation it gets about half the box, as much as it asks for below
that, and nothing changes on an idle box. The nodes keep equal shares among themselves. With
autogroup off the same nice goes to the process's threads (per-thread weights then).

Pure part: :func:`nice_for` (the nice whose weight matches N nodes). Effects: :func:`favour`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# The kernel's sched_prio_to_weight (kernel/sched/core.c), nice -20 .. 19.
WEIGHTS = (88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916,
           9548, 7620, 6100, 4904, 3906, 3121, 2501, 1991, 1586, 1277,
           1024, 820, 655, 526, 423, 335, 272, 215, 172, 137,
           110, 87, 70, 56, 45, 36, 29, 23, 18, 15)
NICE_0 = 20                 # index of nice 0 in WEIGHTS

def nice_for(nodes: int) -> int:
    """The least favourable nice whose weight is at least ``nodes`` nice-0 sessions' together
    (0 for one node or none; -20 when even that is less)."""
    need = max(1, nodes) * WEIGHTS[NICE_0]
    for index in range(NICE_0, -1, -1):
        if WEIGHTS[index] >= need:
            return index - NICE_0
    return -NICE_0


def autogroup_enabled(proc: Path = Path("/proc")) -> bool:
    try:
        return (proc / "sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def favour(pid: int, nodes: int, proc: Path = Path("/proc")) -> int | None:
    """Give ``pid``'s session (or, without autogroup, its threads) the weight of ``nodes``
    nodes; returns the nice set, None when the kernel refused (logged: the cluster still works,
    only its control plane may starve under load)."""
    nice = nice_for(nodes)
    try:
        if autogroup_enabled(proc):
            (proc / str(pid) / "autogroup").write_text(f"{nice}\n")
        else:
            for task in (proc / str(pid) / "task").iterdir():
                os.setpriority(os.PRIO_PROCESS, int(task.name), nice)
    except OSError as exc:
        log.warning("could not favour the control plane's CPU share (pid %d, nice %d): %s", pid, nice, exc)
        return None
    return nice


def current(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The nice of ``pid``'s autogroup (autogroup on) or of the process (off); None if gone."""
    try:
        if autogroup_enabled(proc):
            return int((proc / str(pid) / "autogroup").read_text().split("nice")[1])
        return os.getpriority(os.PRIO_PROCESS, pid)
    except (OSError, IndexError, ValueError):
        return None
