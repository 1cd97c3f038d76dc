"""Containers of other images: a real process from the host's binaries, inside the pod netns.

The image only names *what* it would have been; ``command`` + ``args`` say what runs. The
process joins the pod's network namespace and a private UTS namespace with the pod's hostname
(nsenter.preexec_enter), starts a new session (so stop signals its whole process group), gets
the container's env and working dir, and writes stdout and stderr to the container's log file.
A container with ``stdin`` or ``tty`` has its stdio held by the runtime instead (stdio.py: a
pipe or a terminal, its output copied to the log and to attached clients). Stop is the
kubelet's: SIGTERM to the group, SIGKILL after the grace period.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time

from .builtin import ContainerStartError
from .nsenter import preexec_enter
from .stdio import ContainerIO, make_controlling_tty

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def container_env(container: dict, hostname: str, extra: dict[str, str] | None = None,
                  field_values: dict[str, str] | None = None) -> dict[str, str]:
    """The process environment: PATH and HOSTNAME, then ``extra`` (e.g. Service variables
    from the kubelet), then the container's env (value, or valueFrom.fieldRef looked up in
    ``field_values`` such as {"metadata.name": ..., "status.podIP": ...}). Pure."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname, **(extra or {})}
    for var in container.get("env") or []:
        name = var.get("name")
        if not name:
            continue
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
        else:
            ref = ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if ref and field_values and ref in field_values:
                env[name] = field_values[ref]
    return env


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known variables replaced, ``$$`` is a literal ``$``,
    unknown references left as written. Pure."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and ")" in text[i + 2:]:
            end = text.index(")", i + 2)
            name = text[i + 2:end]
            out.append(env[name] if name in env else text[i:end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class ProcessContainer:
    """One running process container. ``start`` then ``wait``/``stop``."""

    def __init__(self, argv: list[str], netns: str | None, hostname: str, log_path: str,
                 env: dict[str, str], working_dir: str | None = None, etc_dir: str | None = None,
                 binds: list[tuple[str, str]] | tuple = (), stdio: tuple[bool, bool, bool] = (False, False, False)):
        """``stdio``: the container's (stdin, tty, stdinOnce)."""
        self.argv = [expand(a, env) for a in argv]
        self.etc_dir = etc_dir
        self.binds = list(binds)          # read-only (host path, pod path): the ServiceAccount dir
        self.netns, self.hostname, self.log_path = netns, hostname, log_path
        self.env, self.working_dir = env, working_dir
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at: float | None = None
        self.stdio = stdio
        self.io: ContainerIO | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        exe = self.argv[0] if self.argv else ""
        found = exe if "/" in exe else shutil.which(exe, path=self.env.get("PATH", DEFAULT_PATH))
        if not found or not os.access(found, os.X_OK):
            raise ContainerStartError(
                "StartError", f'exec: "{exe}": executable file not found in $PATH', 128)
        if self.working_dir and not os.path.isdir(self.working_dir):
            raise ContainerStartError("StartError", f"working dir {self.working_dir!r} does not exist", 128)
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        stdin, tty, stdin_once = self.stdio
        enter = preexec_enter(self.netns, self.hostname, self.etc_dir, self.binds)
        kwargs = dict(env=self.env, cwd=self.working_dir or "/", executable=found)
        try:
            if stdin or tty:
                self.io = ContainerIO(self.log_path, stdin, tty, stdin_once)
                try:
                    self.proc = await asyncio.create_subprocess_exec(
                        found, *self.argv[1:], **self.io.child_files(), **kwargs,
                        preexec_fn=(lambda: (enter(), make_controlling_tty())) if tty else enter)
                except BaseException:
                    self.io.abandon()
                    raise
                await self.io.started(self.proc)
            else:
                with open(self.log_path, "ab") as log:
                    self.proc = await asyncio.create_subprocess_exec(
                        found, *self.argv[1:], stdin=subprocess.DEVNULL, stdout=log,
                        stderr=subprocess.STDOUT, preexec_fn=enter, **kwargs)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ContainerStartError("StartError", f"starting {exe}: {exc}", 128) from exc
        self.started_at = time.time()

    async def wait(self) -> int:
        """The exit code; killed by signal N reports 128 + N, as a container runtime does."""
        code = await self.proc.wait()
        return 128 - code if code < 0 else code

    async def stop(self, grace: float = 30.0) -> int:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; the exit code."""
        if self.proc.returncode is None:
            self._signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.wait(), timeout=max(grace, 0))
            except asyncio.TimeoutError:
                pass
            self._signal(signal.SIGKILL)
        return await self.wait()

    def kill(self) -> None:
        """SIGKILL to the whole process group now (``wait`` then reports 137)."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # its own session: the group id is its pid
        except ProcessLookupError:
            pass
