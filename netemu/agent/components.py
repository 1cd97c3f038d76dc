"""The processes of one node, as a real node has them: what each one runs once it is forked.

The node supervisor (nodesup.py) forks one child per component from the pre-imported launcher
template and calls its ``run`` with the node's AgentConfig; the child exits with what it
returns. Each is a program of its own: its own asyncio loop, its own API client (its own
identity: user agents ``kubelet/NODE`` and ``kube-proxy/NODE``), its own ports (the kubelet's
10250, kube-proxy's 10249 metrics and 10256 healthz, as upstream), so one can die and come back
while the others keep running.

- ``runtime``: containerd's part: the node's pod network, sandboxes and containers (the built-in
  images' servers, process containers), serving the CRI of netemu/agent/cri.py on a socket;
  it outlives kubelet restarts, and its containers die with it.
- ``kubelet``: registration, Lease, pod workers, probes, status, the log server; it reaches the
  runtime over its socket and adopts the containers it finds running there at start.
- ``kube-proxy``: Service and EndpointSlice informers into the mode's Proxier; a new one resyncs
  from a full list without flushing what the kernel has (its first sync is a full restore that
  leaves identical rules identical, as upstream's).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from typing import Callable, NamedTuple

from netemu.agent.agent import (AgentConfig, KubeProxy, pod_api_factory, proxy_client, run_agent,
                                volume_api_factory)
from netemu.procmem import limit_malloc_arenas, shrink_tls_read_buffers, trim_periodically

log = logging.getLogger(__name__)
HEALTHZ_BIND_ADDRESS = "0.0.0.0:10256"     # upstream kube-proxy's --healthz-bind-address default
TRIM_PERIOD = 60.0


class Component(NamedTuple):
    name: str
    run: Callable[[AgentConfig], int]
    needs_proxy: bool = False      # started only when the node runs a kube-proxy


def run_runtime(config: AgentConfig) -> int:
    from netemu.agent.runtime.server import run_runtime as serve
    if not config.runtime_endpoint:
        raise ValueError("the runtime process needs its socket path (--container-runtime-endpoint)")
    return serve(config.state_dir, config.kubelet.node_ip, config.kubelet.node_name, config.runtime_endpoint,
                 pod_api_factory(config), volume_api_factory(config))


def run_kubelet(config: AgentConfig) -> int:
    return run_agent(dataclasses.replace(config, proxy_mode=None))


def run_kube_proxy(config: AgentConfig) -> int:
    """kube-proxy alone: its own API client and loop; SIGTERM/SIGINT stop it (rules stay in the
    kernel, as upstream's kube-proxy leaves them on exit)."""
    limit_malloc_arenas()
    shrink_tls_read_buffers()
    healthz = HEALTHZ_BIND_ADDRESS if config.healthz_bind_address is None else config.healthz_bind_address

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        api = proxy_client(config)
        proxy = KubeProxy(api, config, healthz=healthz or None)
        trim = asyncio.ensure_future(trim_periodically(stop, TRIM_PERIOD))
        try:
            await proxy.run(stop)
        finally:
            stop.set()
            proxy.close()
            await trim
            await api.close()
    asyncio.run(main())
    return 0


COMPONENTS: tuple[Component, ...] = (
    Component("runtime", run_runtime),
    Component("kubelet", run_kubelet),
    Component("kube-proxy", run_kube_proxy, needs_proxy=True),
)
NAMES = tuple(c.name for c in COMPONENTS)


def for_node(config: AgentConfig) -> tuple[Component, ...]:
    """The components this node runs, in start order: no kube-proxy with --proxy-mode none, no
    runtime process without a socket for it (the kubelet then runs the runtime inside)."""
    return tuple(c for c in COMPONENTS if (config.proxy_mode or not c.needs_proxy)
                 and (c.name != "runtime" or config.runtime_endpoint))
