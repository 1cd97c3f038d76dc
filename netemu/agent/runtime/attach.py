"""One attached client of a running container, in the runtime: channel frames in and out.

The frames are pods/exec's (api/execstream.py), so the kubelet passes an attach from the API
server to the runtime byte for byte. A container with a held stdio (stdio.ContainerIO: started
with stdin or tty) gets the client's input and resizes, and sends it its output as it comes. Any
other container (no stdin: a server, a built-in app) has only its output to give: the client
follows its log file from the moment it attached (kubectl attach without -i). Input to a
container without stdin is dropped, as containerd's attach drops it.

The session ends as containerd's does: when the container's output is over (then the error
channel says Success, which ends kubectl), when the client leaves, or when the client's stdin
ends on a container without stdinOnce (the client detaches; the container runs on).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Awaitable

from netemu.agent.runtime.stdio import ContainerIO
from netemu.api import execstream as xs

MAX_BEHIND = 4 * 1024 * 1024     # output a client may leave unread before it is dropped
LOG_POLL = 0.2


class AttachSession:
    def __init__(self, opts: xs.ExecOptions, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.opts, self.reader, self.writer = opts, reader, writer

    def send(self, channel: int, data: bytes) -> None:
        """Output the client asked for (a terminal's is all stdout); a client too far behind is cut."""
        wanted = self.opts.stdout if channel == xs.STDOUT else self.opts.stderr if channel == xs.STDERR else True
        if not wanted or self.writer.is_closing():
            return
        if self.writer.transport.get_write_buffer_size() > MAX_BEHIND:
            self.writer.close()
            return
        self.writer.write(xs.frame(channel, data))

    def _end(self, ended: bool) -> None:
        """The error channel's Success when the container's output is over or the client detached."""
        if ended:
            self.send(xs.ERROR, json.dumps(xs.exit_status(0)).encode())

    async def run(self, io: ContainerIO) -> None:
        use_stdin = self.opts.stdin and not io.stdin_closed
        io.listeners.add(self.send)
        inputs = asyncio.ensure_future(self._inputs(io, use_stdin))
        try:
            await asyncio.wait([io.ended, inputs], return_when=asyncio.FIRST_COMPLETED)
        finally:
            io.listeners.discard(self.send)
            inputs.cancel()
        detached = inputs.done() and not inputs.cancelled() and inputs.result()
        if use_stdin and io.stdin_once:
            io.close_stdin()
        self._end(io.ended.done() or detached)

    async def _inputs(self, io: ContainerIO, use_stdin: bool) -> bool:
        """Frames until the client leaves (False) or detaches by ending its stdin (True)."""
        while (got := await xs.read_frame(self.reader)) is not None:
            channel, data = got
            if channel == xs.STDIN and use_stdin:
                await io.write(data)
            elif channel == xs.RESIZE:
                try:
                    io.resize(*xs.terminal_size(data))
                except xs.ExecError:
                    pass
            elif channel == xs.CLOSE and data[:1] == bytes([xs.STDIN]) and use_stdin:
                if not io.stdin_once:
                    return True
                if not io.tty:
                    io.close_stdin()
        return False

    async def follow_log(self, log_path: str, exited: Awaitable) -> None:
        """A container without a held stdio: its log from now on, until it exits or the client leaves."""
        offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        done = asyncio.ensure_future(exited)
        gone = asyncio.ensure_future(self._drain_inputs())
        try:
            while not (done.done() or gone.done() or self.writer.is_closing()):
                await asyncio.wait([done, gone], timeout=LOG_POLL)
                offset = self._more(log_path, offset)
        finally:
            gone.cancel()
        self._end(done.done())

    def _more(self, log_path: str, offset: int) -> int:
        try:
            with open(log_path, "rb") as f:
                if os.fstat(f.fileno()).st_size < offset:      # rotated: start again
                    offset = 0
                f.seek(offset)
                data = f.read(xs.MAX_FRAME)
        except OSError:
            return offset
        if data:
            self.send(xs.STDOUT, data)
        return offset + len(data)

    async def _drain_inputs(self) -> None:
        while await xs.read_frame(self.reader) is not None:
            pass


async def attach(container, opts: xs.ExecOptions, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Attach a client to a running container of this runtime (a ProcessContainer or a
    BuiltinContainer) until the session ends."""
    session = AttachSession(opts, reader, writer)
    io = getattr(container, "io", None)
    if io is not None:
        await session.run(io)
    else:
        await session.follow_log(container.log_path, container.wait())
