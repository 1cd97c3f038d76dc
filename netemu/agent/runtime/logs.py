"""Container log files, laid out like the kubelet's /var/log/pods.

``<root>/<namespace>_<pod>_<uid>/<container>/<restartCount>.log``: one file per container run,
so ``logs --previous`` has something to read and a restart never truncates the last run's log.
Built-in apps write Go ``log`` style lines ("2006/01/02 15:04:05 msg"), like agnhost does;
process containers' stdout and stderr go to the same file, as the kubelet's do.
"""

from __future__ import annotations

import asyncio
import os
import time


def container_log_path(root: str, namespace: str, pod: str, uid: str, container: str,
                       restart_count: int = 0) -> str:
    for part in (namespace, pod, uid, container):
        if not part or "/" in part or part in (".", ".."):
            raise ValueError(f"bad name for a log path: {part!r}")
    return os.path.join(root, f"{namespace}_{pod}_{uid}", container, f"{restart_count}.log")


MAX_BYTES = 10 * 1024 * 1024  # the kubelet's default containerLogMaxSize
FLUSH_AFTER = 0.2              # seconds a line may wait in memory
FLUSH_LINES = 256


class LogFile:
    """Appends Go-``log``-style lines to one container log file.

    Why buffered: built-in apps log every request as agnhost does, on the agent's loop; a
    traffic experiment makes thousands a second. Lines wait in memory up to FLUSH_AFTER seconds
    (or FLUSH_LINES lines) and are written with one open/append/close, so 1000 idle pods hold
    no file descriptor. Past MAX_BYTES the file is rotated to ``<path>.1`` (one old file kept),
    so an endless experiment cannot fill the disk. Without a running loop it writes at once.
    """

    __slots__ = ("path", "pending", "timer")

    def __init__(self, path: str):
        self.path = path
        self.pending: list[str] = []
        self.timer = None
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "a").close()

    def write(self, message: str) -> None:
        self.pending.append(f"{time.strftime('%Y/%m/%d %H:%M:%S')} {message}\n")
        if len(self.pending) >= FLUSH_LINES:
            self.flush()
        elif self.timer is None:
            try:
                self.timer = asyncio.get_running_loop().call_later(FLUSH_AFTER, self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.pending:
            return
        data, self.pending = "".join(self.pending), []
        try:
            with open(self.path, "a") as f:
                f.write(data)
                size = f.tell()
            if size > MAX_BYTES:
                os.replace(self.path, self.path + ".1")
                open(self.path, "a").close()
        except OSError:
            pass  # a full or removed log directory must not break the pod's traffic
