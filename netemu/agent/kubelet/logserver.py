"""The kubelet's read-only HTTP endpoint for container logs (port 10250 on the node IP).

``GET /containerLogs/<ns>/<pod>/<container>?tailLines=N&follow=true&previous=true&limitBytes=N``
answers the container's log file like upstream's kubelet server (and ``GET /metrics/resource``
the node's and containers' usage, resourcemetrics.py); the API server's pods/log
subresource proxies here. Plain HTTP/1.1 on the emulated network (upstream uses TLS + authn; the
node network is private to the emulator), one request per connection, the body delimited by
the connection's close (so ``follow`` can stream). Written on asyncio streams rather than
aiohttp.web: the web framework would cost the agent ~2 MB of its 40 MB budget for one route.
``select_lines`` and ``LogServer.resolve`` are the pure parts.
"""

from __future__ import annotations

import asyncio
import os
from typing import Awaitable, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from netemu.agent.kubelet.worker import log_path
from netemu.api.meta import Obj, pod_containers

PORT = 10250
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


class HTTPError(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status, self.text = status, text


def select_lines(data: bytes, tail_lines: int | None, limit_bytes: int | None) -> bytes:
    """The last ``tail_lines`` lines, then at most ``limit_bytes`` bytes (upstream's order)."""
    if tail_lines is not None:
        data = b"".join(data.splitlines(keepends=True)[-tail_lines:]) if tail_lines > 0 else b""
    if limit_bytes is not None and limit_bytes >= 0:
        data = data[:limit_bytes]
    return data


def _int_param(query: dict[str, list[str]], name: str) -> int | None:
    value = (query.get(name) or [""])[0]
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise HTTPError(400, f"{name} must be an integer, got {value!r}") from None


def _head(status: int, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
            f"Connection: close\r\n{extra}\r\n").encode()


class LogServer:
    """Serves the log files of the pods ``find_pod(ns, name)`` knows (the kubelet's cache)."""

    def __init__(self, find_pod: Callable[[str, str], Obj | None], restart_count: Callable[[Obj, str], int | None],
                 log_dir: str, host: str, port: int = PORT, follow_poll: float = 0.5, exec_server=None,
                 resource_metrics: Callable[[], Awaitable[str]] | None = None):
        """``exec_server`` (execserver.ExecServer): ``/exec/NS/POD/CONTAINER`` and
        ``/attach/NS/POD/CONTAINER`` too;
        ``resource_metrics``: the text of /metrics/resource (resourcemetrics.collect)."""
        self.find_pod, self.restart_count, self.log_dir = find_pod, restart_count, log_dir
        self.exec_server = exec_server
        self.host, self.port, self.follow_poll = host, port, follow_poll
        self.resource_metrics = resource_metrics
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)

    @property
    def bound_port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def resolve(self, target: str) -> tuple[str, dict[str, list[str]]]:
        """Request target -> (log file, query); HTTPError for anything else."""
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts == ["healthz"]:
            return "", {}
        if len(parts) != 4 or parts[0] != "containerLogs":
            raise HTTPError(404, f"404 page not found: {url.path}")
        _, ns, name, container = parts
        query = parse_qs(url.query)
        pod = self.find_pod(ns, name)
        if pod is None:
            raise HTTPError(404, f"pod {ns}/{name} not found on this node")
        if container not in [c.get("name") for c in pod_containers(pod)]:
            raise HTTPError(404, f"container {container} is not valid for pod {name}")
        count = self.restart_count(pod, container)
        if count is None:
            raise HTTPError(400, f"container {container!r} in pod {name!r} is waiting to start")
        if (query.get("previous") or [""])[0] == "true":
            if count == 0:
                raise HTTPError(400, f"previous terminated container {container!r} in pod {name!r} not found")
            count -= 1
        return log_path(self.log_dir, pod, container, count), query

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if target.startswith(("/exec/", "/attach/")) and self.exec_server is not None:
                return await self._stream(target, reader, writer)
            if target.startswith("/portForward/") and self.exec_server is not None:
                return await self._port_forward(target, reader, writer)
            if method != "GET":
                raise HTTPError(405, f"{method} is not allowed")
            if urlsplit(target).path == "/metrics/resource" and self.resource_metrics is not None:
                text = await self.resource_metrics()
                writer.write(_head(200).replace(b"text/plain", b"text/plain; version=0.0.4") + text.encode())
                return
            path, query = self.resolve(target)
            if not path:
                writer.write(_head(200) + b"ok")
            else:
                await self._send_log(writer, path, query)
        except HTTPError as exc:
            writer.write(_head(exc.status) + exc.text.encode() + b"\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError):
            writer.write(_head(400) + b"bad request\n")
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                await writer.drain()
            except (ConnectionError, OSError):
                pass
            writer.close()

    async def _stream(self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The API server's upgraded exec or attach stream (execserver.py); refusals as HTTP answers."""
        from netemu.api.execstream import ExecError
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if len(parts) != 4:
            raise HTTPError(404, f"404 page not found: {url.path}")
        try:
            if parts[0] == "attach":
                return await self.exec_server.attach(parts[1], parts[2], parts[3], parse_qs(url.query), reader, writer)
            opts, where = self.exec_server.prepare(parts[1], parts[2], parts[3], parse_qs(url.query))
        except LookupError as exc:
            raise HTTPError(404, str(exc.args[0])) from None
        except ExecError as exc:
            raise HTTPError(400, str(exc)) from None
        await self.exec_server.serve(opts, where, reader, writer)

    async def _port_forward(self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One forwarded connection (portforward.py): refused as HTTP, else upgraded and spliced."""
        from netemu.agent.kubelet.portforward import dial_in_pod, splice
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/") if p]
        port = _int_param(parse_qs(url.query), "port")
        if len(parts) != 3 or port is None or not 0 < port < 65536:
            raise HTTPError(400, f"bad port-forward request {url.path}: /portForward/NS/POD?port=1..65535")
        pod = self.find_pod(parts[1], parts[2])
        if pod is None:
            raise HTTPError(404, f"pod {parts[1]}/{parts[2]} not found on this node")
        try:
            sock = await dial_in_pod(pod, port)
        except OSError as exc:
            raise HTTPError(400, str(exc)) from None
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: netemu-portforward\r\nConnection: Upgrade\r\n\r\n")
        await splice(sock, reader, writer)

    async def _send_log(self, writer: asyncio.StreamWriter, path: str, query: dict[str, list[str]]) -> None:
        tail, limit = _int_param(query, "tailLines"), _int_param(query, "limitBytes")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        follow = (query.get("follow") or [""])[0] == "true" and (query.get("previous") or [""])[0] != "true"
        writer.write(_head(200) + select_lines(data, tail, None if follow else limit))
        offset = len(data)
        while follow and os.path.exists(path) and not writer.is_closing():
            await writer.drain()
            await asyncio.sleep(self.follow_poll)
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    more = f.read()
            except FileNotFoundError:
                break
            if more:
                offset += len(more)
                writer.write(more)
