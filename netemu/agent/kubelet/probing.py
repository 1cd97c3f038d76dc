"""Running one probe (the effects): httpGet and tcpSocket from the node to the pod IP, as
upstream's kubelet does from the host namespace, and exec through the runtime."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from netemu.agent.kubelet.probes import ProbeSpec, resolve_port

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Exec = Callable[[list[str], float], Awaitable[tuple[int, bytes]]]


async def http_get(host: str, port: int, path: str, headers: list[Obj], timeout: float) -> bool:
    """HTTP/1.1 GET; success is a status in [200, 400) like upstream (redirects not followed)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        lines = [f"GET {path or '/'} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: kube-probe/1.32",
                 "Accept: */*", "Connection: close"]
        lines += [f"{h.get('name')}: {h.get('value')}" for h in headers if h.get("name")]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        first = await asyncio.wait_for(reader.readline(), timeout)
        parts = first.split()
        return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    finally:
        writer.close()


async def tcp_socket(host: str, port: int, timeout: float) -> bool:
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    writer.close()
    return True


async def run_probe(spec: ProbeSpec, container: Obj, pod_ip: str, exec_: Exec) -> bool:
    """One probe attempt: True on success; errors and timeouts are failures (never raised)."""
    try:
        if spec.handler == "httpGet":
            if (spec.action.get("scheme") or "HTTP").upper() != "HTTP":
                return False      # no TLS probes: a clear failure rather than a silent pass
            host = spec.action.get("host") or pod_ip
            port = resolve_port(spec.action.get("port"), container)
            return await asyncio.wait_for(
                http_get(host, port, spec.action.get("path") or "/", spec.action.get("httpHeaders") or [],
                         spec.timeout), spec.timeout)
        if spec.handler == "tcpSocket":
            host = spec.action.get("host") or pod_ip
            return await tcp_socket(host, resolve_port(spec.action.get("port"), container), spec.timeout)
        if spec.handler == "exec":
            code, _ = await exec_(list(spec.action.get("command") or []), spec.timeout)
            return code == 0
        return False              # grpc probes are not implemented
    except (OSError, asyncio.TimeoutError, ValueError) as exc:
        log.debug("%s probe of %s failed: %s", spec.kind, container.get("name"), exc)
        return False
