"""NodeRuntime: the one object the kubelet holds per node (network, sandboxes, containers).

It only wires the pieces together; each decision lives in a small module (images.resolve,
ipam.next_free, nodenet.plan_routes) and each kernel effect in one place (sandbox, nodenet).
State that must survive an agent restart (IP allocations) is under ``state_dir/runtime``;
container logs under ``state_dir/pods`` (see logs.py).
"""

from __future__ import annotations

import dataclasses
import os
import resource
import signal
from typing import Callable

from .builtin import BuiltinContainer, ContainerStartError
from .images import Builtin, Process, Unsupported, resolve
from .ipam import PodIPAM
from .cmd import run
from .etcfiles import netns_etc_dir, remove_etc, write_etc
from .logs import container_log_path
from .names import pod_netns
from .nodenet import NodeNetwork, peer_routes
from .process import ProcessContainer, container_env
from .nsenter import NETNS_RUN_DIR
from .sandbox import Sandbox, SandboxError, SandboxManager

EtcFiles = Callable[[Sandbox], dict]     # sandbox -> {"resolv.conf": text, "hosts": text}


def raise_fd_limit() -> int:
    """Every built-in pod holds 1-3 sockets in the agent: lift the soft fd limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class NodeRuntime:
    """Pods on one node. ``node_netns`` None: the agent's own namespace is the node's."""

    def __init__(self, state_dir: str, pod_cidr: str, node_netns: str | None = None, api_factory=None,
                 volume_api=None):
        """``api_factory(pod, container)``: a new API client for a built-in app that talks to
        the API server (CoreDNS, the ingress controller), as the real image would with its pod's
        ServiceAccount; None: such apps cannot start. ``volume_api()``: a new client as the
        kubelet, for what the kubelet reads on a pod's behalf (its configMap volumes)."""
        self.api_factory, self.volume_api = api_factory, volume_api
        self.state_dir = state_dir
        self.node_netns = node_netns
        self.network = NodeNetwork(pod_cidr, node_netns)
        self.ipam = PodIPAM(pod_cidr, os.path.join(state_dir, "runtime", "ipam"))
        self.sandboxes = SandboxManager(self.ipam, node_netns)
        self.log_root = os.path.join(state_dir, "pods")
        raise_fd_limit()

    # -- node ------------------------------------------------------------------------------
    async def setup_node(self) -> None:
        """cni0 + gateway, br_netfilter, ip_forward (idempotent)."""
        await self.network.setup()

    async def sync_routes(self, nodes: list[dict], own_name: str):
        """Routes to every other node's podCIDR via its InternalIP, from Node objects."""
        return await self.network.sync_routes(peer_routes(nodes, own_name))

    # -- sandboxes -------------------------------------------------------------------------
    async def create_sandbox(self, pod: dict, etc: EtcFiles | None = None) -> Sandbox:
        """The pod's namespace, veth and IP; ``etc(sandbox)`` gives its /etc files (resolv.conf,
        hosts: the kubelet's), written to /etc/netns/<netns> (etcfiles.py). A failure to write
        them removes the sandbox again (SandboxError)."""
        sandbox = await self.sandboxes.create(pod)
        if etc is None:
            return sandbox
        directory = netns_etc_dir(sandbox.netns)
        try:
            write_etc(directory, etc(sandbox))
        except (OSError, ValueError) as exc:
            await self.sandboxes.delete(sandbox.uid)
            raise SandboxError(f"sandbox {sandbox.netns}: writing its /etc files: {exc}") from exc
        return dataclasses.replace(sandbox, etc_dir=directory)

    def host_sandbox(self, pod: dict, node_ip: str, node_name: str, etc: EtcFiles | None = None) -> Sandbox:
        """The "sandbox" of a hostNetwork pod: the node's own namespace (nothing is created;
        remove_sandbox is then a no-op). Its containers listen on the node's addresses and
        see the node's name as hostname, as upstream. ``etc``: /etc files its own processes
        get anyway (ClusterFirstWithHostNet's resolv.conf), kept under the node's state dir."""
        meta = pod.get("metadata") or {}
        sandbox = Sandbox(uid=meta.get("uid", ""), netns=self.node_netns or "", ip=node_ip, veth="",
                          hostname=node_name, namespace=meta.get("namespace", ""),
                          name=meta.get("name", ""))
        if etc is None:
            return sandbox
        directory = self.host_etc_dir(sandbox.uid)
        write_etc(directory, etc(sandbox))
        return dataclasses.replace(sandbox, etc_dir=directory)

    def host_etc_dir(self, uid: str) -> str:
        return os.path.join(self.state_dir, "runtime", "etc", uid)

    async def remove_sandbox(self, uid: str) -> None:
        """Delete the pod's netns (its /etc files with it) and free its IP. Stop its
        containers first."""
        await self.sandboxes.delete(uid)
        remove_etc(self.host_etc_dir(uid))

    async def recover(self) -> dict[str, str]:
        """After an agent restart: kill every process left in this node's known sandboxes
        (containers of the previous run, whose handles died with it; built-in apps died with
        the agent anyway), so the kubelet can start them afresh without port clashes.
        Returns {pod uid: IP} of the sandboxes kept (create_sandbox then reuses them)."""
        known = self.sandboxes.known()
        for uid in known:
            await kill_netns_processes(pod_netns(uid))
        return known

    async def gc_sandboxes(self, keep: set[str]) -> list[str]:
        """Remove the sandboxes (processes, veth, netns, IP) of pods not in ``keep``."""
        gone = [uid for uid in self.sandboxes.known() if uid not in keep]
        for uid in gone:
            await kill_netns_processes(pod_netns(uid))
            await self.sandboxes.delete(uid)
        return gone

    # -- containers ------------------------------------------------------------------------
    def log_path(self, pod: dict, container: str, restart_count: int = 0) -> str:
        meta = pod["metadata"]
        return container_log_path(self.log_root, meta.get("namespace", "default"), meta["name"],
                                  meta["uid"], container, restart_count)

    async def start_container(self, sandbox: Sandbox, pod: dict, container: dict,
                              restart_count: int = 0, extra_env: dict[str, str] | None = None,
                              binds: list[tuple[str, str]] | tuple = ()):
        """Start one container in ``sandbox``; returns a handle with ``pid``, ``log_path``,
        ``started_at``, ``async wait() -> exit code`` and ``async stop(grace) -> exit code``.
        ``extra_env`` (the kubelet's: the kubernetes Service's variables) comes before the
        container's own env; ``binds`` (host path, pod path: the ServiceAccount directory) are
        mounted read-only in a process container's own mount namespace (the pod path is made,
        empty, on the host as the mount point).

        Raises ContainerStartError (``reason``/``message``/``exit_code``): reason
        "ImageNotSupported" (Waiting: nothing to run; the message names what is supported),
        "InvalidArgs", "StartError" (binary not found) or "Error" (port in use).
        """
        how = resolve(container)
        path = self.log_path(pod, container["name"], restart_count)
        if isinstance(how, Unsupported):
            raise ContainerStartError(how.reason, how.message, 128)
        if isinstance(how, Builtin):
            api = (lambda: self.api_factory(pod, container)) if self.api_factory else None
            handle = BuiltinContainer(how, sandbox.netns, sandbox.hostname, path, pod=pod,
                                      container=container, api=api, ip=sandbox.ip, volume_api=self.volume_api)
        else:
            assert isinstance(how, Process)
            fields = pod_fields(pod, sandbox)
            env = container_env(container, sandbox.hostname, extra_env, fields)
            for _source, target in binds:
                os.makedirs(target, exist_ok=True)
            stdio = (bool(container.get("stdin")), bool(container.get("tty")), bool(container.get("stdinOnce")))
            handle = ProcessContainer(how.argv, sandbox.netns, sandbox.hostname, path, env,
                                      container.get("workingDir"), sandbox.etc_dir, binds, stdio)
        await handle.start()
        return handle


async def kill_netns_processes(netns: str) -> list[int]:
    """SIGKILL every process inside pod namespace ``netns`` (``ip netns pids``): only
    container processes this runtime started live there."""
    if not os.path.exists(os.path.join(NETNS_RUN_DIR, netns)):
        return []
    code, out, _ = await run(["ip", "netns", "pids", netns], check=False)
    pids = [int(p) for p in out.split() if p.isdigit()] if code == 0 else []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def pod_fields(pod: dict, sandbox: Sandbox) -> dict[str, str]:
    """Values for env ``valueFrom.fieldRef`` (the downward API's common fields). Pure."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    fields = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
              "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
              "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
              "status.podIP": sandbox.ip}
    for k, v in (meta.get("labels") or {}).items():
        fields[f"metadata.labels['{k}']"] = v
    return fields
