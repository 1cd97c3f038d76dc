"""pods/portforward on the node: the kubelet's ``/portForward/NS/POD?port=P`` on port 10250.

The API server (apiserver/portforward.py) speaks kubectl's SPDY-over-WebSocket and opens one
of these per forwarded connection. As upstream's runtimes do, the kubelet connects to
localhost:P inside the pod's network namespace (so a server bound to 127.0.0.1 in the pod is
reachable too); a refusal is answered before the upgrade with upstream's wording, otherwise
the bytes flow both ways until either side closes its half.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from netemu.agent.runtime.names import pod_netns_of
from netemu.agent.runtime.nsenter import socket_in_netns
from netemu.api.meta import Obj

CONNECT_TIMEOUT = 5.0


async def dial_in_pod(pod: Obj, port: int) -> socket.socket:
    """A connected socket to localhost:``port`` in the pod's namespace; OSError says why not."""
    netns = None if (pod.get("spec") or {}).get("hostNetwork") else pod_netns_of(pod)
    sock = socket_in_netns(netns)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError) as exc:
        sock.close()
        where = f' inside namespace "{netns}"' if netns else ""
        why = os.strerror(exc.errno).lower() if getattr(exc, "errno", None) else "i/o timeout"
        raise OSError(f"failed to connect to localhost:{port}{where}, IPv4: dial tcp4 127.0.0.1:{port}: "
                      f"connect: {why}") from None
    return sock


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(64 * 1024):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def splice(sock: socket.socket, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy between the API server's stream and the pod's socket until both halves closed."""
    pod_reader, pod_writer = await asyncio.open_connection(sock=sock)
    try:
        await join(reader, writer, pod_reader, pod_writer)
    finally:
        pod_writer.close()


async def join(a_reader: asyncio.StreamReader, a_writer: asyncio.StreamWriter,
               b_reader: asyncio.StreamReader, b_writer: asyncio.StreamWriter) -> None:
    """Copy both ways between two streams until both halves closed (each end passed on as EOF)."""
    await asyncio.gather(_pump(a_reader, b_writer), _pump(b_reader, a_writer))
