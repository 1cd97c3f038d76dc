"""pods/exec and pods/attach: ``kubectl exec``, ``kubectl attach`` and ``kubectl run -it``
through the API server to the kubelet of the pod's node.

kubectl 1.30+ asks for a WebSocket upgrade offering ``v5.channel.k8s.io`` (client-go's
remotecommand.NewWebSocketExecutor; SPDY is only its fallback when the upgrade fails), with
GET and the PodExecOptions in the query (``command`` repeated, ``container``, ``stdin``,
``stdout``, ``stderr``, ``tty``). Upstream's API server (>= 1.30) answers that WebSocket itself
and translates it to the kubelet's stream (StreamTranslatorProxy); here too: everything that
can be refused is checked first and refused as a plain HTTP error (no such container, not
running, node unreachable, a SPDY request), then the client's WebSocket and an upgraded TCP
stream to the kubelet's /exec/NS/POD/CONTAINER (port 10250, api/execstream.py frames) are
joined channel by channel until the kubelet sends the command's final Status.

pods/attach is the same stream to the kubelet's /attach/NS/POD/CONTAINER, with
PodAttachOptions (no command): the kubelet hands it to the container runtime, which holds the
container's stdin and terminal (agent/runtime/stdio.py, attach.py).

Authorization is the middleware's, as for any request: ``get`` (WebSocket) or ``create``
(POST) on pods/exec or pods/attach, which the edit and admin roles grant and view does not.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from netemu.api import errors
from netemu.api import execstream as xs
from netemu.api.kinds import by_kind
from netemu.api.meta import running_containers
from netemu.apiserver.podlog import KUBELET_PORT, node_address, pick_container

CONNECT_TIMEOUT = 5.0


async def open_kubelet(ip: str, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The kubelet's exec stream, upgraded; its refusal (4xx and its text) as an API error."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, KUBELET_PORT), CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError) as exc:
        raise errors.InternalError(f'error dialing backend: dial tcp {ip}:{KUBELET_PORT}: {exc or "timeout"}') from None
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: Upgrade\r\nUpgrade: netemu-exec\r\n\r\n".encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)
        status = int(head.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError, asyncio.TimeoutError, asyncio.IncompleteReadError,
            asyncio.LimitOverrunError) as exc:
        writer.close()
        raise errors.InternalError(f"the kubelet at {ip} did not answer the exec request: {exc}") from None
    if status != 101:
        text = (await reader.read(4096)).decode("utf-8", "replace").strip()
        writer.close()
        raise (errors.NotFound if status == 404 else errors.BadRequest)(text or f"kubelet answered {status}")
    return reader, writer


async def _from_client(ws: web.WebSocketResponse, writer: asyncio.StreamWriter) -> None:
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
            continue
        writer.write(xs.frame(msg.data[0], msg.data[1:]))
        await writer.drain()


async def _from_kubelet(reader: asyncio.StreamReader, ws: web.WebSocketResponse) -> bool:
    """Copy the kubelet's frames to the client; True once its final Status went through."""
    while (got := await xs.read_frame(reader)) is not None:
        channel, data = got
        await ws.send_bytes(bytes([channel]) + data)
        if channel == xs.ERROR:
            return True
    return False


def check_running(pod: dict, container: str, kind: str = "exec") -> None:
    """upstream's refusals of an exec into (or an attach to) a pod that cannot take one (pure)."""
    meta = pod.get("metadata") or {}
    name = meta.get("name")
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        doing = "exec into" if kind == "exec" else "attach"
        raise errors.BadRequest(f"cannot {doing} a container in a completed pod; current phase is {phase}")
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.BadRequest(f"pod {name} does not have a host assigned")
    if container not in running_containers(pod):     # the kubelet's words, behind the API server's
        missing = (f'container not found ("{container}")' if kind == "exec"
                   else f"container {container} not found in pod {name}_{meta.get('namespace', 'default')}")
        raise errors.BadRequest(f"unable to upgrade connection: {missing}")


async def serve(registry, request: web.Request, namespace: str, name: str, kind: str = "exec") -> web.StreamResponse:
    """GET (WebSocket) or POST pods/NAME/exec or pods/NAME/attach (``kind``). What can be
    refused is refused before the protocol is looked at: kubectl falls back to SPDY when the
    WebSocket upgrade fails, and its user must see why it failed, not that SPDY is not spoken here."""
    query = {k: request.query.getall(k) for k in request.query}
    try:
        opts = xs.parse_options(query) if kind == "exec" else xs.parse_attach_options(query)
    except xs.ExecError as exc:
        raise errors.BadRequest(str(exc)) from None
    pod = await registry.get(by_kind("v1", "Pod"), namespace, name)
    container = pick_container(pod, opts.container)
    check_running(pod, container, kind)
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise errors.BadRequest(f"pods/{kind} is served over WebSocket (v5.channel.k8s.io, kubectl >= 1.30); "
                                "SPDY upgrades are not supported")
    node_name = pod["spec"]["nodeName"]
    ip = node_address(await registry.get(by_kind("v1", "Node"), None, node_name))
    if not ip:
        raise errors.BadRequest(f"node {node_name} has no InternalIP address")
    path = (f"/{kind}/{quote(namespace, safe='')}/{quote(name, safe='')}/{quote(container, safe='')}?"
            + urlencode(opts.query()))
    ws = web.WebSocketResponse(protocols=(xs.PROTOCOL_V5,), autoping=True)
    if ws.can_prepare(request).protocol != xs.PROTOCOL_V5:
        raise errors.BadRequest(f"pods/{kind} needs the WebSocket subprotocol {xs.PROTOCOL_V5} (kubectl >= 1.30)")
    reader, writer = await open_kubelet(ip, path)
    try:
        await ws.prepare(request)
        upstream = asyncio.ensure_future(_from_kubelet(reader, ws))
        client = asyncio.ensure_future(_from_client(ws, writer))
        await asyncio.wait([upstream, client], return_when=asyncio.FIRST_COMPLETED)
        if client.done() and not upstream.done():        # the client left: end the command
            writer.close()
        await asyncio.gather(upstream, return_exceptions=True)
        client.cancel()
        await asyncio.gather(client, return_exceptions=True)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws
