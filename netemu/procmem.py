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
import re

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


# ---- the launcher template's holes (zygote.py) ----
#
# A process forked from the template starts with the template's allocators: glibc's free chunks
# and pymalloc's partly used pools, both scattered over pages every node's processes share. The
# child's first allocations go into those holes, so each small object it makes copies a whole
# shared page (measured on a 10-node cluster: ~550 of the template's 638 free heap chunks taken
# by a kubelet, ~3.6 MB of copied heap pages). Taking the holes in the template, before the
# first fork, makes the children allocate from fresh memory, packed, and leaves the shared pages
# shared. The holes stay taken (a leak of ~1 MB, once, shared by every node).

PLUG_HEAP_LIMIT = 16 * 1024 * 1024


def plug_heap_holes(limit: int = PLUG_HEAP_LIMIT) -> int:
    """Allocate (and never free) every free chunk of glibc's main heap below its top chunk, so
    later mallocs come from the top; the bytes taken (0 without glibc)."""
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        info_of = libc.mallinfo2
    except (OSError, AttributeError):
        return 0

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]
    info_of.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
    top = libc.sbrk(0) - info_of().keepcost        # where the top chunk starts: fresh memory
    taken = 0
    for size in _plug_sizes():
        while taken < limit:
            chunk = libc.malloc(size)
            if not chunk or chunk >= top:              # no hole of this size left (or mmap'd)
                if chunk:
                    libc.free(chunk)
                break
            taken += size
    return taken


def _plug_sizes() -> list[int]:
    """Large to small, so a big hole goes whole before its remainder is cut up: powers of two
    from 1 MiB down to 2 KiB, then every 16-byte step glibc's small bins hold."""
    return [1 << k for k in range(20, 10, -1)] + list(range(1024, 15, -16))


_POOL_ROW = re.compile(r"^\s*\d+\s+(\d+)\s+\d+\s+\d+\s+(\d+)\s*$", re.M)   # class size pools used avail


def pymalloc_free_blocks() -> dict[int, int]:
    """{block size: free blocks in pymalloc's partly used pools}, from sys._debugmallocstats
    (it writes to the C stderr, so fd 2 is pointed at a temporary file meanwhile)."""
    import os
    import sys
    import tempfile
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    return {int(size): int(avail) for size, avail in _POOL_ROW.findall(text) if int(avail)}


def plug_pymalloc_holes(rounds: int = 2) -> int:
    """Allocate (and never free) every free block of pymalloc's partly used pools; the bytes
    taken. A second round takes what the first one's own bookkeeping left."""
    import ctypes
    alloc = ctypes.pythonapi.PyObject_Malloc
    alloc.restype, alloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    taken = 0
    for _ in range(rounds):
        for size, count in sorted(pymalloc_free_blocks().items(), reverse=True):
            for _ in range(count):
                alloc(size)
            taken += size * count
    return taken
