"""pods/portforward: ``kubectl port-forward`` through the API server to the pod's kubelet.

kubectl 1.31+ (PortForwardWebsockets, on by default) asks for a WebSocket with subprotocol
``SPDY/3.1+portforward.k8s.io`` and runs SPDY over it (spdy.py). For each local connection it
opens two streams with the same ``requestid`` and ``port`` headers: ``streamtype: error``
(which it half-closes at once and reads to its end: any text there is the failure it prints)
and ``streamtype: data`` (the bytes both ways). Upstream's API server tunnels this to the
kubelet; here each request becomes one upgraded connection to the kubelet's
/portForward/NS/POD?port=P (kubelet/portforward.py dials localhost:P in the pod), and when the
pod side is done both streams are finished (FIN), which ends the connection for kubectl.
Refusals that can come first (no such pod, not running) come before the upgrade, so kubectl's
SPDY fallback shows them; SPDY itself (without the WebSocket) is refused with a clear message.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp
from aiohttp import web

from netemu.api import errors
from netemu.api.kinds import by_kind
from netemu.apiserver import spdy
from netemu.apiserver.podlog import KUBELET_PORT, node_address

PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CONNECT_TIMEOUT = 5.0
CHUNK = 32 * 1024


@dataclass
class Forward:
    """One kubectl connection: its two streams and the queue of bytes for the pod."""

    port: int = 0
    error_sid: int = 0
    data_sid: int = 0
    to_pod: asyncio.Queue = field(default_factory=asyncio.Queue)     # bytes, None at FIN
    task: asyncio.Task | None = None


async def _kubelet_stream(ip: str, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The kubelet's upgraded stream to the pod's port; OSError with the kubelet's text if not."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, KUBELET_PORT), CONNECT_TIMEOUT)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: Upgrade\r\n"
                 f"Upgrade: netemu-portforward\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)
    if head.split(b" ", 2)[1] != b"101":
        text = (await reader.read(4096)).decode("utf-8", "replace").strip()
        writer.close()
        raise OSError(text or head.split(b"\r\n", 1)[0].decode("latin-1"))
    return reader, writer


class Session:
    """The SPDY connection of one ``kubectl port-forward``, on the API server."""

    def __init__(self, ws: web.WebSocketResponse, ip: str, namespace: str, name: str):
        self.ws, self.ip, self.namespace, self.name = ws, ip, namespace, name
        self.conn = spdy.SpdyConnection()
        self.forwards: dict[str, Forward] = {}        # requestid -> its streams
        self.by_stream: dict[int, Forward] = {}       # data stream id -> its forward

    async def send(self, data: bytes) -> None:
        if not self.ws.closed:
            await self.ws.send_bytes(data)

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                for frame in self.conn.feed(msg.data):
                    await self.on_frame(frame)
        except spdy.SpdyError:
            await self.send(self.conn.goaway(0, 1))
        finally:
            for fw in self.forwards.values():
                if fw.task is not None:
                    fw.task.cancel()
            await asyncio.gather(*(f.task for f in self.forwards.values() if f.task), return_exceptions=True)

    async def on_frame(self, frame: spdy.Frame) -> None:
        if frame.type == spdy.SYN_STREAM:
            await self.on_stream(frame)
        elif frame.type == spdy.DATA:
            fw = self.by_stream.get(frame.stream_id)
            if fw is not None:
                if frame.data:
                    fw.to_pod.put_nowait(frame.data)
                if frame.fin:
                    fw.to_pod.put_nowait(None)
        elif frame.type == spdy.RST_STREAM:
            fw = self.by_stream.get(frame.stream_id)
            if fw is not None and fw.task is not None:
                fw.task.cancel()
        elif frame.type == spdy.PING:
            await self.send(self.conn.ping(frame.value))

    async def on_stream(self, frame: spdy.Frame) -> None:
        h = frame.headers
        kind, request, port = h.get("streamtype"), h.get("requestid", ""), h.get("port", "")
        if kind not in ("error", "data") or not port.isdigit() or not 0 < int(port) < 65536:
            await self.send(self.conn.rst_stream(frame.stream_id, spdy.RST_PROTOCOL_ERROR))
            return
        await self.send(self.conn.syn_reply(frame.stream_id))
        fw = self.forwards.setdefault(request, Forward(int(port)))
        if kind == "error":
            fw.error_sid = frame.stream_id
        else:
            fw.data_sid = frame.stream_id
            self.by_stream[frame.stream_id] = fw
        if fw.error_sid and fw.data_sid and fw.task is None:
            fw.task = asyncio.ensure_future(self.forward(request, fw))

    async def forward(self, request: str, fw: Forward) -> None:
        path = f"/portForward/{quote(self.namespace, safe='')}/{quote(self.name, safe='')}?port={fw.port}"
        try:
            try:
                reader, writer = await _kubelet_stream(self.ip, path)
            except (OSError, asyncio.TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError) as exc:
                await self.send(self.conn.data(fw.error_sid, str(exc).encode() or b"kubelet unreachable"))
                return
            up = asyncio.ensure_future(self._to_pod(fw, writer))
            try:
                while data := await reader.read(CHUNK):
                    await self.send(self.conn.data(fw.data_sid, data))
            except (ConnectionError, OSError):
                pass
            finally:
                up.cancel()
                await asyncio.gather(up, return_exceptions=True)
                writer.close()
        finally:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send(self.conn.data(fw.data_sid, fin=True))
                await self.send(self.conn.data(fw.error_sid, fin=True))
            self.forwards.pop(request, None)
            self.by_stream.pop(fw.data_sid, None)

    @staticmethod
    async def _to_pod(fw: Forward, writer: asyncio.StreamWriter) -> None:
        while (data := await fw.to_pod.get()) is not None:
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def serve(registry, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
    """GET (WebSocket) or POST (SPDY) pods/NAME/portforward."""
    pod = await registry.get(by_kind("v1", "Pod"), namespace, name)
    if (pod.get("status") or {}).get("phase") != "Running":
        raise errors.BadRequest(f"pod {name} is not running (phase {(pod.get('status') or {}).get('phase')})")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise errors.BadRequest(f"pods/portforward is served over WebSocket ({PROTOCOL}, kubectl >= 1.31); "
                                "SPDY upgrades are not supported")
    ip = node_address(await registry.get(by_kind("v1", "Node"), None, pod["spec"]["nodeName"]))
    if not ip:
        raise errors.BadRequest(f"node {pod['spec']['nodeName']} has no InternalIP address")
    ws = web.WebSocketResponse(protocols=(PROTOCOL,), autoping=True, max_msg_size=0)
    if ws.can_prepare(request).protocol != PROTOCOL:
        raise errors.BadRequest(f"pods/portforward needs the WebSocket subprotocol {PROTOCOL} (kubectl >= 1.31)")
    await ws.prepare(request)
    try:
        await Session(ws, ip, namespace, name).run()
    finally:
        with contextlib.suppress(Exception):
            await ws.close()
    return ws
