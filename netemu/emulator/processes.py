"""Starting the cluster's processes in node namespaces, and stopping them by PID only.

Each process is ``nsenter --net=... -- argv`` (nsenter execs, so the PID we record is the
program's own), in a new session (a terminal's Ctrl-C reaches the supervisor only, which stops
the children in order), output appended to a log file in the state dir.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from netemu.emulator.state import cmdline, pid_alive


def start(argv: list[str], log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)


def matches(pid: int, *words: str) -> bool:
    """Is ``pid`` still the process we started (its cmdline has all ``words``)? A recycled PID
    of someone else's process never matches, so it is never signalled."""
    line = cmdline(pid)
    return bool(line) and all(any(w in part for part in line) for w in words)


def stop(pids: list[int], grace: float = 10.0) -> None:
    """SIGTERM each, wait up to ``grace`` seconds for all, then SIGKILL the rest (and reap)."""
    live = [p for p in pids if pid_alive(p)]
    for pid in live:
        _signal(pid, signal.SIGTERM)
    live = _wait_exited(live, grace, reap=True)
    for pid in live:
        _signal(pid, signal.SIGKILL)
    _reap(live)


def kill(pids: list[int], wait: float = 10.0) -> int:
    """SIGKILL (for cleanup after a crash); returns how many were signalled. Waits up to
    ``wait`` seconds until each has exited (a zombie has: its namespaces and sockets are
    gone), so a cleanup that returns has no process of the cluster still tearing down --
    on a loaded machine the exit of a big process takes a while after the signal."""
    signalled = []
    for pid in pids:
        if pid_alive(pid) and not _zombie(pid):
            _signal(pid, signal.SIGKILL)
            signalled.append(pid)
    _reap(pids)
    _wait_exited(signalled, wait, reap=False)    # a caller's Popen keeps its child's exit status to read
    return len(signalled)


def _wait_exited(pids: list[int], seconds: float, reap: bool) -> list[int]:
    """Wait up to ``seconds`` until each of ``pids`` has exited (a zombie has); those still
    running. ``reap``: collect our own children's exit status while waiting."""
    deadline = time.monotonic() + seconds
    live = list(pids)
    while live:
        if reap:
            _reap(live)
        live = [p for p in live if pid_alive(p) and not _zombie(p)]
        if not live or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return live


def running(pid) -> bool:
    """Alive and not a zombie (a child the supervisor has not reaped yet has exited all the same)."""
    return pid_alive(pid) and not _zombie(pid)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def _reap(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
