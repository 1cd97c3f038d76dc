"""What a built-in app gets from the runtime: sockets inside its pod, its log, its API access.

The small apps (agnhost, nginx) only listen; the bigger ones (CoreDNS, the ingress controller)
also talk to the API server like the real images do with their ServiceAccount: ``api()`` gives
a new client of their own (closed by the app when it stops) that acts as the pod's
ServiceAccount with the token the kubelet projected (agent.py: pod_api_factory); what the
kubelet reads on the pod's behalf (its configMap volumes) is read as the kubelet (volume_api).

Listening sockets are created in the pod's network namespace (nsenter.socket_in_netns) and
served by the agent's loop: a built-in app costs no process and no thread.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any, Callable

from .httpserve import HTTPProtocol
from .logs import LogFile
from .nsenter import socket_in_netns


class ApiApp:
    """What the API-talking apps share: their client, informer tasks and listeners, and the one
    way they all end (``close``: sockets, watches and the client, at once)."""

    def __init__(self, ctx: "AppContext"):
        self.ctx = ctx
        self.api = None
        self.volumes = None        # the kubelet's client, for the pod's volumes (connect_volumes)
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.listeners: list = []

    def connect(self):
        self.api = self.ctx.api()
        return self.api

    def connect_volumes(self):
        """A client as the kubelet (None without one): what the kubelet reads on the pod's
        behalf, its configMap volumes, is read with the kubelet's identity, not the pod's."""
        self.volumes = self.ctx.volume_api() if self.ctx.volume_api is not None else None
        return self.volumes

    def run_informer(self, informer) -> None:
        self.tasks.append(asyncio.ensure_future(informer.run(self.stop_event)))

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        self.listeners.clear()
        self.stop_event.set()
        for t in self.tasks:
            t.cancel()
        for attr in ("api", "volumes"):
            client = getattr(self, attr)
            if client is not None:
                setattr(self, attr, None)
                asyncio.ensure_future(client.close())


@dataclass
class AppContext:
    netns: str | None
    hostname: str
    pod: dict
    container: dict
    log: LogFile
    api: Callable[[], Any] | None = None        # -> a new ApiClient, or None: no API access
    # -> a new ApiClient as the kubelet: what the kubelet reads for the pod (configMap volumes)
    volume_api: Callable[[], Any] | None = None

    def listen(self, port: int, host: str = "0.0.0.0", family: int = socket.AF_INET) -> socket.socket:
        """A listening TCP socket in the pod (SO_REUSEADDR, backlog 1024)."""
        sock = socket_in_netns(self.netns, family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        return sock

    def datagram(self, port: int, host: str = "0.0.0.0", family: int = socket.AF_INET) -> socket.socket:
        sock = socket_in_netns(self.netns, family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        return sock

    async def serve_http(self, port: int, handler, host: str = "0.0.0.0", ssl=None):
        """An HTTP/1.1 server (httpserve.HTTPProtocol) answering with ``handler(request)``."""
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: HTTPProtocol(handler), sock=self.listen(port, host), ssl=ssl)

    async def serve_udp(self, port: int, protocol_factory, host: str = "0.0.0.0"):
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(protocol_factory, sock=self.datagram(port, host))
        return transport
