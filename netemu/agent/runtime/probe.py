"""Probe and exec helpers for the kubelet: httpGet, tcpSocket, exec, and ``netemu exec``.

Where probes come from: like upstream's kubelet, from the NODE's network namespace to the pod
IP (``netns=None`` in the agent, which runs in its node's namespace), so a probe's source is the
node (the cni0 gateway) and a NetworkPolicy-like drop or a dead pod IP fails it as it would
upstream. A ``netns`` may be given to probe from elsewhere (tests probing a node they made).
Results follow upstream's messages and rules: HTTP 200-399 is success (a redirect is not
followed), a connect/timeout error is a failure with Go-like wording.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import os
from dataclasses import dataclass

from .nsenter import preexec_enter, socket_in_netns

MAX_BODY = 10 * 1024  # upstream reads at most 10 KiB of a probe's response


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str = ""
    status: int | None = None  # HTTP status when there was one
    body: bytes = b""


async def _connect(netns: str | None, ip: str, port: int, timeout: float):
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket_in_netns(netns, family, socket.SOCK_STREAM)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (ip, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def _why(exc: OSError) -> str:
    """Go's wording of a socket error: ``connection refused``, ``no route to host``."""
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


async def tcp_connect(ip: str, port: int, timeout: float = 1.0, netns: str | None = None) -> ProbeResult:
    """tcpSocket probe: success when a TCP connection opens within ``timeout``."""
    try:
        sock = await _connect(netns, ip, port, timeout)
    except asyncio.TimeoutError:
        return ProbeResult(False, f"dial tcp {_hostport(ip, port)}: i/o timeout")
    except OSError as exc:
        return ProbeResult(False, f"dial tcp {_hostport(ip, port)}: connect: {_why(exc)}")
    sock.close()
    return ProbeResult(True)


async def http_get(ip: str, port: int, path: str = "/", timeout: float = 1.0,
                   netns: str | None = None, headers: dict[str, str] | None = None,
                   host: str | None = None) -> ProbeResult:
    """httpGet probe: one HTTP/1.1 GET, success for status 200-399 within ``timeout``."""
    url = f"http://{_hostport(host or ip, port)}{path}"
    try:
        return await asyncio.wait_for(_http_get(ip, port, path, timeout, netns, headers or {}, host), timeout)
    except asyncio.TimeoutError:
        return ProbeResult(False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)')
    except OSError as exc:
        return ProbeResult(False, f'Get "{url}": dial tcp {_hostport(ip, port)}: connect: {_why(exc)}')
    except ValueError as exc:
        return ProbeResult(False, f'Get "{url}": {exc}')


async def _http_get(ip, port, path, timeout, netns, headers, host) -> ProbeResult:
    sock = await _connect(netns, ip, port, timeout)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        lines = [f"GET {path or '/'} HTTP/1.1", f"Host: {host or _hostport(ip, port)}",
                 "User-Agent: kube-probe/1.32", "Accept: */*", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items() if "\r" not in k + v and "\n" not in k + v]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.decode("latin-1").split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"malformed HTTP response {status_line[:80]!r}")
        status = int(parts[1])
        rest = await reader.read(MAX_BODY + 8192)
        body = rest.split(b"\r\n\r\n", 1)[1][:MAX_BODY] if b"\r\n\r\n" in rest else b""
    finally:
        writer.close()
    if 200 <= status < 400:
        return ProbeResult(True, status=status, body=body)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {status}", status, body)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int        # 128 + N when killed by signal N; -1 when it could not start
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


async def exec_in(netns: str | None, argv: list[str], *, timeout: float | None = None,
                  env: dict[str, str] | None = None, hostname: str | None = None,
                  stdin: bytes | None = None) -> ExecResult:
    """Run ``argv`` (a list, never a shell string) in ``netns``; capture its output.

    Used by exec probes (timeout = the probe's timeoutSeconds; the whole process group is
    killed when it expires) and by ``netemu exec POD -- CMD``.
    """
    if not argv:
        raise ValueError("exec needs a command")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            preexec_fn=preexec_enter(netns, hostname))
    except (OSError, subprocess.SubprocessError) as exc:
        return ExecResult(-1, b"", f"exec {argv[0]}: {exc}".encode())
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = await proc.communicate()
        return ExecResult(128 + signal.SIGKILL, out, err, timed_out=True)
    code = proc.returncode
    return ExecResult(128 - code if code < 0 else code, out, err)
