"""agnhost netexec's /dial: requests *from* the pod to another address, answered as JSON.

Upstream's e2e networking tests (test/e2e/framework/network utils) exec nothing: they ask one
netexec pod to /dial another pod or a Service and read back {"responses": [...], "errors":
[...]}. The requests leave from the serving pod's own network namespace (sockets made there,
see nsenter.py), so the kernel sees the pod as the client, exactly as with the real image.
Semantics copied from netexec.go: ``request`` required, ``protocol`` http (default) or udp,
``tries`` (default 1), 5 s per try, "responses" present only when the LAST try answered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket

from .httpserve import Request, Response
from .nsenter import socket_in_netns
from .probe import fetch

TRY_TIMEOUT = 5.0


def _error(status: int, text: str) -> Response:
    """Go's http.Error: the text plus a newline, nosniff."""
    return Response(status, (text + "\n").encode(), {"X-Content-Type-Options": "nosniff"})


async def dial(netns: str | None, req: Request) -> Response:
    q = req.form()
    host, port, request = q.get("host", ""), q.get("port", ""), q.get("request", "")
    protocol, tries_text = q.get("protocol", "").lower(), q.get("tries", "")
    try:
        tries = int(tries_text) if tries_text else 1
    except ValueError:
        return _error(400, f'tries parameter is invalid. strconv.Atoi: parsing "{tries_text}": invalid syntax')
    if not request:
        return _error(400, "request parameter not specified. <nil>")
    if protocol not in ("", "http", "udp"):
        return _error(400, f"unsupported protocol. {protocol}")
    try:
        ip = str(ipaddress.ip_address(host.strip("[]")))
        port_no = int(port)
        if not 0 < port_no < 65536:
            raise ValueError
    except ValueError:
        return _error(400, f"host and/or port param are invalid. address {host}:{port}: no such "
                           "host (only IP addresses: netemu runs no DNS)")
    one = _udp if protocol == "udp" else _http
    responses, errors, last = [], [], ""
    for _ in range(tries):
        try:
            last = await asyncio.wait_for(one(netns, ip, port_no, request), TRY_TIMEOUT)
            responses.append(last)
        except Exception as exc:  # each failed try is reported, never raised
            last = ""
            errors.append(_describe(exc, protocol or "http", ip, port_no, request))
    output = {}
    if errors:
        output["errors"] = errors
    if last:
        output["responses"] = responses
    return Response(body=json.dumps(output, separators=(",", ":")).encode(), headers={})


async def _http(netns, ip, port, request) -> str:
    _, body = await fetch(ip, port, "/" + request, TRY_TIMEOUT, netns,
                          {"User-Agent": "Go-http-client/1.1"})
    return body.decode(errors="replace")


async def _udp(netns, ip, port, request) -> str:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket_in_netns(netns, family, socket.SOCK_DGRAM)
    try:
        sock.connect((ip, port))  # a connected UDP socket: ICMP unreachable becomes an error
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, request.encode())
        data = await loop.sock_recv(sock, 2048)
        if not data:
            raise OSError("empty answer")
        return data.decode(errors="replace")
    finally:
        sock.close()


def _describe(exc: Exception, protocol: str, ip: str, port: int, request: str) -> str:
    where = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    if isinstance(exc, asyncio.TimeoutError):
        why = "i/o timeout"
    elif isinstance(exc, OSError) and exc.errno:
        why = f"connect: {os.strerror(exc.errno).lower()}"
    else:
        why = str(exc)
    if protocol == "udp":
        return f"reading from udp connection failed. err:'read udp ->{where}: {why}'"
    return f'Get "http://{where}/{request}": dial tcp {where}: {why}'
