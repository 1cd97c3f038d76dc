"""The kubelet's runtime contract (cri.py) over netemu.agent.runtime's NodeRuntime.

The NodeRuntime exists only once node IPAM gave a podCIDR, so it is made in ``setup_node``.
Container handles gain the kubelet's signal semantics: SIGTERM starts the runtime's own stop
(the kubelet, not the runtime, decides when the grace period is over), SIGKILL ends the
container now (a process group gets SIGKILL; a built-in app closes its sockets, exit 137).
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from netemu.agent import runtime as rt
from netemu.api.meta import Obj

NO_DEADLINE = 365 * 24 * 3600.0


class Handle:
    """A runtime container (BuiltinContainer or ProcessContainer) as the kubelet drives it."""

    def __init__(self, container: Any, ident: str):
        self.c, self.id = container, ident
        self._stopping: asyncio.Task | None = None

    async def wait(self) -> int:
        return await self.c.wait()

    def signal(self, signum: int) -> None:
        if signum == signal.SIGKILL:
            self.c.kill()             # a process group: SIGKILL; a built-in app: sockets closed, 137
            return
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self.c.stop(NO_DEADLINE))


def host_network(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("hostNetwork"))


class AgentRuntime:
    """``node_ip``: the address hostNetwork pods get (they share the node's namespace: no netns,
    no veth, no pod IP of their own, like upstream)."""

    def __init__(self, state_dir: str, node_ip: str = "", node_name: str = "", node_netns: str | None = None):
        self.state_dir, self.node_ip, self.node_name, self.node_netns = state_dir, node_ip, node_name, node_netns
        self.node: rt.NodeRuntime | None = None
        self.sandboxes: dict[str, rt.Sandbox] = {}
        self._ids = 0

    @property
    def log_dir(self) -> str:
        return os.path.join(self.state_dir, "pods")

    async def setup_node(self, pod_cidr: str) -> None:
        self.node = rt.NodeRuntime(self.state_dir, pod_cidr, self.node_netns)
        await self.node.setup_node()
        await self.node.recover()     # processes a previous agent left in kept sandboxes

    async def set_routes(self, routes: dict[str, str]) -> None:
        await self.node.network.sync_routes(routes)

    def unsupported(self, container: Obj) -> tuple[str, str] | None:
        how = rt.resolve(container)
        return (how.reason, how.message) if isinstance(how, rt.Unsupported) else None

    async def create_sandbox(self, pod: Obj) -> str:
        if host_network(pod):
            sandbox = self.node.host_sandbox(pod, self.node_ip, self.node_name)
            self.sandboxes[sandbox.uid] = sandbox
            return sandbox.ip
        sandbox = await self.node.create_sandbox(pod)
        self.sandboxes[sandbox.uid] = sandbox
        return sandbox.ip

    async def remove_sandbox(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if self.node is not None and not host_network(pod):
            await self.node.remove_sandbox(uid)
        self.sandboxes.pop(uid, None)

    async def remove_orphans(self, live_uids: set[str]) -> list[str]:
        """Sandboxes of pods that are gone from the API (deleted while the agent was down):
        their namespaces and IPs are freed. Returns the uids removed."""
        if self.node is None:
            return []
        return await self.node.gc_sandboxes(live_uids)

    async def start_container(self, pod: Obj, container: Obj, restart_count: int) -> Handle:
        sandbox = self.sandboxes[pod["metadata"]["uid"]]
        c = await self.node.start_container(sandbox, pod, container, restart_count)
        self._ids += 1
        return Handle(c, f"{sandbox.uid[:8]}-{container['name']}-{restart_count}-{self._ids}")

    async def exec(self, pod: Obj, container: Obj, argv: list[str], timeout: float) -> tuple[int, bytes]:
        sandbox = self.sandboxes[pod["metadata"]["uid"]]
        result = await rt.exec_in(sandbox.netns, argv, timeout=timeout)
        return result.exit_code, result.stdout + result.stderr
