"""Built-in images served in-process: agnhost netexec and serve-hostname, nginx, pause.

Each running container is a few asyncio servers on sockets created inside the pod's network
namespace (see nsenter.py), answering as upstream's agnhost does (test/images/agnhost/netexec,
serve-hostname in kubernetes/kubernetes): HTTP /hostname, /clientip ("ip:port" of the peer),
/echo?msg=&code=, /healthz (200 once the UDP server runs, 412 without one, as upstream),
/readyz (the same, but 503 "shutting down" once SIGTERM arrived), /exit?code= and /shutdown
(the container exits), /dial (dial.py), / ("NOW: <time>"); UDP "hostname",
"echo X" (lower-cased, as upstream), "clientip". serve-hostname: --http (default), or --tcp
and/or --udp raw, on --port (9376). nginx: HTTP on 80, every path answers the pod name + "\\n".
pause: no socket at all. coredns: the cluster DNS (coredns/app.py), which talks to the API.

Stopping one is closing its sockets: its exit code mirrors the real image's reaction to
SIGTERM: agnhost 2.47 netexec, pause, nginx and serve-hostname handle it and exit 0
(serve-hostname's 60 s "awaiting pod deletion" sleep is left out). netexec --delay-shutdown=N
keeps serving for N seconds after SIGTERM (its /readyz already failing) before it exits: the
graceful-termination pattern upstream's terminating-endpoint e2e tests are built on.
"""

from __future__ import annotations

import asyncio
import socket
import time

from .dial import dial
from .httpserve import HTTPProtocol, Request, Response, format_addr
from .appctx import AppContext
from .images import Builtin
from .logs import LogFile

SIGTERM_EXIT = {"netexec": 0, "serve-hostname": 0, "nginx": 0, "pause": 0, "coredns": 0, "ingress-nginx": 0}
API_APPS = ("coredns", "ingress-nginx")     # apps that are objects of their own (appctx.AppContext)


class ContainerStartError(RuntimeError):
    """The container could not start; ``reason`` for its state, ``exit_code`` as a real one's."""

    def __init__(self, reason: str, message: str, exit_code: int = 128):
        super().__init__(message)
        self.reason, self.message, self.exit_code = reason, message, exit_code


class UDPApp(asyncio.DatagramProtocol):
    """A UDP server answering each datagram with ``answer(text, peer)`` (None: no reply)."""

    __slots__ = ("answer", "transport")

    def __init__(self, answer):
        self.answer = answer
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply = self.answer(data, addr)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class BuiltinContainer:
    """One running built-in container of a pod. ``start`` then ``wait``/``stop``."""

    pid = None  # no process: the agent serves it

    def __init__(self, spec: Builtin, netns: str | None, hostname: str, log_path: str, *,
                 pod: dict | None = None, container: dict | None = None, api=None, ip: str = "",
                 volume_api=None):
        self.spec, self.netns, self.hostname = spec, netns, hostname
        self.log = LogFile(log_path)
        self.log_path = log_path
        self.ctx = AppContext(netns, hostname, pod or {}, container or {}, self.log, api, volume_api)
        self.ip = ip
        self.app = None                   # the app object of an API_APPS image
        self.servers: list = []
        self.udp_ready = False
        self.terminating = False          # SIGTERM arrived (netexec's sigTermReceived)
        self._delayed_exit: asyncio.Task | None = None
        self.exited: asyncio.Future | None = None
        self.started_at: float | None = None
        self.cpu_ns = 0                   # CPU time its handlers used (it has no process)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.exited = loop.create_future()
        app, opts = self.spec.app, self.spec.options
        try:
            if app == "netexec":
                if opts["udp-port"] != -1:
                    await self._udp(opts["udp-port"], self._netexec_udp)
                    self.udp_ready = True
                    self.log.write(f"Started UDP server on port  {opts['udp-port']}")
                await self._http(opts["http-port"], self._netexec_http)
                self.log.write(f"Started HTTP server on port {opts['http-port']}")
            elif app == "serve-hostname":
                await self._serve_hostname(opts)
                self.log.write(f"Serving on port {opts['port']}.")
            elif app == "nginx":
                await self._http(opts["port"], self._nginx_http)
                self.log.write("start worker processes")
            elif app in API_APPS:
                await self._start_app()
        except OSError as exc:
            self._close_servers()
            self.log.write(f"Error: listen: {exc.strerror or exc}")
            self.log.flush()
            raise ContainerStartError("Error", f"{app}: listen: {exc.strerror or exc}", 1) from exc
        self.log.flush()  # the start lines are visible at once
        self.started_at = time.time()

    async def _start_app(self) -> None:
        """CoreDNS or the ingress controller, imported only on nodes that run one."""
        if self.spec.app == "coredns":
            from .coredns.app import CoreDNS as App, CoreDNSError as AppError
            self.app = App(self.ctx, self.spec.options, (self.ip,) if self.ip else ())
        else:
            from .ingress.app import IngressController as App, IngressError as AppError
            self.app = App(self.ctx, self.spec.options)
        try:
            await self.app.start()
        except AppError as exc:
            self.app.close()
            self.log.write(str(exc))
            self.log.flush()
            raise ContainerStartError("Error", str(exc), 1) from None

    async def wait(self) -> int:
        """The exit code, once the container exits (by ``stop`` or its own /exit)."""
        return await asyncio.shield(self.exited)

    async def stop(self, grace: float = 30.0) -> int:
        """SIGTERM's equivalent: close every socket now (no connection needs draining), or, for
        netexec --delay-shutdown=N, fail /readyz and keep serving N seconds first (upstream
        sleeps in its SIGTERM handler, then os.Exit(0)); ``kill`` cuts the wait short."""
        if self.exited.done() or self.terminating:
            return await self.wait()
        self.terminating = True
        if self.app is not None:
            self._delayed_exit = asyncio.ensure_future(self._stop_app())
            return await self.wait()
        delay = int(self.spec.options.get("delay-shutdown") or 0) if self.spec.app == "netexec" else 0
        if delay > 0:
            self.log.write(f"Sleeping {delay} seconds before terminating...")
            self.log.flush()
            self._delayed_exit = asyncio.ensure_future(self._exit_after(delay, SIGTERM_EXIT["netexec"]))
        else:
            self.log.write("Shutting down after receiving signal: terminated.")
            self._exit(SIGTERM_EXIT.get(self.spec.app, 0))
        return await self.wait()

    async def _stop_app(self) -> None:
        self._exit(await self.app.stop())

    async def _exit_after(self, delay: float, code: int) -> None:
        await asyncio.sleep(delay)
        self._exit(code)

    def kill(self) -> None:
        """SIGKILL's equivalent: the sockets close now, exit code 137."""
        if self._delayed_exit is not None:
            self._delayed_exit.cancel()
        if not self.exited.done():
            self._exit(128 + 9)

    def _exit(self, code: int) -> None:
        self._close_servers()
        self.log.flush()
        if not self.exited.done():
            self.exited.set_result(code)

    def _close_servers(self) -> None:
        for srv in self.servers:
            srv.close()
        self.servers.clear()
        self.udp_ready = False
        if self.app is not None:
            self.app.close()

    # -- sockets -------------------------------------------------------------------------
    async def _http(self, port: int, handler) -> None:
        sock = self._listen(port)
        loop = asyncio.get_running_loop()
        metered = self._metered(handler)
        self.servers.append(await loop.create_server(lambda: HTTPProtocol(metered), sock=sock))

    async def _udp(self, port: int, answer) -> None:
        metered = self._metered(answer)
        self.servers.append(await self.ctx.serve_udp(port, lambda: UDPApp(metered)))

    def _metered(self, handler):
        """``handler`` with the CPU time of each call counted as this container's: a built-in
        container lives in the runtime's process, so its usage is what its handlers use."""
        def run(*args):
            start = time.thread_time_ns()
            try:
                return handler(*args)
            finally:
                self.cpu_ns += time.thread_time_ns() - start
        return run

    async def _tcp_raw(self, port: int, payload: bytes) -> None:
        sock = self._listen(port)
        loop = asyncio.get_running_loop()
        log = self.log

        class Raw(asyncio.Protocol):
            def connection_made(self, transport):
                log.write(f"TCP request from {format_addr(transport.get_extra_info('peername'))}")
                transport.write(payload)
                transport.close()
        self.servers.append(await loop.create_server(Raw, sock=sock))

    def _listen(self, port: int) -> socket.socket:
        return self.ctx.listen(port)

    # -- apps ----------------------------------------------------------------------------
    def _netexec_http(self, req: Request) -> Response:
        path = req.path
        if path in ("/hostname", "/hostName"):
            self.log.write(f"GET {path}")
            return Response(body=self.hostname.encode())
        if path == "/clientip":
            self.log.write("GET /clientip")
            return Response(body=req.remote_addr.encode())
        if path == "/echo":
            form = req.form()
            msg, code = form.get("msg", ""), form.get("code", "")
            self.log.write(f"GET /echo?msg={msg}&code={code}")
            status = 200
            if code:
                try:
                    status = int(code)
                except ValueError:
                    return Response(body=f"argument 'code' must be an integer or empty, got {code!r}\n".encode())
            return Response(status, msg.encode())
        if path == "/healthz":
            self.log.write("GET /healthz")
            return Response(200 if self.udp_ready else 412)
        if path == "/readyz":
            self.log.write("GET /readyz")
            if self.terminating:
                return Response(503, b"shutting down")
            return Response(body=b"ok") if self.udp_ready else Response(412)
        if path == "/dial":
            self.log.write(f"GET /dial?{req.target.partition('?')[2]}")
            return dial(self.netns, req)  # a coroutine: the protocol answers when it is done
        if path in ("/exit", "/shutdown"):
            return self._netexec_exit(req)
        self.log.write("GET /")
        return Response(body=f"NOW: {time.strftime('%Y-%m-%d %H:%M:%S %z')}".encode())

    def _netexec_exit(self, req: Request) -> Response:
        code = 0
        if req.path == "/exit":
            text = req.form().get("code", "")
            try:
                code = int(text) if text else 0
            except ValueError:
                return Response(body=f"argument 'code' must be an integer [0-127] or empty, got {text!r}\n".encode())
        self.log.write(f"GET {req.path}: exiting with {code}")
        asyncio.get_running_loop().call_soon(self._exit, code)
        return Response(close=True)

    def _netexec_udp(self, data: bytes, addr) -> bytes | None:
        text = data.decode(errors="replace").strip().lower()
        if text == "hostname":
            return self.hostname.encode()
        if text.startswith("echo "):
            return text.split(" ", 1)[1].encode()
        if text == "clientip":
            return format_addr(addr).encode()
        return None

    async def _serve_hostname(self, opts: dict) -> None:
        name = self.hostname.encode()
        port = opts["port"]
        if opts["tcp"]:
            await self._tcp_raw(port, name)
        if opts["udp"]:
            await self._udp(port, lambda data, addr: name)
        if opts["http"]:
            close = opts["close"]

            def handler(req: Request) -> Response:
                self.log.write(f"HTTP request from {req.remote_addr}")
                return Response(body=name, headers={"Connection": "close"} if close else {},
                                close=close)
            await self._http(port, handler)

    def _nginx_http(self, req: Request) -> Response:
        return Response(body=(self.hostname + "\n").encode(), headers={"Server": "nginx"})
