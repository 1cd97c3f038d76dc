"""The kubelet's read-only HTTP endpoint for container logs (port 10250 on the node IP).

``GET /containerLogs/<ns>/<pod>/<container>?tailLines=N&follow=true&previous=true&limitBytes=N``
answers the container's log file like upstream's kubelet server; the API server's pods/log
subresource proxies here. Plain HTTP on the emulated network (upstream uses TLS + authn; the
emulated node network is private to the emulator). ``select_lines`` is the pure part.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable

from aiohttp import web

from netemu.agent.kubelet.worker import log_path

Obj = dict[str, Any]
PORT = 10250


def select_lines(data: bytes, tail_lines: int | None, limit_bytes: int | None) -> bytes:
    """The last ``tail_lines`` lines, then at most ``limit_bytes`` bytes (upstream's order)."""
    if tail_lines is not None:
        if tail_lines <= 0:
            data = b""
        else:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail_lines:])
    if limit_bytes is not None and limit_bytes >= 0:
        data = data[:limit_bytes]
    return data


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer, got {value!r}") from None


class LogServer:
    """Serves the log files of the pods ``find_pod(ns, name)`` knows (the kubelet's cache)."""

    def __init__(self, find_pod: Callable[[str, str], Obj | None], restart_count: Callable[[Obj, str], int | None],
                 log_dir: str, host: str, port: int = PORT):
        self.find_pod, self.restart_count, self.log_dir = find_pod, restart_count, log_dir
        self.host, self.port = host, port
        self.app = web.Application()
        self.app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.container_logs)
        self.app.router.add_get("/healthz", self.healthz)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def path_for(self, ns: str, name: str, container: str, previous: bool) -> str:
        pod = self.find_pod(ns, name)
        if pod is None:
            raise web.HTTPNotFound(text=f"pod {ns}/{name} not found on this node")
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        if container not in names:
            raise web.HTTPNotFound(text=f"container {container} is not valid for pod {name}")
        count = self.restart_count(pod, container)
        if count is None:
            raise web.HTTPBadRequest(text=f"container {container!r} in pod {name!r} is waiting to start")
        if previous:
            if count == 0:
                raise web.HTTPBadRequest(
                    text=f"previous terminated container {container!r} in pod {name!r} not found")
            count -= 1
        return log_path(self.log_dir, pod, container, count)

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        previous = request.query.get("previous") == "true"
        path = self.path_for(m["ns"], m["pod"], m["container"], previous)
        tail, limit = _int_param(request, "tailLines"), _int_param(request, "limitBytes")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        if request.query.get("follow") != "true" or previous:
            return web.Response(body=select_lines(data, tail, limit), content_type="text/plain")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(select_lines(data, tail, None))
        offset = len(data)
        while os.path.exists(path):       # follow until the client leaves or the pod goes
            await asyncio.sleep(0.5)
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    more = f.read()
            except FileNotFoundError:
                break
            if more:
                offset += len(more)
                await resp.write(more)
        return resp
