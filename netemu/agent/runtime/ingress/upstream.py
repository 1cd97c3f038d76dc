"""The ingress controller's side towards the backends: HTTP/1.1 over kept-alive connections
made inside the controller pod's network namespace (so a backend sees the controller pod's IP,
as behind ingress-nginx), and the per-backend round-robin balancer (ingress-nginx's default
``load-balance: round_robin``).

A request whose connection cannot be opened is tried on the next endpoint, at most ``TRIES``
endpoints (nginx's ``proxy_next_upstream error timeout`` with ``proxy_next_upstream_tries 3``);
a kept-alive connection the backend closed meanwhile is retried once on a fresh one.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from ..nsenter import socket_in_netns

CONNECT_TIMEOUT = 5.0          # proxy-connect-timeout
READ_TIMEOUT = 60.0            # proxy-read-timeout
MAX_BODY = 8 * 1024 * 1024
TRIES = 3
IDLE_PER_ENDPOINT = 32         # upstream-keepalive-connections (per endpoint here)


class UpstreamError(Exception):
    """No answer from the endpoint: ``status`` is what the client gets (502 or 504)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class Pool:
    """Idle connections per (ip, port), all opened in ``netns``."""

    def __init__(self, netns: str | None):
        self.netns = netns
        self.idle: dict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def connect(self, ip: str, port: int):
        sock = socket_in_netns(self.netns, socket.AF_INET, socket.SOCK_STREAM)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (ip, port)), CONNECT_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    def take(self, key: tuple[str, int]):
        conns = self.idle.get(key) or []
        while conns:
            reader, writer = conns.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
        return None

    def give(self, key: tuple[str, int], conn) -> None:
        conns = self.idle.setdefault(key, [])
        if len(conns) < IDLE_PER_ENDPOINT:
            conns.append(conn)
        else:
            conn[1].close()

    def close(self) -> None:
        for conns in self.idle.values():
            for _, writer in conns:
                writer.close()
        self.idle.clear()

    async def request(self, ip: str, port: int, head: bytes, body: bytes, method: str) -> Answer:
        """Send one request; a reused connection found dead is replaced by a fresh one once."""
        key = (ip, port)
        conn = self.take(key)
        if conn is not None:
            try:
                return await self._exchange(key, conn, head, body, method)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass                   # the backend closed the idle connection: a fresh one
        try:
            conn = await self.connect(ip, port)
        except asyncio.TimeoutError:
            raise UpstreamError(504, f"upstream timed out (110: Connection timed out) while connecting to upstream {ip}:{port}") from None
        except OSError as exc:
            raise UpstreamError(502, f"connect() failed ({exc.errno}: {exc.strerror}) while connecting to upstream {ip}:{port}") from None
        try:
            return await self._exchange(key, conn, head, body, method)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise UpstreamError(502, f"upstream prematurely closed connection ({exc}) {ip}:{port}") from None

    async def _exchange(self, key, conn, head: bytes, body: bytes, method: str) -> Answer:
        reader, writer = conn
        try:
            writer.write(head + body)
            await writer.drain()
            answer, reusable = await asyncio.wait_for(read_response(reader, method), READ_TIMEOUT)
        except asyncio.TimeoutError:
            writer.close()
            raise UpstreamError(504, f"upstream timed out (110: Connection timed out) while reading response header from upstream {key[0]}:{key[1]}") from None
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            raise
        except ValueError as exc:
            writer.close()
            raise UpstreamError(502, f"upstream sent an invalid response: {exc}") from None
        if reusable:
            self.give(key, conn)
        else:
            writer.close()
        return answer


async def read_response(reader: asyncio.StreamReader, method: str) -> tuple[Answer, bool]:
    """One response; (answer, whether the connection can carry another request)."""
    head = await reader.readuntil(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    parts = first.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"bad status line {first[:80]!r}")
    status, reason = int(parts[1]), parts[2] if len(parts) > 2 else ""
    headers = [(k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in lines if h)]
    fields = {k.lower(): v for k, v in headers}
    keep = fields.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Answer(status, reason, headers, b""), keep
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = await _chunked(reader)
    elif "content-length" in fields:
        size = int(fields["content-length"])
        if size > MAX_BODY:
            raise ValueError(f"response body of {size} bytes exceeds {MAX_BODY}")
        body = await reader.readexactly(size)
    else:
        body = await reader.read(MAX_BODY)
        keep = False
    return Answer(status, reason, headers, body), keep


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b""):
                pass                   # trailers
            return body
        body += await reader.readexactly(size)
        await reader.readline()
        if len(body) > MAX_BODY:
            raise ValueError(f"response body exceeds {MAX_BODY}")


class RoundRobin:
    """One cursor per backend; the endpoint list may change between picks."""

    def __init__(self):
        self.cursor: dict[str, int] = {}

    def order(self, key: str, endpoints: list) -> list:
        """The endpoints to try, the next one first."""
        if not endpoints:
            return []
        i = self.cursor.get(key, -1) + 1
        self.cursor[key] = i
        k = i % len(endpoints)
        return endpoints[k:] + endpoints[:k]
