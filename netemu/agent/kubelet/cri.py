"""What the kubelet needs from a container runtime (our CRI): a small async contract.

``netemu.agent.kubelet.runtime_adapter`` maps it onto netemu.agent.runtime (namespaces, veths,
in-process built-in images, real processes); unit tests use a fake. Keeping the contract here
lets the pod worker be tested without root and without a kernel.
"""

from __future__ import annotations

from typing import Protocol

from netemu.api.meta import Obj


class ContainerHandle(Protocol):
    """One running container instance."""

    id: str

    async def wait(self) -> int:
        """Until the container exits; its exit code (128+signal when killed by a signal)."""

    def signal(self, signum: int) -> None:
        """Send SIGTERM / SIGKILL (built-in images stop their servers: their SIGTERM exit code / 137)."""


class Runtime(Protocol):
    async def setup_node(self, pod_cidr: str) -> None:
        """cni0 bridge with the CIDR's gateway, forwarding and br_netfilter on."""

    async def set_routes(self, routes: dict[str, str]) -> None:
        """Exactly these routes to other nodes' podCIDRs ({cidr: via node IP})."""

    def unsupported(self, container: Obj) -> tuple[str, str] | None:
        """None when the runtime can run the container, else (Waiting reason, message naming
        what it supports)."""

    async def create_sandbox(self, pod: Obj) -> str:
        """The pod's namespace, veth and IP (idempotent per pod uid); returns the pod IP."""

    async def remove_sandbox(self, pod: Obj) -> None:
        """Remove the pod's namespace and veth (idempotent)."""

    async def remove_orphans(self, live_uids: set[str]) -> list[str]:
        """Remove sandboxes of pods not in ``live_uids`` (deleted while the agent was down)."""

    async def start_container(self, pod: Obj, container: Obj, restart_count: int) -> ContainerHandle:
        """Start one container in the pod's sandbox; its output goes to the log file of
        ``worker.log_path(log_dir, pod, name, restart_count)``. A failure raises an exception
        with ``reason``, ``message`` and ``exit_code`` when it has them."""

    async def exec(self, pod: Obj, container: Obj, argv: list[str], timeout: float) -> tuple[int, bytes]:
        """Run argv in the pod's namespace (exec probes); (exit code, output)."""
