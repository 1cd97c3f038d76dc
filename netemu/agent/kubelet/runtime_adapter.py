"""The kubelet's runtime contract (cri.py) over netemu.agent.runtime's NodeRuntime.

The NodeRuntime exists only once node IPAM gave a podCIDR, so it is made in ``setup_node``.
Container handles gain the kubelet's signal semantics: SIGTERM starts the runtime's own stop
(the kubelet, not the runtime, decides when the grace period is over), SIGKILL ends the
container now (a process group gets SIGKILL; a built-in app closes its sockets, exit 137).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any, Awaitable, Callable

from netemu.agent import runtime as rt
from netemu.agent.kubelet.dns import DNSSettings, dns_type, hosts_file, pod_resolv_conf
from netemu.agent.runtime.attach import attach as attach_container
from netemu.agent.runtime.etcfiles import remove_etc
from netemu.api.meta import Obj

log = logging.getLogger(__name__)

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


def etc_files(pod: Obj, dns: DNSSettings):
    """The pod's resolv.conf and hosts as a function of its sandbox (the IP comes with it),
    or None when the pod keeps the node's own (a hostNetwork pod not asking for the cluster
    DNS reads the node's /etc, as upstream). The kubelet forms them; the runtime writes them."""
    conf, warnings = pod_resolv_conf(pod, dns)
    for text in warnings:
        log.warning("pod %s/%s: DNSConfigForming: %s", (pod.get("metadata") or {}).get("namespace"),
                    (pod.get("metadata") or {}).get("name"), text)
    if host_network(pod):
        if dns_type(pod) != "cluster":
            return None
        return lambda sandbox: {"resolv.conf": conf.render()}
    return lambda sandbox: {"resolv.conf": conf.render(),
                            "hosts": hosts_file(pod, sandbox.ip, sandbox.hostname, dns.cluster_domain)}


class AgentRuntime:
    """``node_ip``: the address hostNetwork pods get (they share the node's namespace: no netns,
    no veth, no pod IP of their own, like upstream). ``dns``: the kubelet's --cluster-dns,
    --cluster-domain and the node's resolv.conf, from which each pod's /etc files are formed
    (dns.py) and handed to the runtime with the sandbox, as the CRI's PodSandboxConfig does."""

    def __init__(self, state_dir: str, node_ip: str = "", node_name: str = "", node_netns: str | None = None,
                 dns: DNSSettings | None = None, api_factory=None, volume_api=None):
        self.state_dir, self.node_ip, self.node_name, self.node_netns = state_dir, node_ip, node_name, node_netns
        self.dns = dns if dns is not None else DNSSettings()
        self.api_factory, self.volume_api = api_factory, volume_api
        self.node: rt.NodeRuntime | None = None
        self.sandboxes: dict[str, rt.Sandbox] = {}
        self._ids = 0
        # the kubelet's hooks (serviceaccount.py): (env, binds) for a container, and what to
        # forget once a pod's sandbox is gone
        self.pod_extras: Callable[[Obj, Obj], Awaitable[tuple[dict, list]]] | None = None
        self.pod_removed: Callable[[str], None] | None = None

    @property
    def log_dir(self) -> str:
        return os.path.join(self.state_dir, "pods")

    async def setup_node(self, pod_cidr: str) -> None:
        self.node = rt.NodeRuntime(self.state_dir, pod_cidr, self.node_netns, self.api_factory, self.volume_api)
        await self.node.setup_node()
        await self.node.recover()     # processes a previous agent left in kept sandboxes

    async def set_routes(self, routes: dict[str, str]) -> None:
        await self.node.network.sync_routes(routes)

    def unsupported(self, container: Obj) -> tuple[str, str] | None:
        how = rt.resolve(container)
        return (how.reason, how.message) if isinstance(how, rt.Unsupported) else None

    def etc_files(self, pod: Obj):
        return etc_files(pod, self.dns)

    async def create_sandbox(self, pod: Obj) -> str:
        if host_network(pod):
            sandbox = self.node.host_sandbox(pod, self.node_ip, self.node_name, self.etc_files(pod))
            self.sandboxes[sandbox.uid] = sandbox
            return sandbox.ip
        sandbox = await self.node.create_sandbox(pod, self.etc_files(pod))
        self.sandboxes[sandbox.uid] = sandbox
        return sandbox.ip

    async def remove_sandbox(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if self.node is not None and not host_network(pod):
            await self.node.remove_sandbox(uid)
        elif self.node is not None:
            remove_etc(self.node.host_etc_dir(uid))
        self.sandboxes.pop(uid, None)
        if self.pod_removed is not None:
            self.pod_removed(uid)

    async def remove_orphans(self, live_uids: set[str]) -> list[str]:
        """Sandboxes of pods that are gone from the API (deleted while the agent was down):
        their namespaces and IPs are freed. Returns the uids removed."""
        if self.node is None:
            return []
        removed = await self.node.gc_sandboxes(live_uids)
        for uid in removed if self.pod_removed is not None else ():
            self.pod_removed(uid)
        return removed

    async def start_container(self, pod: Obj, container: Obj, restart_count: int) -> Handle:
        sandbox = self.sandboxes[pod["metadata"]["uid"]]
        env, binds = await self.pod_extras(pod, container) if self.pod_extras is not None else ({}, [])
        c = await self.node.start_container(sandbox, pod, container, restart_count, env, binds)
        self._ids += 1
        return Handle(c, f"{sandbox.uid[:8]}-{container['name']}-{restart_count}-{self._ids}")

    async def exec(self, pod: Obj, container: Obj, argv: list[str], timeout: float) -> tuple[int, bytes]:
        sandbox = self.sandboxes[pod["metadata"]["uid"]]
        result = await rt.exec_in(sandbox.netns, argv, timeout=timeout, etc_dir=sandbox.etc_dir)
        return result.exit_code, result.stdout + result.stderr

    async def attach(self, handle: Handle, opts, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     accept: Callable[[], None]) -> None:
        """The container's held stdio (or its log) in this process: ``accept()``, then the session."""
        proc = getattr(handle.c, "proc", None)
        if proc is not None and proc.returncode is not None:
            raise LookupError(f"container {handle.id} is not running")
        accept()
        await attach_container(handle.c, opts, reader, writer)
