"""One connection of each protocol the generator speaks: open it, run a request on it, close it.

Raw non-blocking sockets driven by the event loop's ``sock_*`` calls: no StreamReader, no
transport objects, so one request costs a few syscalls and little Python, and the generator's
own ceiling stays well above what a Python backend serves (docs/benchmarks.md measures it).

Failures are exceptions carrying the *kind* the report counts (``Failed.kind``): ``refused``,
``reset``, ``timeout``, ``no route``, ``closed`` (the peer closed before a whole answer),
``http NNN``, ``mismatch`` (an echo that came back different), ``bad answer``.
Whatever fails, the connection is closed and not reused: a late answer must never be read as the
answer to the next request.

What identifies the backend that answered (the endpoint): the body of an HTTP answer (agnhost
``/hostname``, nginx and serve-hostname answer their pod name), the answer to the UDP
``hostname`` command, or the first line a raw TCP server sends (serve-hostname ``--tcp``).
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket

from netemu.traffic.spec import LoadSpec, Target

UNKNOWN = "?"                      # no identity in the answer (a raw TCP server that says nothing)
MAX_IDENTITY = 253
_NO_ROUTE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
_RESET = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}


class Failed(Exception):
    """A request or connect that failed; ``kind`` is what the report counts it as."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(detail or kind)
        self.kind = kind


def error_kind(exc: BaseException) -> str:
    """The report's kind for a socket error."""
    if isinstance(exc, Failed):
        return exc.kind
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return "refused"
    code = getattr(exc, "errno", None)
    if code in _RESET or isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if code in _NO_ROUTE:
        return "no route"
    if code == errno.ETIMEDOUT:
        return "timeout"
    if code == errno.EADDRNOTAVAIL:
        return "no source port"
    return errno.errorcode.get(code, type(exc).__name__).lower() if code else type(exc).__name__


def identity(data: bytes) -> str:
    """The endpoint's name from an answer: its first line, if it looks like a name."""
    line = data.split(b"\n", 1)[0].strip()
    if not line or len(line) > MAX_IDENTITY:
        return UNKNOWN
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return UNKNOWN
    return text if text.isprintable() else UNKNOWN


def payload_bytes(size: int, seed: int) -> bytes:
    """``size`` repeatable lowercase letters: printable (UDP echo lower-cases what it returns)
    and form-safe (an HTTP body of them needs no escaping)."""
    rng = random.Random(seed)
    return bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(size))


class Connection:
    """Base: a socket to ``target``; subclasses define ``open`` and ``request``."""

    kind = socket.SOCK_STREAM

    def __init__(self, target: Target, spec: LoadSpec, payload: bytes):
        self.target, self.spec, self.payload = target, spec, payload
        self.loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in target.ip else socket.AF_INET
        self.sock = socket.socket(family, self.kind)
        self.sock.setblocking(False)
        if spec.source_port:           # a fixed UDP source port: a flow reopened is the same flow
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", spec.source_port))
        self.endpoint = UNKNOWN
        self.sent = self.received = 0
        self.used = 0                  # requests run on it (the open loop's keep-alive pool)

    def close(self) -> None:
        self.sock.close()

    async def open(self) -> None:
        raise NotImplementedError

    async def request(self, last: bool) -> str:
        """One request; returns the endpoint that answered. ``last``: no request follows on
        this connection (HTTP asks the server to close it)."""
        raise NotImplementedError


class HTTPConnection(Connection):
    def __init__(self, target: Target, spec: LoadSpec, payload: bytes):
        super().__init__(target, spec, payload)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        host = spec.host or target.address
        method = "POST" if payload else "GET"
        body = (f"Content-Type: application/octet-stream\r\nContent-Length: {len(payload)}\r\n"
                if payload else "")
        self._heads = {last: (f"{method} {spec.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: netemu-traffic\r\n"
                              f"{body}Connection: {'close' if last else 'keep-alive'}\r\n\r\n").encode() + payload
                       for last in (True, False)}

    async def open(self) -> None:
        await self.loop.sock_connect(self.sock, (self.target.ip, self.target.port))

    async def request(self, last: bool) -> str:
        return await self.get(self._heads[last], last)

    async def get(self, message: bytes, last: bool) -> str:
        await self.loop.sock_sendall(self.sock, message)
        self.sent += len(message)
        status, body = await self._answer()
        if last:                       # wait for the server's close: its side keeps TIME_WAIT
            await self._eof()
        if not 200 <= status < 300:
            raise Failed(f"http {status}")
        self.endpoint = identity(body)
        return self.endpoint

    async def ask(self, path: str) -> str:
        """One keep-alive GET of ``path``; its body (the clientip probes)."""
        msg = f"GET {path} HTTP/1.1\r\nHost: {self.spec.host or self.target.address}\r\nConnection: keep-alive\r\n\r\n".encode()
        await self.loop.sock_sendall(self.sock, msg)
        status, body = await self._answer()
        if status != 200:
            raise Failed(f"http {status}")
        return body.decode(errors="replace").strip()

    async def _recv(self) -> bytes:
        data = await self.loop.sock_recv(self.sock, 65536)
        self.received += len(data)
        return data

    async def _answer(self) -> tuple[int, bytes]:
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            data = await self._recv()
            if not data:
                raise Failed("closed", "connection closed before the answer's head")
            self.buf += data
        head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
        lines = head.split("\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            raise Failed("bad answer", lines[0][:80]) from None
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise Failed("bad answer", line[:80]) from None
        while len(self.buf) < length:
            data = await self._recv()
            if not data:
                raise Failed("closed", "connection closed in the answer's body")
            self.buf += data
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body

    async def _eof(self) -> None:
        while await self._recv():
            pass


class TCPConnection(Connection):
    """Raw TCP: send the payload, half-close, read what the server sends until it closes."""

    async def open(self) -> None:
        await self.loop.sock_connect(self.sock, (self.target.ip, self.target.port))

    async def request(self, last: bool) -> str:
        if self.payload:
            await self.loop.sock_sendall(self.sock, self.payload)
            self.sent += len(self.payload)
        self.sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := await self.loop.sock_recv(self.sock, 65536):
            self.received += len(chunk)
            if len(data) < 4096:
                data += chunk
        self.endpoint = identity(data)
        return self.endpoint


class UDPConnection(Connection):
    """A UDP flow: one connected socket (one source port, one conntrack entry). Without a
    payload each request is the ``hostname`` command; with one, ``open`` asks ``hostname`` once
    (the flow's first datagram makes the kernel's load-balancing decision, like a TCP
    handshake) and each request is ``echo <payload>``, checked on the way back."""

    kind = socket.SOCK_DGRAM

    async def open(self) -> None:
        self.sock.connect((self.target.ip, self.target.port))     # no packet: local only
        if self.payload:
            self.endpoint = identity(await self.exchange(b"hostname"))

    async def request(self, last: bool) -> str:
        if not self.payload:
            self.endpoint = identity(await self.exchange(b"hostname"))
            return self.endpoint
        answer = await self.exchange(b"echo " + self.payload)
        if answer != self.payload:
            raise Failed("mismatch", f"echo answered {len(answer)} bytes")
        return self.endpoint

    async def ask(self, command: str) -> str:
        return (await self.exchange(command.encode())).decode(errors="replace").strip()

    async def exchange(self, message: bytes) -> bytes:
        await self.loop.sock_sendall(self.sock, message)
        self.sent += len(message)
        data = await self.loop.sock_recv(self.sock, 65536)
        self.received += len(data)
        return data


CONNECTIONS = {"http": HTTPConnection, "tcp": TCPConnection, "udp": UDPConnection}


async def clientip(conn: Connection) -> tuple[str, str]:
    """(endpoint, the source address it saw) on one connection: ``/hostname`` then
    ``/clientip`` (UDP: the ``hostname`` and ``clientip`` commands), both on the same flow so
    the same backend answers both. The port is dropped: only the address tells masquerade."""
    if isinstance(conn, HTTPConnection):
        name, seen = identity((await conn.ask("/hostname")).encode()), await conn.ask("/clientip")
    elif isinstance(conn, UDPConnection):
        name, seen = identity((await conn.ask("hostname")).encode()), await conn.ask("clientip")
    else:
        raise Failed("unsupported", "raw tcp cannot ask for the client address")
    host = seen.rsplit(":", 1)[0].strip("[]") if ":" in seen else seen
    return name, host
