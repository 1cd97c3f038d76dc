"""TLS read buffers sized for many connections.

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
