"""The state dir's files: cluster.json (what runs, for every other command), the supervisor's
status.json (bring-up progress for ``netemu up``), and the locks that refuse a second cluster on
the same state dir or node network.

Files are replaced atomically (write + rename) so a reader never sees half a JSON document.
Locks are ``flock``s held by the supervisor process: they vanish with it, even after kill -9.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path

DEFAULT_STATE_DIR = "/var/lib/netemu/default"
LOCK_DIR = "/run/netemu/locks"
CLUSTER_FILE = "cluster.json"
STATUS_FILE = "status.json"
LOCK_FILE = "up.lock"
CONTROL_SOCKET = "control.sock"


class Busy(RuntimeError):
    """Another cluster holds the lock (state dir or node network)."""


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """The document, or None when missing or unreadable (a crashed writer is not an error here)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def network_lock_path(node_network: str) -> Path:
    return Path(LOCK_DIR) / ("net-" + node_network.replace("/", "_") + ".lock")


def try_lock(path: Path, what: str):
    """Open and flock ``path``; raise Busy naming the holder's pid when someone has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            raise Busy(f"{what} is in use by a running cluster (supervisor pid {holder}): `netemu down` it first") from None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def lock_cluster(state_dir: Path, node_network: str) -> list[int]:
    """Both locks, or neither: the state dir's, then the node network's (machine-wide)."""
    fds = [try_lock(state_dir / LOCK_FILE, f"state dir {state_dir}")]
    try:
        fds.append(try_lock(network_lock_path(node_network), f"node network {node_network}"))
    except BaseException:
        os.close(fds[0])
        raise
    return fds


def check_free(state_dir: Path, node_network: str) -> None:
    """Raise Busy if ``up`` would be refused; takes and drops the locks (for a fast, early error)."""
    for fd in lock_cluster(state_dir, node_network):
        os.close(fd)
