"""The container runtime as a process of its own (containerd's part on a node), serving the
CRI of netemu/agent/cri.py on a Unix socket.

It holds the node's pod network, the sandboxes and every container: the built-in images'
servers (their sockets live in this process) and the process containers (its children, which
die with it: PR_SET_PDEATHSIG in nsenter.preexec_enter, as a node's containers die with
containerd in the issue's model). It survives the kubelet: a restarted kubelet lists the
containers (ListContainers) and adopts the running ones. What must survive the runtime itself
is on disk: the podCIDR it was set up with (``runtime/node.json``), IPAM's allocations; a new
runtime process sets the node up again from them, kills whatever process the previous one
left in a known sandbox, and then answers RunPodSandbox for a pod whose namespace exists with
the same IP (idempotent), so pods keep their addresses across its restarts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from netemu.agent import cri
from netemu.agent.runtime.attach import attach
from netemu.agent.runtime.builtin import ContainerStartError
from netemu.agent.runtime.etcfiles import netns_etc_dir, remove_etc, write_etc
from netemu.agent.runtime.node import NodeRuntime
from netemu.agent.runtime.probe import exec_in
from netemu.agent.runtime import stats
from netemu.api import execstream as xs
from netemu.agent.runtime.sandbox import Sandbox

log = logging.getLogger(__name__)
NO_DEADLINE = 365 * 24 * 3600.0


@dataclass
class Running:
    info: cri.ContainerInfo
    handle: Any                     # BuiltinContainer | ProcessContainer
    stopping: asyncio.Task | None = None


class RuntimeService:
    """The CRI methods over one node's NodeRuntime; ``serve`` puts them on a socket."""

    def __init__(self, state_dir: str, node_ip: str, node_name: str, api_factory=None, volume_api=None):
        """``api_factory(pod, container)``: API clients for the built-in apps that need one
        (CoreDNS), ``volume_api()`` the kubelet's for their configMap volumes, as NodeRuntime
        takes them."""
        self.state_dir, self.node_ip, self.node_name = state_dir, node_ip, node_name
        self.api_factory, self.volume_api = api_factory, volume_api
        self.node: NodeRuntime | None = None
        self.sandboxes: dict[str, Sandbox] = {}
        self.containers: dict[str, Running] = {}
        self.execs: dict[str, set[asyncio.Task]] = {}   # pod uid: ExecSync commands running
        self.clients: set[asyncio.StreamWriter] = set()
        self._ids = 0
        self._node_file = os.path.join(state_dir, "runtime", "node.json")

    # ---- start-up ----

    async def restore(self) -> None:
        """A runtime restarted on a node it had set up: the same network, and no process of
        the previous runtime's containers left running in the sandboxes (they died with it)."""
        try:
            with open(self._node_file) as f:
                cidr = json.load(f)["pod_cidr"]
        except (OSError, ValueError, KeyError):
            return
        await self._setup(cidr)

    async def _setup(self, pod_cidr: str) -> None:
        if self.node is None or str(self.node.network.cidr) != pod_cidr:
            self.node = NodeRuntime(self.state_dir, pod_cidr, None, self.api_factory, self.volume_api)
            await self.node.setup_node()
            kept = await self.node.recover()
            log.info("node network %s set up; %d sandboxes kept", pod_cidr, len(kept))
        os.makedirs(os.path.dirname(self._node_file), exist_ok=True)
        with open(self._node_file, "w") as f:
            json.dump({"pod_cidr": pod_cidr}, f)

    def _need_node(self) -> NodeRuntime:
        if self.node is None:
            raise RuntimeError("the node network is not set up yet (SetupNode first)")
        return self.node

    # ---- methods ----

    async def Version(self) -> dict:  # noqa: N802 - the CRI's method names
        return {"runtime": "netemu", "pid": os.getpid()}

    async def SetupNode(self, pod_cidr: str) -> dict:  # noqa: N802
        await self._setup(pod_cidr)
        return {}

    async def SetRoutes(self, routes: dict) -> dict:  # noqa: N802
        await self._need_node().network.sync_routes(dict(routes))
        return {}

    async def _sandbox(self, pod: dict) -> Sandbox:
        """The pod's sandbox; made (or found again, after a restart of this runtime, with the
        /etc files written for it before) when this process does not know it yet."""
        uid = pod["metadata"]["uid"]
        sandbox = self.sandboxes.get(uid)
        if sandbox is None:
            node = self._need_node()
            if (pod.get("spec") or {}).get("hostNetwork"):
                sandbox = node.host_sandbox(pod, self.node_ip, self.node_name)
                etc = node.host_etc_dir(uid)
            else:
                sandbox = await node.create_sandbox(pod)
                etc = netns_etc_dir(sandbox.netns)
            if os.path.isdir(etc):
                sandbox = dataclasses.replace(sandbox, etc_dir=etc)
            self.sandboxes[uid] = sandbox
        return sandbox

    async def RunPodSandbox(self, pod: dict) -> dict:  # noqa: N802
        sandbox = await self._sandbox(pod)
        return {"ip": sandbox.ip, "hostname": sandbox.hostname}

    async def SetPodEtc(self, pod: dict, files: dict) -> dict:  # noqa: N802
        """Write the pod's /etc files the kubelet formed (resolv.conf, hosts) where its
        processes see them: /etc/netns/<netns>, or the runtime's dir for a hostNetwork pod."""
        sandbox = await self._sandbox(pod)
        directory = self._need_node().host_etc_dir(sandbox.uid) if not sandbox.veth else netns_etc_dir(sandbox.netns)
        write_etc(directory, {str(k): str(v) for k, v in files.items()})
        self.sandboxes[sandbox.uid] = dataclasses.replace(sandbox, etc_dir=directory)
        return {}

    async def RemovePodSandbox(self, pod: dict) -> dict:  # noqa: N802
        uid = pod["metadata"]["uid"]
        for task in self.execs.pop(uid, set()):
            task.cancel()
        for cid in [c for c, r in self.containers.items() if r.info.pod_uid == uid]:
            self._kill(cid)
            self.containers.pop(cid, None)
        sandbox = self.sandboxes.pop(uid, None)
        hostnet = (pod.get("spec") or {}).get("hostNetwork") or (sandbox is not None and not sandbox.veth)
        if self.node is not None and not hostnet:
            await self.node.remove_sandbox(uid)
        elif self.node is not None:
            remove_etc(self.node.host_etc_dir(uid))
        return {}

    async def RemoveOrphans(self, live: list) -> dict:  # noqa: N802
        keep = set(live)
        for cid in [c for c, r in self.containers.items() if r.info.pod_uid not in keep]:
            self._kill(cid)
            self.containers.pop(cid, None)
        for uid in [u for u in self.sandboxes if u not in keep]:
            self.sandboxes.pop(uid, None)
        removed = await self.node.gc_sandboxes(keep) if self.node is not None else []
        return {"removed": removed}

    async def ListPodSandbox(self) -> dict:  # noqa: N802
        known = self.node.sandboxes.known() if self.node is not None else {}
        return {"sandboxes": [{"uid": uid, "ip": ip} for uid, ip in sorted(known.items())]}

    async def StartContainer(self, pod: dict, container: dict, attempt: int, env: dict | None = None,  # noqa: N802
                             mounts: list | None = None) -> dict:
        """``env`` and ``mounts`` ([host path, pod path], read-only) are the kubelet's, as the
        CRI's ContainerConfig envs and mounts: the kubernetes Service's variables and the pod's
        projected ServiceAccount directory."""
        sandbox = await self._sandbox(pod)
        for old in [c for c, r in self.containers.items()        # the exited instances it replaces
                    if r.info.pod_uid == sandbox.uid and r.info.name == container["name"] and r.info.state != "running"]:
            del self.containers[old]
        binds = [(str(src), str(dst)) for src, dst in mounts or []]
        handle = await self._need_node().start_container(sandbox, pod, container, attempt,
                                                         {str(k): str(v) for k, v in (env or {}).items()}, binds)
        self._ids += 1
        cid = f"{sandbox.uid[:8]}-{container['name']}-{attempt}-{self._ids}-{os.getpid()}"
        info = cri.ContainerInfo(cid, sandbox.uid, container["name"], attempt, "running",
                                 handle.started_at or time.time())
        self.containers[cid] = Running(info, handle)
        asyncio.ensure_future(self._watch(cid))
        return {"id": cid, "started_at": info.started_at}

    async def StopContainer(self, id: str, signal: str = "TERM") -> dict:  # noqa: N802, A002
        running = self.containers.get(id)
        if running is None or running.info.state != "running":
            return {}
        if signal == "KILL":
            self._kill(id)
        elif running.stopping is None:
            running.stopping = asyncio.ensure_future(running.handle.stop(NO_DEADLINE))
        return {}

    async def RemoveContainer(self, id: str) -> dict:  # noqa: N802, A002
        running = self.containers.get(id)
        if running is not None and running.info.state == "running":
            raise RuntimeError(f"container {id} is running")
        self.containers.pop(id, None)
        return {}

    async def ListContainers(self) -> dict:  # noqa: N802
        return {"containers": [r.info.to_json() for r in self.containers.values()]}

    async def ListContainerStats(self) -> dict:  # noqa: N802
        """CPU (cumulative) and memory of each running container: a process container's
        process tree from /proc, a built-in one's metered handler time (no memory of its own:
        it lives in this process, which the node's usage counts)."""
        procs = stats.snapshot()          # a few ms for a few hundred processes
        kids = stats.children_of(procs)
        out = []
        for cid, running in self.containers.items():
            if running.info.state != "running":
                continue
            pid = getattr(running.handle, "pid", None)
            usage = stats.tree_usage(procs, pid, kids) if pid else None
            out.append({"id": cid, "pod_uid": running.info.pod_uid, "name": running.info.name,
                        "cpu_ns": (usage.cpu_ns if usage else 0) + getattr(running.handle, "cpu_ns", 0),
                        "memory_bytes": usage.memory_bytes if usage else 0})
        return {"stats": out, "timestamp": time.time()}

    async def ExecSync(self, pod: dict, argv: list, timeout: float) -> dict:  # noqa: N802
        """Run argv in the pod's sandbox (exec probes, lifecycle hooks); a command still running
        when its sandbox is removed is killed with it, as with its container upstream."""
        sandbox = await self._sandbox(pod)
        task = asyncio.ensure_future(exec_in(sandbox.netns, [str(a) for a in argv], timeout=float(timeout),
                                             etc_dir=sandbox.etc_dir))
        running = self.execs.setdefault(sandbox.uid, set())
        running.add(task)
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
            return {"exit_code": 128 + signal.SIGKILL, "output": ""}     # killed with its sandbox
        finally:
            running.discard(task)
        return {"exit_code": result.exit_code, "output": (result.stdout + result.stderr).decode("latin-1")}

    # ---- containers ----

    def _kill(self, cid: str) -> None:
        running = self.containers.get(cid)
        if running is not None and running.info.state == "running":
            running.handle.kill()

    async def _watch(self, cid: str) -> None:
        running = self.containers[cid]
        code = await running.handle.wait()
        running.info.state, running.info.exit_code, running.info.finished_at = "exited", code, time.time()
        self.broadcast({"event": "ContainerExited", "container": cid, "exit_code": code,
                        "finished_at": running.info.finished_at})

    def broadcast(self, event: dict) -> None:
        data = cri.encode(event)
        for writer in list(self.clients):
            try:
                writer.write(data)
            except (OSError, RuntimeError):
                self.clients.discard(writer)

    # ---- the socket ----

    async def handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                request = json.loads(line)
                if request.get("method") == "Attach":      # the connection becomes the stream
                    self.clients.discard(writer)
                    await self._attach(request, reader, writer)
                    break
                asyncio.ensure_future(self._answer(request, writer))
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            log.info("a client left: %s", exc)
        finally:
            self.clients.discard(writer)
            writer.close()

    async def _attach(self, request: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """CRI Attach: answered on its own connection, which then carries the session's frames
        (api/execstream.py) both ways, as the stream a CRI runtime's streaming server gives."""
        params = request.get("params") or {}
        running = self.containers.get(str(params.get("container")))
        if running is None or running.info.state != "running":
            state = "not found" if running is None else f"in {running.info.state} state"
            error = {"type": "NotFound", "message": f'container "{params.get("container")}" is {state}'}
            writer.write(cri.encode({"id": request.get("id"), "error": error}))
            return
        try:
            opts = xs.parse_attach_options({k: [str(params[k])] for k in ("stdin", "stdout", "stderr", "tty")
                                            if k in params})
        except xs.ExecError as exc:
            writer.write(cri.encode({"id": request.get("id"), "error": cri.error_of(exc)}))
            return
        writer.write(cri.encode({"id": request.get("id"), "result": {}}))
        await attach(running.handle, opts, reader, writer)

    async def _answer(self, request: dict, writer: asyncio.StreamWriter) -> None:
        method = request.get("method")
        try:
            if method not in cri.METHODS:
                raise ValueError(f"unknown method {method!r}")
            result = await getattr(self, method)(**(request.get("params") or {}))
            answer = {"id": request.get("id"), "result": result}
        except ContainerStartError as exc:
            answer = {"id": request.get("id"), "error": cri.error_of(exc)}
        except Exception as exc:  # every failure is the caller's answer, never the runtime's end
            if not isinstance(exc, (RuntimeError, OSError, ValueError, KeyError, TypeError)):
                log.exception("%s failed", method)
            answer = {"id": request.get("id"), "error": cri.error_of(exc)}
        try:
            writer.write(cri.encode(answer))
            await writer.drain()
        except (OSError, RuntimeError):
            pass

    async def serve(self, path: str, stop: asyncio.Event) -> None:
        await self.restore()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        server = await asyncio.start_unix_server(self.handle_client, path, limit=cri.MAX_LINE)
        os.chmod(path, 0o600)
        log.info("container runtime serving on %s", path)
        try:
            await stop.wait()
        finally:
            server.close()
            for cid in list(self.containers):
                self._kill(cid)
            await asyncio.sleep(0)


def run_runtime(state_dir: str, node_ip: str, node_name: str, endpoint: str, api_factory=None,
                volume_api=None) -> int:
    """The runtime process: serve until SIGTERM/SIGINT, then stop every container (as
    containerd's own stop would: the node is going down)."""
    from netemu.agent.runtime.node import raise_fd_limit
    from netemu.procmem import limit_malloc_arenas, trim_periodically

    limit_malloc_arenas()
    raise_fd_limit()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        trim = asyncio.ensure_future(trim_periodically(stop, 60.0))
        await RuntimeService(state_dir, node_ip, node_name, api_factory, volume_api).serve(endpoint, stop)
        await trim
    asyncio.run(main())
    return 0
