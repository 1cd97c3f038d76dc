"""The stdio of a container started with ``stdin: true`` or ``tty: true``, held by the runtime.

Why the runtime holds it: ``kubectl run -it`` and ``kubectl attach`` join the container's own
process, which was started long before anyone attached. As containerd's shim does, the runtime
keeps the container's stdin (a pipe, or the master side of a pseudo-terminal whose slave is
the process's controlling terminal) and reads its output itself: every byte goes to the
container's log file (``kubectl logs`` keeps working) and to each attached client at that
moment. Nothing is kept for a client that attaches later (upstream's prompt is lost the same
way: kubectl says "If you don't see a command prompt, try pressing enter").

``stdinOnce``, as containerd's attach: the first attached client that ends its stdin closes
the container's stdin (a pipe gets EOF); with a terminal the container keeps its terminal
but no later client's input reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import pty
import struct
import termios
from typing import Callable

from netemu.api import execstream as xs

log = logging.getLogger(__name__)
READ_SIZE = 32 * 1024
Listener = Callable[[int, bytes], None]       # (channel, data): an attached client's output


def set_winsize(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ on a terminal: the process on it gets SIGWINCH and sees the new size."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def make_controlling_tty() -> None:
    """In the forked child (after setsid): its stdin, a terminal slave, becomes the
    controlling terminal of its session, as a runtime's console does."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class ContainerIO:
    """``child_files`` for the process's start, ``started`` once it runs; then ``attach``
    listeners, ``write``, ``close_stdin``, ``resize``; ``ended`` is done when the output is over."""

    def __init__(self, log_path: str, stdin: bool, tty: bool, stdin_once: bool = False):
        self.log_path, self.stdin, self.tty, self.stdin_once = log_path, stdin, tty, stdin_once
        self.stdin_closed = not stdin
        self.master: int | None = None
        self._slave: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._log = None
        self.listeners: set[Listener] = set()
        self.ended: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pumps: list[asyncio.Future] = []

    def child_files(self) -> dict:
        """stdin/stdout/stderr for create_subprocess_exec: a new terminal's slave, or pipes."""
        if self.tty:
            self.master, self._slave = pty.openpty()
            return {"stdin": self._slave, "stdout": self._slave, "stderr": self._slave}
        pipe = asyncio.subprocess.PIPE
        return {"stdin": pipe if self.stdin else asyncio.subprocess.DEVNULL, "stdout": pipe, "stderr": pipe}

    def abandon(self) -> None:
        """The process did not start: nothing of ours stays open."""
        for fd in (self._slave, self.master):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._slave = self.master = None

    async def started(self, proc: asyncio.subprocess.Process) -> None:
        """The process runs: our copy of the slave goes (its end of output is the process's end)
        and the output is read from now on."""
        self._proc = proc
        self._log = open(self.log_path, "ab", buffering=0)
        loop = asyncio.get_running_loop()
        if self.tty:
            os.close(self._slave)
            self._slave = None
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                         os.fdopen(self.master, "rb", buffering=0, closefd=False))
            self._pumps = [asyncio.ensure_future(self._pump(reader, xs.STDOUT))]
        else:
            self._pumps = [asyncio.ensure_future(self._pump(proc.stdout, xs.STDOUT)),
                           asyncio.ensure_future(self._pump(proc.stderr, xs.STDERR))]
        asyncio.ensure_future(self._finish())

    async def _pump(self, reader: asyncio.StreamReader, channel: int) -> None:
        while True:
            try:
                data = await reader.read(READ_SIZE)
            except OSError:               # EIO: every holder of the terminal's slave is gone
                return
            if not data:
                return
            with contextlib.suppress(OSError):
                self._log.write(data)
            for listener in list(self.listeners):
                listener(channel, data)

    async def _finish(self) -> None:
        await asyncio.gather(*self._pumps, return_exceptions=True)
        with contextlib.suppress(OSError):
            self._log.close()
        self.stdin_closed = True
        self.abandon()
        if not self.ended.done():
            self.ended.set_result(None)

    async def write(self, data: bytes) -> None:
        """Input from an attached client (dropped once the container's stdin is closed)."""
        if self.stdin_closed or not data:
            return
        if self.master is not None:
            await _write_all(self.master, data)
        elif self._proc is not None and self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.write(data)
            with contextlib.suppress(ConnectionError, OSError):
                await self._proc.stdin.drain()

    def close_stdin(self) -> None:
        """stdinOnce's end of input: a pipe gets EOF; a terminal stays, refusing later input."""
        self.stdin_closed = True
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()

    def resize(self, rows: int, cols: int) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                set_winsize(self.master, rows, cols)


async def _write_all(fd: int, data: bytes) -> None:
    """Write to a non-blocking terminal master, waiting while its input queue is full."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            await asyncio.sleep(0.01)
        except OSError:
            return
