"""Give a forked process its own name in ``ps``: the command line and the short name (comm).

A process forked from the launcher template (zygote.py) keeps the template's argv, so every
kubelet, kube-proxy and runtime of every node would read ``python -m netemu.agent.zygote ...``
in ``ps`` and in /proc/PID/cmdline, where ``netemu cleanup`` and users look for them. The
kernel shows /proc/PID/cmdline from the process's own argv memory (between ``arg_start`` and
``arg_end`` of /proc/PID/stat), so the title is written there, NUL-separated like a real argv
and NUL-padded; the template is started with spare room at the end of its argv for the
longest title (``ROOM_FLAG``). ``prctl(PR_SET_NAME)`` sets the 15-character comm that ``ps -e``
and ``top`` show. setproctitle does the same with more room; this is the part we need.
"""

from __future__ import annotations

import ctypes
import os

PR_SET_NAME = 15
ROOM_FLAG = "--title-room"      # the template's last argument: its value is spare argv space
ROOM = 192


def room_argv(room: int = ROOM) -> list[str]:
    """The template's trailing argv words that reserve ``room`` bytes for titles."""
    return [ROOM_FLAG, "." * room]


def _arg_area(pid: str = "self") -> tuple[int, int]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    # /proc/PID/stat fields 48 and 49 (1-based; after "pid (comm)" they are at 45 and 46)
    return int(fields[45]), int(fields[46])


def set_title(words: list[str], comm: str | None = None) -> bool:
    """Make ``ps`` show ``words`` as this process's command line (cut to the room there is);
    False when the kernel does not expose the argv area (nothing changed then)."""
    _set_comm(comm or os.path.basename(words[0]))
    try:
        start, end = _arg_area()
    except (OSError, IndexError, ValueError):
        return False
    size = end - start
    if size <= 1:
        return False
    data = b"\0".join(w.encode() for w in words)[:size - 1]
    buf = data + b"\0" * (size - len(data))
    ctypes.memmove(start, buf, size)
    return True


def _set_comm(name: str) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass
