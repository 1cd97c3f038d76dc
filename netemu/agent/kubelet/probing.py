"""Running one probe (the effects): httpGet and tcpSocket from the node to the pod IP, as
upstream's kubelet does from the host namespace (the agent runs in the node's namespace), exec
through the runtime in the pod's namespace. The runtime's probe helpers give upstream's failure
messages ("HTTP probe failed with statuscode: 500", "dial tcp ...: connect: connection refused"),
which end up in the Unhealthy Events. ``run_hook`` runs a container's lifecycle hook the same
ways (postStart, preStop)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Awaitable, Callable

from netemu.agent.kubelet.hooks import LIFECYCLE_AGENT, Hook, exec_error, failure_message
from netemu.agent.kubelet.probes import ProbeSpec, resolve_port
from netemu.agent.runtime import http_get, tcp_connect
from netemu.agent.runtime.probe import MAX_BODY, fetch
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


NO_TIMEOUT = 24 * 3600.0    # upstream runs postStart's exec/httpGet without a timeout of their own


async def run_hook(hook: Hook, container: Obj, pod: Obj, pod_ip: str, exec_: Exec,
                   timeout: float = NO_TIMEOUT) -> str | None:
    """Run one lifecycle handler (hooks.py): None when it succeeded, else upstream's failure
    message. ``timeout`` bounds an exec (the process is killed) and an httpGet; the caller
    abandons a preStop hook when the grace period is over (upstream does the same)."""
    try:
        if hook.handler == "exec":
            argv = [str(a) for a in hook.action.get("command") or []]
            if not argv:
                return failure_message(hook, container, pod, "exec needs a command")
            code, output = await exec_(argv, timeout)
            text = output.decode(errors="replace")
            return None if code == 0 else failure_message(hook, container, pod, exec_error(argv, code, text), text)
        if hook.handler == "httpGet":
            error = await _http_hook(hook.action, container, pod_ip, timeout)
            return None if error is None else failure_message(hook, container, pod, error)
        if hook.handler == "sleep":
            await asyncio.sleep(max(float(hook.action.get("seconds") or 0), 0.0))
            return None
        return failure_message(hook, container, pod, f"invalid handler: {hook.handler}")
    except (OSError, ValueError) as exc:
        return failure_message(hook, container, pod, str(exc))


async def _http_hook(action: Obj, container: Obj, pod_ip: str, timeout: float) -> str | None:
    """handlers.go runHTTPHandler: one GET; only a transport error fails it (any status code
    counts as done, the body is discarded)."""
    if (action.get("scheme") or "HTTP").upper() != "HTTP":
        return "HTTPS lifecycle hooks are not supported by netemu"
    host, port = action.get("host") or pod_ip, resolve_port(action.get("port"), container)
    path = action.get("path") or "/"
    path = path if path.startswith("/") else "/" + path
    headers = {h["name"]: h.get("value", "") for h in action.get("httpHeaders") or [] if h.get("name")}
    host_header = next((headers.pop(k) for k in list(headers) if k.lower() == "host"), None)
    url = f"http://{host}:{port}{path}"
    try:
        await asyncio.wait_for(fetch(host, port, path, timeout, None,
                                     {"User-Agent": LIFECYCLE_AGENT, "Accept": "*/*", **headers},
                                     host_header, limit=MAX_BODY), timeout)
    except asyncio.TimeoutError:
        return f'Get "{url}": context deadline exceeded'
    except OSError as exc:
        return f'Get "{url}": dial tcp {host}:{port}: connect: {os.strerror(exc.errno).lower() if exc.errno else exc}'
    except ValueError as exc:
        return f'Get "{url}": {exc}'
    return None
