"""The kubelet <-> container runtime protocol: a small CRI over a local Unix socket.

Upstream's kubelet talks gRPC to containerd's socket (the CRI: RunPodSandbox, ListPodSandbox,
StartContainer, ListContainers, ExecSync, GetContainerEvents ...). Ours is the same shape in
newline-delimited JSON, which both sides import from here (below both in the agent's layers):

    -> {"id": 7, "method": "StartContainer", "params": {...}}
    <- {"id": 7, "result": {...}}          or  {"id": 7, "error": {"type", "message", ...}}
    <- {"event": "ContainerExited", "container": ID, "exit_code": 137, "finished_at": t}

Methods (params -> result):
    Version {} -> {"runtime": "netemu", "pid"}
    SetupNode {pod_cidr} -> {}                      cni0, forwarding (remembered across restarts)
    SetRoutes {routes: {cidr: via}} -> {}
    RunPodSandbox {pod} -> {ip, hostname}           idempotent per pod uid (same IP again)
    SetPodEtc {pod, files: {name: text}} -> {}      resolv.conf, hosts (the kubelet forms them)
    RemovePodSandbox {pod} -> {}                    its containers must have stopped
    RemoveOrphans {live: [uid]} -> {removed: [uid]}
    ListPodSandbox {} -> {sandboxes: [{uid, ip, netns}]}
    StartContainer {pod, container, attempt, env, mounts} -> {id, started_at}
                                                    env {name: value}, mounts [[host, pod path]] (read-only)
    StopContainer {id, signal: "TERM"|"KILL"} -> {}
    RemoveContainer {id} -> {}                      forget an exited container
    ListContainers {} -> {containers: [ContainerInfo]}
    ListContainerStats {} -> {stats: [{id, pod_uid, name, cpu_ns, memory_bytes}], timestamp}
    ExecSync {pod, argv, timeout} -> {exit_code, output (latin-1 text)}
    Attach {container, stdin, stdout, stderr, tty} -> {}
                                                    on a connection of its own, which then carries the
                                                    session's frames (api/execstream.py) both ways
                                                    (a CRI runtime's streaming server: runtime/attach.py)

A container the runtime runs outlives a kubelet that dies (a new kubelet lists it and adopts
it); when the runtime itself dies its containers die with it, and the kubelet sees every one
of them exit (137) at once.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from typing import Any

MAX_LINE = 16 * 1024 * 1024        # a pod object with big annotations still fits
METHODS = ("Version", "SetupNode", "SetRoutes", "RunPodSandbox", "SetPodEtc", "RemovePodSandbox", "RemoveOrphans",
           "ListPodSandbox", "StartContainer", "StopContainer", "RemoveContainer", "ListContainers",
           "ListContainerStats", "ExecSync")


class RuntimeUnavailable(ConnectionError):
    """The runtime's socket is not there or the connection broke (the runtime died)."""


class RemoteError(RuntimeError):
    """The runtime refused a call; ``reason``/``exit_code`` as a ContainerStartError has them."""

    def __init__(self, type_: str, message: str, reason: str = "", exit_code: int | None = None):
        super().__init__(message)
        self.type, self.message, self.reason, self.exit_code = type_, message, reason, exit_code


@dataclass
class ContainerInfo:
    """What ListContainers says of one container instance (CRI's ContainerStatus, trimmed)."""

    id: str
    pod_uid: str
    name: str
    attempt: int                       # the kubelet's restart count when it was started
    state: str                         # running | exited
    started_at: float
    finished_at: float | None = None
    exit_code: int | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ContainerInfo":
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


def trimmed_pod(pod: dict) -> dict:
    """The pod as the runtime gets it (what a CRI PodSandboxConfig and ContainerConfig carry
    between them: metadata, the spec with its volumes, hostname and hostNetwork), without its
    status and managedFields, which the runtime never reads."""
    meta = {k: v for k, v in (pod.get("metadata") or {}).items() if k != "managedFields"}
    return {"metadata": meta, "spec": pod.get("spec") or {}}


def encode(message: dict) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


def error_of(exc: BaseException) -> dict:
    """An exception as the error member of an answer (keeps a start error's reason/exit code)."""
    return {"type": type(exc).__name__, "message": str(getattr(exc, "message", "") or exc),
            "reason": getattr(exc, "reason", "") or "", "exit_code": getattr(exc, "exit_code", None)}


class Connection:
    """The client side: calls with ids over one connection, events to ``on_event``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, on_event):
        self.reader, self.writer, self.on_event = reader, writer, on_event
        self.pending: dict[int, asyncio.Future] = {}
        self.next_id = 0
        self.closed = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, path: str, on_event) -> "Connection":
        try:
            reader, writer = await asyncio.open_unix_connection(path, limit=MAX_LINE)
        except OSError as exc:
            raise RuntimeUnavailable(f"container runtime at {path}: {exc.strerror or exc}") from None
        return cls(reader, writer, on_event)

    async def call(self, method: str, **params: Any) -> Any:
        if self.closed.done():
            raise RuntimeUnavailable("the connection to the container runtime is closed")
        self.next_id += 1
        ident = self.next_id
        future = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        try:
            self.writer.write(encode({"id": ident, "method": method, "params": params}))
            await self.writer.drain()
        except (OSError, RuntimeError) as exc:
            self.pending.pop(ident, None)
            raise RuntimeUnavailable(f"container runtime: {exc}") from None
        return await future

    async def _read(self) -> None:
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                message = json.loads(line)
                if "event" in message:
                    self.on_event(message)
                    continue
                future = self.pending.pop(message.get("id"), None)
                if future is None or future.done():
                    continue
                if "error" in message:
                    e = message["error"]
                    future.set_exception(RemoteError(e.get("type", ""), e.get("message", ""),
                                                     e.get("reason", ""), e.get("exit_code")))
                else:
                    future.set_result(message.get("result"))
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(RuntimeUnavailable("the container runtime went away"))
            self.pending.clear()
            if not self.closed.done():
                self.closed.set_result(None)

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (OSError, asyncio.CancelledError):
            pass
        await asyncio.gather(self._task, return_exceptions=True)
