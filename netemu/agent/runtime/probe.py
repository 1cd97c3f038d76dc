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
    status, body = await fetch(ip, port, path or "/", timeout, netns,
                               {"User-Agent": "kube-probe/1.32", "Accept": "*/*", **headers},
                               host, limit=MAX_BODY)
    if 200 <= status < 400:
        return ProbeResult(True, status=status, body=body)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {status}", status, body)


async def fetch(ip: str, port: int, target: str, timeout: float, netns: str | None = None,
                headers: dict[str, str] | None = None, host: str | None = None,
                limit: int = 1 << 20) -> tuple[int, bytes]:
    """One HTTP/1.1 GET from ``netns`` (status, body up to ``limit`` bytes).

    Raises OSError (connect), asyncio.TimeoutError (connect) or ValueError (bad answer); the
    caller bounds the whole exchange with its own timeout.
    """
    sock = await _connect(netns, ip, port, timeout)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        lines = [f"GET {target} HTTP/1.1", f"Host: {host or _hostport(ip, port)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()
                  if "\r" not in k + v and "\n" not in k + v]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        first, *rest = head.decode("latin-1").split("\r\n")
        parts = first.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"malformed HTTP response {first[:80]!r}")
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest if h)}
        if "chunked" in fields.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader, limit)
        elif "content-length" in fields:
            body = await reader.readexactly(min(int(fields["content-length"]), limit))
        else:
            body = await reader.read(limit)
        return int(parts[1]), body
    except asyncio.IncompleteReadError as exc:
        raise ValueError("unexpected EOF") from exc
    finally:
        writer.close()


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    body = b""
    while len(body) < limit:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        body += await reader.readexactly(size)
        await reader.readline()
    return body[:limit]


@dataclass(frozen=True)
class ExecResult:
    exit_code: int        # 128 + N when killed by signal N; -1 when it could not start
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


async def exec_in(netns: str | None, argv: list[str], *, timeout: float | None = None,
                  env: dict[str, str] | None = None, hostname: str | None = None,
                  stdin: bytes | None = None, etc_dir: str | None = None) -> ExecResult:
    """Run ``argv`` (a list, never a shell string) in ``netns``; capture its output.

    Used by exec probes (timeout = the probe's timeoutSeconds; the whole process group is
    killed when it expires) and by ``netemu exec POD -- CMD``. ``etc_dir``: the pod's /etc
    files (resolv.conf, hosts), bound over /etc for the command as for the pod's containers.
    """
    if not argv:
        raise ValueError("exec needs a command")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            preexec_fn=preexec_enter(netns, hostname, etc_dir))
    except (OSError, subprocess.SubprocessError) as exc:
        return ExecResult(-1, b"", f"exec {argv[0]}: {exc}".encode())
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.CancelledError:       # the caller gave up (a preStop hook abandoned): no orphan
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise
    except asyncio.TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = await proc.communicate()
        return ExecResult(128 + signal.SIGKILL, out, err, timed_out=True)
    code = proc.returncode
    return ExecResult(128 - code if code < 0 else code, out, err)
