"""Stopping and starting what runs on a node, through the cluster's supervisor.

Today a node runs one agent process (kubelet + kube-proxy + the pod runtime), so ``component``
can only be ``agent``. When the agent is split into separately supervised processes, this is
the one place that learns to name them (``kubelet``, ``kube-proxy``): the timeline's ``agent``
event and the experiments call only ``set_component``.
"""

from __future__ import annotations

import asyncio

COMPONENTS = ("agent",)


class AgentError(RuntimeError):
    """The supervisor refused or could not be reached; the message says why."""


async def set_component(state_dir: str, node: str, action: str, component: str = "agent") -> dict:
    """``action`` (stop | kill | start) on ``node``'s ``component``; the supervisor's answer."""
    from netemu.emulator.supervisor import control_request

    if component not in COMPONENTS:
        raise AgentError(f"component {component!r}: this netemu runs one process per node ({', '.join(COMPONENTS)})")
    try:
        answer = await asyncio.to_thread(control_request, state_dir, {"op": "agent", "node": node, "action": action},
                                         30.0)
    except OSError as exc:
        raise AgentError(f"cannot reach the cluster's supervisor: {exc}") from None
    if "error" in answer:
        raise AgentError(answer["error"])
    return answer
