"""Container log files, laid out like the kubelet's /var/log/pods.

``<root>/<namespace>_<pod>_<uid>/<container>/<restartCount>.log``: one file per container run,
so ``logs --previous`` has something to read and a restart never truncates the last run's log.
Built-in apps write Go ``log`` style lines ("2006/01/02 15:04:05 msg"), like agnhost does;
process containers' stdout and stderr go to the same file, as the kubelet's do.
"""

from __future__ import annotations

import os
import time


def container_log_path(root: str, namespace: str, pod: str, uid: str, container: str,
                       restart_count: int = 0) -> str:
    for part in (namespace, pod, uid, container):
        if not part or "/" in part or part in (".", ".."):
            raise ValueError(f"bad name for a log path: {part!r}")
    return os.path.join(root, f"{namespace}_{pod}_{uid}", container, f"{restart_count}.log")


class LogFile:
    """Appends lines to one log file; opened per write, so 1000 idle pods hold no descriptor."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "a").close()

    def write(self, message: str) -> None:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        try:
            with open(self.path, "a") as f:
                f.write(f"{stamp} {message}\n")
        except OSError:
            pass  # a full or removed log directory must not break the pod's traffic
