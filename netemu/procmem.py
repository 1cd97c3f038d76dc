"""Memory of netemu's long-running processes (the control plane, the node agents): one copy of
the process-wide knobs both use.

TLS read buffers sized for many connections.

Python's asyncio TLS transport (``asyncio.sslproto.SSLProtocol``) allocates a 256 KiB read
buffer per connection, up front and zero-filled, so it counts in RSS at once. An API server
with 100 node agents holds 300-400 TLS connections (each agent: a Node watch, a Pod watch,
request connections): ~100 MB of read buffers, measured (scalebench: 100 agents and no pods,
152 MB RSS of which 67 MB is the idle server). A TLS record carries at most 16 KiB of data, so
32 KiB reads lose nothing but a few extra read calls on multi-megabyte bodies.

The size is a class attribute of the standard library: changing it is process-wide, so only
programs call this (the API server at start; a node agent may too), never a library on import.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto

TLS_READ_BUFFER = 32 * 1024


def shrink_tls_read_buffers(size: int = TLS_READ_BUFFER) -> bool:
    """Make new TLS connections of this process use ``size``-byte read buffers; False when this
    Python's asyncio has no such knob (nothing changed then)."""
    if size < 16 * 1024:
        raise ValueError("a TLS read buffer must hold one full TLS record (16 KiB)")
    proto = getattr(asyncio.sslproto, "SSLProtocol", None)
    if proto is None or not isinstance(getattr(proto, "max_size", None), int):
        return False
    proto.max_size = size
    return True


def trim_malloc() -> None:
    """Hand freed heap pages back to the kernel. Bursts (100 agents registering, a list of every
    pod, a stalled watcher cut off, an agent's start-up, deleted pods) free their memory, but
    glibc keeps the pages, so the RSS would show the worst burst forever instead of what the
    process holds."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


async def trim_periodically(stop: asyncio.Event, period: float) -> None:
    """``trim_malloc`` now (start-up garbage) and every ``period`` seconds until ``stop``."""
    while not stop.is_set():
        trim_malloc()
        try:
            await asyncio.wait_for(stop.wait(), period)
        except asyncio.TimeoutError:
            pass


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """glibc gives each new thread its own malloc arena (up to 8 per core); a process's threads
    (subprocess watchers, kube-proxy's runner, metrics) would each keep one and push RSS up by
    ~20 MB on an agent's first pods. Two arenas are plenty for one event loop (M_ARENA_MAX = -8)."""
    try:
        import ctypes
        return bool(ctypes.CDLL("libc.so.6").mallopt(-8, arenas))
    except (OSError, AttributeError):
        return False
