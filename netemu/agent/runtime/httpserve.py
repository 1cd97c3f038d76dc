"""A minimal HTTP/1.1 server as an asyncio Protocol: the wire format of the built-in apps.

Why not aiohttp: a pod of a built-in image must cost <= 200 KB, and an aiohttp Application +
runner + site per pod costs several times that. This protocol object is the only per-connection
state; the per-app handler is a plain function ``handler(request) -> Response``.
Responses look like Go's net/http (status line, Date, Content-Length, text/plain) so clients
that parse agnhost's answers see the same thing.
"""

from __future__ import annotations

import asyncio
import email.utils
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes
    peer: tuple  # (ip, port, ...) as the socket reports it

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    def form(self) -> dict[str, str]:
        """Query and urlencoded body values, first value of each (Go's FormValue)."""
        values = parse_qs(urlsplit(self.target).query, keep_blank_values=True)
        if self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            for k, v in parse_qs(self.body.decode(errors="replace"), keep_blank_values=True).items():
                values.setdefault(k, v)
        return {k: v[0] for k, v in values.items()}

    @property
    def remote_addr(self) -> str:
        """Go's ``r.RemoteAddr``: ``ip:port``, IPv6 in brackets."""
        return format_addr(self.peer)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False
    raw_headers: list[tuple[str, str]] | None = None    # a proxied answer's own headers, as they came
    reason: str | None = None


HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                        "upgrade", "content-length"})

def format_addr(peer: tuple) -> str:
    ip, port = peer[0], peer[1]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def render(resp: Response, keep_alive: bool) -> bytes:
    if resp.raw_headers is not None:
        return _render_raw(resp, keep_alive)
    reason = resp.reason if resp.reason is not None else (
        HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ else "")
    head = [f"HTTP/1.1 {resp.status} {reason}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            f"Content-Length: {len(resp.body)}"]
    headers = {"Content-Type": "text/plain; charset=utf-8", **resp.headers}
    if not resp.body and "Content-Type" not in resp.headers:
        headers.pop("Content-Type")
    head += [f"{k}: {v}" for k, v in headers.items()]
    if not keep_alive and "Connection" not in headers:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp.body


def _render_raw(resp: Response, keep_alive: bool) -> bytes:
    """A proxied answer: its status line and headers kept (hop-by-hop ones dropped, as a proxy
    must), the body re-framed with Content-Length."""
    reason = resp.reason if resp.reason is not None else (
        HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ else "")
    head = [f"HTTP/1.1 {resp.status} {reason}"]
    head += [f"{k}: {v}" for k, v in resp.raw_headers if k.lower() not in HOP_BY_HOP]
    head.append(f"Content-Length: {len(resp.body)}")
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp.body


class HTTPProtocol(asyncio.Protocol):
    """One connection: parse requests (keep-alive, pipelining), answer each with ``handler``."""

    __slots__ = ("handler", "transport", "buf", "peer", "busy")

    def __init__(self, handler):
        self.handler = handler
        self.transport = None
        self.buf = b""
        self.peer = ("", 0)
        self.busy = False  # an async handler is running: later pipelined requests wait

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername") or ("", 0)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._process()

    def _process(self) -> None:
        while not self.busy and self.transport is not None and not self.transport.is_closing():
            req = self._parse()
            if req is None:
                return
            self._answer(req)

    def _parse(self) -> Request | None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                self._fail(431)
            return None
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self._fail(400)
            return None
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY or "chunked" in headers.get("transfer-encoding", ""):
            self._fail(400 if length < 0 else 413)
            return None
        if len(self.buf) < end + 4 + length:
            return None
        body = self.buf[end + 4:end + 4 + length]
        self.buf = self.buf[end + 4 + length:]
        return Request(parts[0], parts[1], parts[2], headers, body, self.peer)

    def _answer(self, req: Request) -> None:
        """Answer now, or (a handler returning an awaitable, e.g. netexec's /dial) when done."""
        try:
            resp = self.handler(req)
        except Exception as exc:  # an app bug answers 500, it never kills the agent's loop
            resp = Response(500, f"internal error: {exc}".encode())
        if not isinstance(resp, Response):
            self.busy = True
            task = asyncio.ensure_future(resp)
            task.add_done_callback(lambda t: self._finish(req, t))
            return
        self._send(req, resp)

    def _finish(self, req: Request, task: asyncio.Future) -> None:
        self.busy = False
        if self.transport is None:
            return
        try:
            resp = task.result()
        except Exception as exc:
            resp = Response(500, f"internal error: {exc}".encode())
        self._send(req, resp)
        self._process()

    def _send(self, req: Request, resp: Response) -> None:
        conn = req.headers.get("connection", "").lower()
        keep = (conn != "close") if req.version == "HTTP/1.1" else (conn == "keep-alive")
        keep = keep and not resp.close
        self.transport.write(render(resp, keep))
        if not keep:
            self.transport.close()

    def _fail(self, status: int) -> None:
        self.transport.write(render(Response(status, HTTPStatus(status).phrase.encode()), False))
        self.transport.close()
        self.buf = b""

    def connection_lost(self, exc) -> None:
        self.transport = None
        self.buf = b""
