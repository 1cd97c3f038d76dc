"""CPU and memory of process trees, read from /proc: what cAdvisor reads from a container's
cgroup (``cpuacct.usage``, the memory working set) for the kubelet's resource metrics.

A netemu node is a network namespace, not a cgroup: its processes are the descendants of its
node supervisor (kubelet, kube-proxy, the container runtime, process containers), a process
container's are the descendants of its first process. So usage is summed over a process tree:
CPU as cumulative user+system time (``/proc/PID/stat`` utime+stime, plus what reaped children
used: cutime+cstime, as a cgroup keeps the time of processes that exited), memory as resident
set size, or rather its proportional share (``Pss`` of /proc/PID/smaps_rollup, when readable):
a node's processes are forked from one template and share most of their pages, which RSS
would count once per process, a cgroup's working set once. ``parse_stat`` and ``tree_usage``
are pure (the memory reader is injectable).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    cpu_ticks: int          # utime + stime + cutime + cstime, in clock ticks
    rss_pages: int


@dataclass(frozen=True)
class Usage:
    cpu_ns: int             # cumulative CPU time (container_cpu_usage_seconds_total * 1e9)
    memory_bytes: int       # resident memory now (the working set)


def parse_stat(text: str) -> ProcStat:
    """One ``/proc/PID/stat`` line (the command name may hold spaces and parentheses)."""
    head, _, rest = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = rest.split()
    # after ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14) ... rss(21)
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ProcStat(pid, int(fields[1]), ticks, int(fields[21]))


def snapshot(proc: str = "/proc") -> dict[int, ProcStat]:
    """Every process's stat now (processes that vanish while read are left out)."""
    out: dict[int, ProcStat] = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat") as f:
                out[int(name)] = parse_stat(f.read())
        except (OSError, ValueError, IndexError):
            continue
    return out


def children_of(procs: dict[int, ProcStat]) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for st in procs.values():
        kids.setdefault(st.ppid, []).append(st.pid)
    return kids


def pss_bytes(pid: int, proc: str = "/proc") -> int | None:
    """The process's proportional set size (None when smaps_rollup cannot be read)."""
    try:
        with open(f"{proc}/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_usage(procs: dict[int, ProcStat], root: int, kids: dict[int, list[int]] | None = None,
               memory_of: Callable[[int], int | None] = pss_bytes) -> Usage | None:
    """Usage of ``root`` and all its descendants; None when ``root`` is not running.
    ``memory_of(pid)``: its memory in bytes (None: its resident pages are used)."""
    if root not in procs:
        return None
    kids = children_of(procs) if kids is None else kids
    ticks = memory = 0
    todo, seen = [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in procs:
            continue
        seen.add(pid)
        ticks += procs[pid].cpu_ticks
        own = memory_of(pid)
        memory += own if own is not None else procs[pid].rss_pages * PAGE_SIZE
        todo.extend(kids.get(pid, ()))
    return Usage(ticks * 1_000_000_000 // CLK_TCK, memory)
