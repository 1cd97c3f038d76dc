"""Running one probe (the effects): httpGet and tcpSocket from the node to the pod IP, as
upstream's kubelet does from the host namespace (the agent runs in the node's namespace), exec
through the runtime in the pod's namespace. The runtime's probe helpers give upstream's failure
messages ("HTTP probe failed with statuscode: 500", "dial tcp ...: connect: connection refused"),
which end up in the Unhealthy Events."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from netemu.agent.kubelet.probes import ProbeSpec, resolve_port
from netemu.agent.runtime import http_get, tcp_connect
from netemu.api.meta import Obj

log = logging.getLogger(__name__)
Exec = Callable[[list[str], float], Awaitable[tuple[int, bytes]]]


async def run_probe(spec: ProbeSpec, container: Obj, pod_ip: str, exec_: Exec) -> tuple[bool, str]:
    """One probe attempt: (success, failure message); errors and timeouts are failures."""
    try:
        if spec.handler == "httpGet":
            if (spec.action.get("scheme") or "HTTP").upper() != "HTTP":
                return False, "HTTPS probes are not supported by netemu"
            headers = {h["name"]: h.get("value", "") for h in spec.action.get("httpHeaders") or [] if h.get("name")}
            host_header = next((headers.pop(k) for k in list(headers) if k.lower() == "host"), None)
            result = await http_get(spec.action.get("host") or pod_ip, resolve_port(spec.action.get("port"), container),
                                    spec.action.get("path") or "/", spec.timeout, headers=headers,
                                    host=host_header)
            return result.ok, result.message
        if spec.handler == "tcpSocket":
            host = spec.action.get("host") or pod_ip
            result = await tcp_connect(host, resolve_port(spec.action.get("port"), container), spec.timeout)
            return result.ok, result.message
        if spec.handler == "exec":
            code, output = await exec_(list(spec.action.get("command") or []), spec.timeout)
            text = output.decode(errors="replace").strip()
            return code == 0, text or f"command exited with code {code}"
        return False, f"{spec.handler} probes are not supported by netemu"
    except (OSError, asyncio.TimeoutError, ValueError) as exc:
        log.debug("%s probe of %s failed: %s", spec.kind, container.get("name"), exc)
        return False, str(exc)
