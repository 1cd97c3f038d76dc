"""The kubelet's runtime contract (cri.py in this package) over the runtime's socket.

The kubelet in its own process reaches the node's container runtime the way upstream's reaches
containerd: a local socket (netemu/agent/cri.py has the protocol). At start it lists what the
runtime runs (ListContainers, like upstream's relist of the CRI), so that pod workers adopt
running containers instead of starting second copies; a container that exited while the
kubelet was away is reported with its exit code and restarted per restartPolicy.

When the connection breaks, the runtime is gone, and its containers with it: every handle's
``wait`` then returns 137 at once (the kubelet reports them and restarts them), and each call
waits for the runtime to be back (the node supervisor restarts it), up to ``reconnect_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from types import SimpleNamespace
from typing import Awaitable, Callable

from netemu.agent import cri
from netemu.agent import runtime as rt
from netemu.agent.kubelet.dns import DNSSettings
from netemu.agent.kubelet.portforward import join
from netemu.agent.kubelet.runtime_adapter import etc_files
from netemu.agent.runtime.builtin import ContainerStartError
from netemu.api import execstream as xs
from netemu.api.meta import Obj

log = logging.getLogger(__name__)
LOST = 128 + 9     # what a container that died with its runtime reports (killed)


class RemoteHandle:
    def __init__(self, runtime: "RemoteRuntime", ident: str):
        self.runtime, self.id = runtime, ident
        self.exited: asyncio.Future = asyncio.get_running_loop().create_future()

    async def wait(self) -> int:
        return await asyncio.shield(self.exited)

    def signal(self, signum: int) -> None:
        if self.exited.done():
            return
        how = "KILL" if signum == signal.SIGKILL else "TERM"
        asyncio.ensure_future(self.runtime.stop_container(self.id, how))


class RemoteRuntime:
    """``survives_kubelet``: the kubelet's exit must leave the containers running."""

    survives_kubelet = True

    def __init__(self, endpoint: str, reconnect_timeout: float = 60.0, dns: DNSSettings | None = None):
        self.endpoint, self.reconnect_timeout = endpoint, reconnect_timeout
        self.dns = dns if dns is not None else DNSSettings()
        self.conn: cri.Connection | None = None
        self.handles: dict[str, RemoteHandle] = {}
        self.found: dict[tuple[str, str], cri.ContainerInfo] = {}   # at connect: (pod uid, name) -> newest
        self._exits: dict[str, int] = {}                            # exits seen before their handle
        self._lock = asyncio.Lock()
        self.connected = asyncio.Event()
        # the kubelet's hooks (serviceaccount.py): (env, binds) sent with StartContainer, as the
        # CRI's ContainerConfig carries envs and mounts; what to forget once a sandbox is gone
        self.pod_extras: Callable[[Obj, Obj], Awaitable[tuple[dict, list]]] | None = None
        self.pod_removed: Callable[[str], None] | None = None

    # ---- the connection ----

    async def connect(self) -> None:
        """Connect (retrying until ``reconnect_timeout``) and list what the runtime runs."""
        async with self._lock:
            if self.conn is not None and not self.conn.closed.done():
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.reconnect_timeout
            delay = 0.05
            while True:
                try:
                    self.conn = await cri.Connection.open(self.endpoint, self._on_event)
                    sandboxes = await self.conn.call("ListPodSandbox")
                    listed = await self.conn.call("ListContainers")
                    break
                except cri.RuntimeUnavailable as exc:
                    if loop.time() >= deadline:
                        raise
                    log.info("waiting for the container runtime (%s)", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
            self.found = {}
            for c in sorted((cri.ContainerInfo.from_json(d) for d in listed["containers"]),
                            key=lambda c: (c.attempt, c.started_at)):
                self.found[(c.pod_uid, c.name)] = c
            asyncio.ensure_future(self._watch_connection(self.conn))
            self.connected.set()
            log.info("container runtime at %s: %d pod sandboxes, %d containers known", self.endpoint,
                     len(sandboxes["sandboxes"]), len(self.found))

    async def _watch_connection(self, conn: cri.Connection) -> None:
        await conn.closed
        if self.conn is conn:
            self.connected.clear()
            log.warning("the container runtime went away: its %d running containers are gone",
                        sum(1 for h in self.handles.values() if not h.exited.done()))
            for handle in self.handles.values():
                if not handle.exited.done():
                    handle.exited.set_result(LOST)

    async def call(self, method: str, **params):
        for attempt in range(2):
            await self.connect()
            try:
                return await self.conn.call(method, **params)
            except cri.RuntimeUnavailable:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _on_event(self, event: dict) -> None:
        if event.get("event") != "ContainerExited":
            return
        ident, code = event.get("container"), int(event.get("exit_code") or 0)
        handle = self.handles.get(ident)
        if handle is None:
            self._exits[ident] = code
        elif not handle.exited.done():
            handle.exited.set_result(code)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    # ---- the kubelet's contract ----

    async def container_stats(self) -> dict:
        """The runtime's ListContainerStats (cumulative CPU and memory per running container)."""
        return await self.call("ListContainerStats")

    async def setup_node(self, pod_cidr: str) -> None:
        await self.call("SetupNode", pod_cidr=pod_cidr)

    async def set_routes(self, routes: dict[str, str]) -> None:
        await self.call("SetRoutes", routes=routes)

    def unsupported(self, container: Obj) -> tuple[str, str] | None:
        how = rt.resolve(container)
        return (how.reason, how.message) if isinstance(how, rt.Unsupported) else None

    async def create_sandbox(self, pod: Obj) -> str:
        """The sandbox, then its /etc files (resolv.conf, hosts: formed here, by the kubelet,
        from the sandbox's IP and hostname; written there, by the runtime)."""
        made = await self.call("RunPodSandbox", pod=cri.trimmed_pod(pod))
        files = etc_files(pod, self.dns)
        if files is not None:
            sandbox = SimpleNamespace(ip=made["ip"], hostname=made["hostname"])
            await self.call("SetPodEtc", pod=cri.trimmed_pod(pod), files=files(sandbox))
        return made["ip"]

    async def remove_sandbox(self, pod: Obj) -> None:
        await self.call("RemovePodSandbox", pod=cri.trimmed_pod(pod))
        if self.pod_removed is not None:
            self.pod_removed((pod.get("metadata") or {}).get("uid", ""))

    async def remove_orphans(self, live_uids: set[str]) -> list[str]:
        removed = (await self.call("RemoveOrphans", live=sorted(live_uids)))["removed"]
        for uid in removed if self.pod_removed is not None else ():
            self.pod_removed(uid)
        return removed

    def adopt(self, pod: Obj, name: str) -> tuple[RemoteHandle | None, cri.ContainerInfo] | None:
        """The container ``name`` of ``pod`` the runtime had when this kubelet connected (once):
        (a handle when it still runs, its info), or None."""
        info = self.found.pop(((pod.get("metadata") or {}).get("uid", ""), name), None)
        if info is None:
            return None
        if info.state != "running":
            return None, info
        handle = self._handle(info.id)
        return handle, info

    def _handle(self, ident: str) -> RemoteHandle:
        handle = self.handles[ident] = RemoteHandle(self, ident)
        if ident in self._exits:
            handle.exited.set_result(self._exits.pop(ident))
        return handle

    async def start_container(self, pod: Obj, container: Obj, restart_count: int) -> RemoteHandle:
        env, binds = await self.pod_extras(pod, container) if self.pod_extras is not None else ({}, [])
        try:
            answer = await self.call("StartContainer", pod=cri.trimmed_pod(pod), container=container,
                                     attempt=restart_count, env=env, mounts=[list(b) for b in binds])
        except cri.RemoteError as exc:
            if exc.type == "ContainerStartError":
                raise ContainerStartError(exc.reason or "StartError", exc.message,
                                          exc.exit_code if exc.exit_code is not None else 128) from None
            raise
        return self._handle(answer["id"])

    async def stop_container(self, ident: str, how: str) -> None:
        try:
            await self.call("StopContainer", id=ident, signal=how)
        except (cri.RuntimeUnavailable, cri.RemoteError) as exc:
            log.info("stopping container %s: %s", ident, exc)

    async def attach(self, handle: RemoteHandle, opts: xs.ExecOptions, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, accept: Callable[[], None]) -> None:
        """CRI Attach on a connection of its own: once the runtime took it, ``accept()`` (the
        kubelet's 101 to the API server) and the two streams are joined byte for byte (both
        carry api/execstream.py frames). A refusal raises LookupError before ``accept``."""
        try:
            r, w = await asyncio.open_unix_connection(self.endpoint, limit=cri.MAX_LINE)
        except OSError as exc:
            raise xs.ExecError(f"container runtime at {self.endpoint}: {exc.strerror or exc}") from None
        try:
            w.write(cri.encode({"id": 1, "method": "Attach", "params": {
                "container": handle.id, "stdin": opts.stdin, "stdout": opts.stdout, "stderr": opts.stderr,
                "tty": opts.tty}}))
            try:
                answer = json.loads(await r.readline() or b"null") or {}
            except (OSError, ValueError) as exc:
                raise xs.ExecError(f"container runtime: {exc}") from None
            if "result" not in answer:
                raise LookupError((answer.get("error") or {}).get("message") or "the container runtime refused")
            accept()
            await join(reader, writer, r, w)
        finally:
            w.close()

    async def exec(self, pod: Obj, container: Obj, argv: list[str], timeout: float) -> tuple[int, bytes]:
        answer = await self.call("ExecSync", pod=cri.trimmed_pod(pod), argv=argv, timeout=timeout)
        return answer["exit_code"], answer["output"].encode("latin-1")
