"""Forking a child that runs one function and never returns into its parent's code.

The launcher template forks node supervisors and they fork components (zygote.py,
nodesup.py): in the child, whatever happens, the parent's loop must not go on running, so the
child ends with ``os._exit`` (no atexit handlers, no flushing of the parent's buffers twice)
after printing any exception to its own log. ``to_log`` points stdout and stderr at a file.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable


def fork(child: Callable[[], int]) -> int:
    """The child's pid in the parent; in the child, ``child()``'s code as its exit status."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        code = child()
    except BaseException:  # whatever it was, it is the child's: log it, never return
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)


def to_log(path: str) -> None:
    """stdout and stderr (fds 1 and 2) append to ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
