"""pods/exec and pods/attach streams: the options, the channels and the final Status, shared by
the API server (which speaks WebSocket ``v5.channel.k8s.io`` to kubectl), the kubelet (which runs
an exec's command in the pod) and the container runtime (which holds an attached container's
stdio). Pure.

kubectl 1.30+ execs over a WebSocket first (client-go's remotecommand.NewWebSocketExecutor offers
only ``v5.channel.k8s.io``; SPDY is its fallback when the upgrade fails). Each binary message's
first byte is its channel: 0 stdin, 1 stdout, 2 stderr, 3 the error channel (one
metav1.Status when the command is over: Success, or Failure with reason NonZeroExitCode and
the exit code as a cause, which kubectl turns into its own exit code), 4 terminal resize
(``{"Width", "Height"}``), and v5's 255 CLOSE whose one data byte names the channel the client
closed (stdin at its EOF).

Between the API server and the kubelet the same channels travel as length-prefixed frames
(``frame``/``read_frame``) on the upgraded TCP connection to the kubelet's port 10250.
"""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass
from typing import Mapping, Sequence

PROTOCOL_V5 = "v5.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_HEAD = struct.Struct(">BI")
MAX_FRAME = 1 << 20


class ExecError(ValueError):
    """Bad exec options: the request's answer is 400 with this text."""


@dataclass(frozen=True)
class ExecOptions:
    command: tuple[str, ...]
    container: str | None = None
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False

    def query(self) -> list[tuple[str, str]]:
        """The options as query pairs again (what the API server passes to the kubelet)."""
        out = [("command", c) for c in self.command]
        if self.container:
            out.append(("container", self.container))
        out += [(k, "true" if getattr(self, k) else "false") for k in ("stdin", "stdout", "stderr", "tty")]
        return out


def _flag(values: Sequence[str], default: bool) -> bool:
    if not values:
        return default
    return values[-1].lower() in ("true", "1")


def parse_options(query: Mapping[str, Sequence[str]]) -> ExecOptions:
    """upstream's PodExecOptions from the query (``command`` repeated); ExecError when there
    is no command or no stream at all, as the API server's validation says it."""
    command = tuple(str(c) for c in query.get("command") or ())
    if not command:
        raise ExecError("you must specify at least 1 command")
    return _stream_options(command, query)


def parse_attach_options(query: Mapping[str, Sequence[str]]) -> ExecOptions:
    """upstream's PodAttachOptions from the query: the streams and the container, no command
    (an attach joins the container's own process)."""
    return _stream_options((), query)


def _stream_options(command: tuple[str, ...], query: Mapping[str, Sequence[str]]) -> ExecOptions:
    opts = ExecOptions(command, (query.get("container") or [None])[-1] or None,
                       _flag(query.get("stdin") or (), False), _flag(query.get("stdout") or (), True),
                       _flag(query.get("stderr") or (), True), _flag(query.get("tty") or (), False))
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise ExecError("you must specify at least one of stdin, stdout, stderr")
    if opts.tty and opts.stderr:       # a terminal has one output: stderr goes with stdout
        opts = ExecOptions(opts.command, opts.container, opts.stdin, opts.stdout, False, True)
    return opts


def terminal_size(data: bytes) -> tuple[int, int]:
    """A resize message (channel 4: ``{"Width": W, "Height": H}``) as (rows, columns);
    ExecError for anything else."""
    try:
        size = json.loads(data)
        rows, cols = int(size.get("Height", 0)), int(size.get("Width", 0))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExecError(f"bad terminal size {data[:80]!r}: {exc}") from None
    if not (0 <= rows < 65536 and 0 <= cols < 65536):
        raise ExecError(f"terminal size {cols}x{rows} out of range")
    return rows, cols


def exit_status(code: int, command: Sequence[str] = ()) -> dict:
    """The error channel's Status for an exit code (upstream's kubelet wording)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: error executing command {list(command)}, "
                       f"exit code {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure_status(message: str) -> dict:
    """The error channel's Status when the command could not run at all."""
    return {"metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500, "message": message}


def frame(channel: int, data: bytes = b"") -> bytes:
    return _HEAD.pack(channel, len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """The next (channel, data), or None at the end of the connection."""
    try:
        head = await reader.readexactly(_HEAD.size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    channel, size = _HEAD.unpack(head)
    if size > MAX_FRAME:
        raise ExecError(f"frame of {size} bytes is over the {MAX_FRAME} limit")
    try:
        return channel, await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
