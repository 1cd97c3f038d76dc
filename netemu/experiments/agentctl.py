"""Stopping and starting what runs on a node, through the cluster's supervisor.

A node runs its container runtime, kubelet and kube-proxy as processes of their own under a
node supervisor (netemu/agent/nodesup.py): ``component`` names one of them, or ``agent`` for
all of them at once (what one agent process was before the split). The timeline's ``agent``
event and the experiments call only ``set_component``.
"""

from __future__ import annotations

import asyncio

COMPONENTS = ("agent", "runtime", "kubelet", "kube-proxy")


class AgentError(RuntimeError):
    """The supervisor refused or could not be reached; the message says why."""


async def set_component(state_dir: str, node: str, action: str, component: str = "agent") -> dict:
    """``action`` (stop | kill | start) on ``node``'s ``component``; the supervisor's answer."""
    from netemu.emulator.supervisor import control_request

    if component not in COMPONENTS:
        raise AgentError(f"component {component!r}: a node's are {', '.join(COMPONENTS)}")
    try:
        answer = await asyncio.to_thread(control_request, state_dir, {"op": "agent", "node": node, "action": action,
                                                                      "component": component}, 60.0)
    except OSError as exc:
        raise AgentError(f"cannot reach the cluster's supervisor: {exc}") from None
    if "error" in answer:
        raise AgentError(answer["error"])
    return answer
