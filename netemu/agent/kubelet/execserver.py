"""pods/exec on the node: the kubelet's ``/exec/NS/POD/CONTAINER`` on port 10250.

The API server (apiserver/podexec.py) upgrades kubectl's request to a WebSocket and this
connection to a stream of channel frames (api/execstream.py). The command runs where the
container's processes run: in the pod's network and UTS namespaces, with the pod's resolv.conf
and hosts and its ServiceAccount directory bound in a private mount namespace
(nsenter.preexec_enter, as the runtime starts a process container), the container's env and
working directory, on the node's userland (netemu's images are the node's own binaries). With
``tty`` it gets a pseudo-terminal (resized by channel 4), else pipes. When the command exits
its exit code goes back as the error channel's Status; when the API side goes away first the
command's process group is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pty
import shutil
import signal
from dataclasses import dataclass, field
from typing import Callable

from netemu.agent.runtime.etcfiles import netns_etc_dir
from netemu.agent.runtime.names import pod_hostname, pod_netns_of
from netemu.agent.runtime.nsenter import preexec_enter
from netemu.agent.runtime.process import DEFAULT_PATH, container_env
from netemu.agent.runtime.stdio import make_controlling_tty, set_winsize
from netemu.api import execstream as xs
from netemu.api.meta import Obj, pod_containers, running_containers

log = logging.getLogger(__name__)
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
READ_SIZE = 32 * 1024
FIRST_SIZE_WAIT = 1.0


@dataclass
class Place:
    """Where and how a command of ``pod``'s container runs (what ``place`` computes)."""

    netns: str | None                 # None: the node's own (hostNetwork)
    hostname: str | None
    etc_dir: str | None
    binds: list[tuple[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = "/"


def place(pod: Obj, container: Obj, state_dir: str, volumes_dir: str | None,
          service_env: dict[str, str] | None = None) -> Place:
    """The pod's namespaces, /etc files and ServiceAccount directory as its containers have
    them; the env is the container's after ``service_env`` (the kubernetes Service's)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    uid = meta.get("uid", "")
    if spec.get("hostNetwork"):
        netns, hostname = None, None
        etc = os.path.join(state_dir, "runtime", "etc", uid)
    else:
        netns, hostname = pod_netns_of(pod), pod_hostname(pod)
        etc = netns_etc_dir(netns)
    sa_dir = os.path.join(volumes_dir, uid, "serviceaccount") if volumes_dir else ""
    binds = [(sa_dir, SA_MOUNT)] if sa_dir and os.path.isdir(sa_dir) and os.path.isdir(SA_MOUNT) else []
    fields = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
              "metadata.uid": uid, "spec.nodeName": spec.get("nodeName", ""),
              "status.podIP": (pod.get("status") or {}).get("podIP", "")}
    env = container_env(container, hostname or os.uname().nodename, service_env, fields)
    return Place(netns, hostname, etc if os.path.isdir(etc) else None, binds, env,
                 container.get("workingDir") or "/")


class ExecSession:
    """One command and its streams; ``run`` until it exits (or the API side leaves)."""

    def __init__(self, opts: xs.ExecOptions, where: Place, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.opts, self.where, self.reader, self.writer = opts, where, reader, writer
        self.proc: asyncio.subprocess.Process | None = None
        self.master: int | None = None            # the pty's side we hold (tty)
        self.slave: int | None = None             # the command's side, until it has it
        self._pending: asyncio.Future | None = None    # a frame read _first_size left under way
        self._gone = False                        # the API side left during _first_size

    def send(self, channel: int, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(xs.frame(channel, data))

    async def run(self) -> None:
        exe = self.opts.command[0]
        found = exe if "/" in exe else shutil.which(exe, path=self.where.env.get("PATH", DEFAULT_PATH))
        if not found or not os.access(found, os.X_OK):
            return self._finish(xs.failure_status(f'exec: "{exe}": executable file not found in $PATH'))
        early = await self._first_size() if self.opts.tty else []
        if self.opts.tty:
            self.master, self.slave = pty.openpty()
            for channel, data in early:         # the size first: the command sees it at once
                if channel == xs.RESIZE:
                    self._resize(data)
            early = [(c, d) for c, d in early if c != xs.RESIZE]
        try:
            await self._start(found)
        except OSError as exc:
            return self._finish(xs.failure_status(f"exec: {exe}: {exc.strerror or exc}"))
        outputs = self._outputs()
        for channel, data in early:
            await self._input(channel, data)
        inputs = asyncio.ensure_future(self._inputs())
        waiting = asyncio.ensure_future(self.proc.wait())
        await asyncio.wait([waiting, inputs], return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():                    # the API side left: end the command
            self._kill()
            await waiting
        await asyncio.gather(*outputs, return_exceptions=True)
        inputs.cancel()
        await asyncio.gather(inputs, return_exceptions=True)
        code = self.proc.returncode
        self._finish(xs.exit_status(128 - code if code < 0 else code, self.opts.command))

    def _finish(self, status: dict) -> None:
        self.send(xs.ERROR, json.dumps(status).encode())
        if self.slave is not None:              # the command never started
            with contextlib.suppress(OSError):
                os.close(self.slave)
            self.slave = None
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = None

    async def _start(self, found: str) -> None:
        w, o = self.where, self.opts
        enter = preexec_enter(w.netns, w.hostname, w.etc_dir, w.binds)
        kwargs = dict(env=w.env, cwd=w.working_dir if os.path.isdir(w.working_dir) else "/", executable=found)
        if o.tty:
            slave, self.slave = self.slave, None

            def enter_tty() -> None:
                enter()                                      # setsid() among the rest
                make_controlling_tty()
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    found, *o.command[1:], stdin=slave, stdout=slave, stderr=slave, preexec_fn=enter_tty, **kwargs)
            finally:
                os.close(slave)
            return
        pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        self.proc = await asyncio.create_subprocess_exec(
            found, *o.command[1:], stdin=pipe if o.stdin else null, stdout=pipe if o.stdout else null,
            stderr=pipe if o.stderr else null, preexec_fn=enter, **kwargs)

    def _outputs(self) -> list[asyncio.Future]:
        if self.master is not None:
            return [asyncio.ensure_future(self._copy_pty())]
        return [asyncio.ensure_future(self._copy(stream, channel))
                for stream, channel in ((self.proc.stdout, xs.STDOUT), (self.proc.stderr, xs.STDERR)) if stream]

    async def _copy(self, stream: asyncio.StreamReader, channel: int) -> None:
        while data := await stream.read(READ_SIZE):
            self.send(channel, data)
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.drain()

    async def _copy_pty(self) -> None:
        """The terminal's output until the command (and whatever holds the pty) is gone (EIO)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.run_in_executor(None, os.read, self.master, READ_SIZE)
            except OSError:
                return
            if not data:
                return
            self.send(xs.STDOUT, data)
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.drain()

    async def _first_size(self) -> list[tuple[int, bytes]]:
        """kubectl sends the terminal's size just after the upgrade: wait for it (up to
        FIRST_SIZE_WAIT) before the command starts, so that its first look at the terminal sees
        the size (as a runtime creates the exec's console with it); the frames read meanwhile
        are handed on in order. A read still under way is kept for ``_inputs`` (never cut)."""
        early: list[tuple[int, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIRST_SIZE_WAIT
        while (left := deadline - loop.time()) > 0:
            self._pending = asyncio.ensure_future(xs.read_frame(self.reader))
            done, _ = await asyncio.wait([self._pending], timeout=left)
            if not done:
                break
            got, self._pending = self._pending.result(), None
            if got is None:
                self._gone = True
                break
            early.append(got)
            if got[0] == xs.RESIZE:
                break
        return early

    async def _inputs(self) -> None:
        """Frames from the API side until it leaves."""
        if self._pending is not None:
            got = await self._pending
            if got is None:
                return
            await self._input(*got)
        if self._gone:
            return
        while (got := await xs.read_frame(self.reader)) is not None:
            await self._input(*got)

    async def _input(self, channel: int, data: bytes) -> None:
        """stdin, its close, a terminal resize."""
        if channel == xs.STDIN:
            await self._write_stdin(data)
        elif channel == xs.CLOSE and data[:1] == bytes([xs.STDIN]):
            await self._close_stdin()
        elif channel == xs.RESIZE and self.master is not None:
            self._resize(data)

    async def _write_stdin(self, data: bytes) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, data)
        elif self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.write(data)
            with contextlib.suppress(ConnectionError, OSError):
                await self.proc.stdin.drain()

    async def _close_stdin(self) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, b"\x04")           # the terminal's EOF
        elif self.proc.stdin is not None:
            self.proc.stdin.close()

    def _resize(self, data: bytes) -> None:
        try:
            set_winsize(self.master, *xs.terminal_size(data))
        except (xs.ExecError, OSError) as exc:
            log.info("exec: ignoring a resize %r: %s", data[:80], exc)

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


class ExecServer:
    """The kubelet's exec and attach endpoints over the pods ``find_pod(ns, name)`` knows;
    an attach goes to ``runtime.attach`` with the container's handle (``find_handle``)."""

    def __init__(self, find_pod: Callable[[str, str], Obj | None], state_dir: str, volumes_dir: str | None,
                 service_env: Callable[[], dict[str, str]] = dict, runtime=None,
                 find_handle: Callable[[Obj, str], object | None] | None = None):
        self.find_pod, self.state_dir, self.volumes_dir = find_pod, state_dir, volumes_dir
        self.service_env = service_env
        self.runtime, self.find_handle = runtime, find_handle

    def _running(self, namespace: str, name: str, container: str) -> tuple[Obj, Obj]:
        """(pod, container spec) of a running container, or LookupError/ExecError saying why not."""
        pod = self.find_pod(namespace, name)
        if pod is None:
            raise LookupError(f"pod {namespace}/{name} not found on this node")
        found = next((c for c in pod_containers(pod) if c.get("name") == container), None)
        if found is None:
            raise LookupError(f'container not found ("{container}")')
        if container not in running_containers(pod):
            raise xs.ExecError(f'container {container} is not running in pod {name}')
        return pod, found

    def prepare(self, namespace: str, name: str, container: str,
                query: dict[str, list[str]]) -> tuple[xs.ExecOptions, Place]:
        """(options, place) for the request, or LookupError/ExecError saying why not."""
        pod, found = self._running(namespace, name, container)
        return xs.parse_options(query), place(pod, found, self.state_dir, self.volumes_dir, self.service_env())

    async def serve(self, opts: xs.ExecOptions, where: Place, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        writer.write(UPGRADED)
        await ExecSession(opts, where, reader, writer).run()

    async def attach(self, namespace: str, name: str, container: str, query: dict[str, list[str]],
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The container's own process, through its runtime (which holds its stdio). The TTY is
        the container's (upstream's kubelet takes it from the spec: a process's terminal cannot
        change once it runs). Refusals (LookupError/ExecError) come before the upgrade."""
        pod, spec = self._running(namespace, name, container)
        opts = xs.parse_attach_options(query)
        tty = bool(spec.get("tty"))
        opts = xs.ExecOptions((), container, opts.stdin, opts.stdout, opts.stderr and not tty, tty)
        handle = self.find_handle(pod, container) if self.find_handle is not None else None
        if handle is None or self.runtime is None or not hasattr(self.runtime, "attach"):
            raise LookupError(f"container {container} not found in pod {name}_{namespace}")
        await self.runtime.attach(handle, opts, reader, writer, lambda: writer.write(UPGRADED))


UPGRADED = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: netemu-exec\r\nConnection: Upgrade\r\n\r\n"
