"""``python -m netemu.traffic.worker``: one generator process, talking JSON lines on stdio.

The parent (netemu.traffic.run) starts it in the client's network namespace (``ip netns exec
NS python -m netemu.traffic.worker``), so every socket it makes lives there.

Protocol: the parent writes one line, the Job as JSON; the worker answers ``{"type": "ready"}``
(or ``{"type": "error", "message": ...}`` for a job it refuses), waits for ``go``, then sends
``tick`` deltas (netemu.traffic.generator.Recorder) and finally one ``done``. A ``stop`` line,
SIGTERM, or the end of stdin (the parent died) ends the load early and still sends ``done``:
a cancelled run reports what it did.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from netemu.traffic.generator import Generator, Recorder
from netemu.traffic.spec import Job, SpecError


def _emit(msg: dict) -> None:
    sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _read_line(reader: asyncio.StreamReader) -> str:
    return (await reader.readline()).decode().strip()


async def main_async() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        job = Job.from_dict(json.loads(await _read_line(reader)))
        stop = asyncio.Event()
        gen = Generator(job, Recorder(_emit), stop)
    except (SpecError, ValueError, KeyError, TypeError) as exc:
        _emit({"type": "error", "message": str(exc)})
        return 2
    _emit({"type": "ready"})
    if await _read_line(reader) != "go":
        _emit({"type": "done", "elapsed": 0.0, "stopped_by": "cancel", "clientips": {}})
        return 0
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    async def watch_stdin() -> None:
        await _read_line(reader)       # "stop", or "" at EOF: either way, stop
        stop.set()
    watcher = asyncio.ensure_future(watch_stdin())
    try:
        _emit(await gen.run())
    finally:
        watcher.cancel()
    return 0


def main() -> int:
    return asyncio.run(main_async())


if __name__ == "__main__":
    sys.exit(main())
