"""The node agent: kubelet and kube-proxy of one node in one process, on one asyncio loop.

One process per node keeps a node cheap (the memory budget is 40 MB RSS): one API client
(one connection pool) shared by the kubelet's informers and kube-proxy's, the built-in pods
served by this same loop, and kube-proxy's syncs on its bounded-frequency runner thread. The
agent runs inside the node's network namespace (in the root mount namespace, so /run/netns is
shared), so everything it programs -- cni0, routes, iptables -- is the node's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass, field

from netemu.agent.kubelet.dns import DNSSettings
from netemu.agent.kubelet.execserver import ExecServer
from netemu.agent.kubelet.kubelet import Kubelet, KubeletConfig
from netemu.agent.kubelet import resourcemetrics
from netemu.agent.kubelet.logserver import PORT as LOG_PORT, LogServer
from netemu.agent.kubelet.runtime_adapter import AgentRuntime
from netemu.agent.proxy.feed import feed_proxier
from netemu.agent.proxy.modes import DEFAULT as DEFAULT_PROXY_MODE
from netemu.client import ApiClient, kubeconfig
from netemu.procmem import limit_malloc_arenas, shrink_tls_read_buffers, trim_periodically

log = logging.getLogger(__name__)
CLUSTER_CIDR = "10.244.0.0/16"
TRIM_PERIOD = 60.0      # seconds between malloc trims (procmem.trim_malloc)


@dataclass
class AgentConfig:
    kubelet: KubeletConfig
    kubeconfig: str                         # the kubelet's identity (system:node:NAME)
    state_dir: str
    proxy_kubeconfig: str | None = None     # kube-proxy's (system:kube-proxy); None: ``kubeconfig``
    proxy_mode: str | None = DEFAULT_PROXY_MODE    # None: no kube-proxy (kubelet only)
    proxy_options: dict = field(default_factory=dict)  # the mode's flags (modes.options_from)
    cluster_cidr: str = CLUSTER_CIDR
    service_cidrs: tuple = ()               # the cluster's Service CIDRs (the nftables mode drops the rest)
    metrics_bind_address: str | None = "127.0.0.1:10249"
    healthz_bind_address: str | None = None     # None: the component's default ('' : none)
    runtime_endpoint: str | None = None         # the runtime's socket; None: in this process
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    conntrack_cleanup: bool = True
    log_port: int = LOG_PORT
    dns: DNSSettings = field(default_factory=DNSSettings)   # --cluster-dns, --cluster-domain, --resolv-conf
    extra: dict = field(default_factory=dict)


class Agent:
    def __init__(self, config: AgentConfig):
        self.config = config
        # 10 s per call (not 30): a cut link must not stall heartbeats and status writes for long
        self.api = ApiClient.from_kubeconfig(config.kubeconfig, timeout=10.0,
                                             user_agent=f"kubelet/{config.kubelet.node_name}")
        if config.runtime_endpoint:     # the runtime is a process of its own (components.py)
            from netemu.agent.kubelet.remote_runtime import RemoteRuntime
            self.runtime = RemoteRuntime(config.runtime_endpoint, dns=config.dns)
        else:
            self.runtime = AgentRuntime(config.state_dir, config.kubelet.node_ip, config.kubelet.node_name,
                                        dns=config.dns, api_factory=pod_api_factory(config),
                                        volume_api=volume_api_factory(config))
        config.kubelet.log_dir = os.path.join(config.state_dir, "pods")
        config.kubelet.volumes_dir = config.kubelet.volumes_dir or volumes_dir(config)
        if config.kubelet.ca_pem is None:
            config.kubelet.ca_pem = kubeconfig.load(config.kubeconfig).ca_data
        self.kubelet = Kubelet(self.api, self.runtime, config.kubelet)
        node_root = resourcemetrics.node_root_pid(bool(config.runtime_endpoint))
        list_stats = getattr(self.runtime, "container_stats", None)
        self.logs = LogServer(self.kubelet.find_pod, self.kubelet.restart_count, config.kubelet.log_dir,
                              config.kubelet.node_ip, config.log_port,
                              exec_server=ExecServer(self.kubelet.find_pod, config.state_dir, config.kubelet.volumes_dir,
                                                     self.kubelet.service_env, self.runtime,
                                                     self.kubelet.container_handle),
                              resource_metrics=lambda: resourcemetrics.collect(list_stats, self.kubelet.pod_by_uid,
                                                                               node_root))
        self.proxy_api = self.api
        if config.proxy_mode and config.proxy_kubeconfig:
            self.proxy_api = proxy_client(config)
        self.kube_proxy = KubeProxy(self.proxy_api, config, healthz=config.healthz_bind_address or None) \
            if config.proxy_mode else None

    async def run(self, stop: asyncio.Event) -> None:
        c = self.config
        if self.kube_proxy is not None:     # first: a mode this kernel cannot run stops the agent before it starts anything
            self.kube_proxy.prepare()
        os.makedirs(c.kubelet.log_dir, exist_ok=True)
        await self.logs.start()
        tasks = [asyncio.ensure_future(self.kubelet.run(stop)), asyncio.ensure_future(trim_periodically(stop, TRIM_PERIOD))]
        if self.kube_proxy is not None:
            tasks.append(asyncio.ensure_future(self.kube_proxy.run(stop)))
        try:
            done, _ = await asyncio.wait([*tasks, asyncio.ensure_future(stop.wait())],
                                         return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t in tasks and t.exception() is not None:
                    raise t.exception()
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.kubelet.shutdown()
            if self.kube_proxy is not None:
                self.kube_proxy.close()
            await self.logs.close()
            if hasattr(self.runtime, "close"):
                await self.runtime.close()
            if self.proxy_api is not self.api:
                await self.proxy_api.close()
            await self.api.close()


def proxy_client(config: AgentConfig) -> ApiClient:
    """kube-proxy's own client: its identity (--proxy-kubeconfig, else the kubelet's), 10 s calls."""
    return ApiClient.from_kubeconfig(config.proxy_kubeconfig or config.kubeconfig, timeout=10.0,
                                     user_agent=f"kube-proxy/{config.kubelet.node_name}")


def volumes_dir(config: AgentConfig) -> str:
    """Where the kubelet projects each pod's ServiceAccount directory (``UID/serviceaccount``),
    which the runtime mounts and reads: both processes share the node's state dir."""
    return os.path.join(config.state_dir, "volumes")


def pod_api_factory(config: AgentConfig):
    """API clients for the built-in apps that talk to the API server (CoreDNS, the ingress
    controller): each gets a client of its own, named by its pod in the User-Agent, that acts
    as the pod's ServiceAccount with the token the kubelet projected for it (a pod-bound token
    asked for 3607 s is valid for a year, upstream's extended expiry, so an app reading its
    token once keeps working, as a real image would); a pod without one
    (automountServiceAccountToken false) is anonymous, as upstream."""
    access = kubeconfig.load(config.kubeconfig)
    root = volumes_dir(config)

    def make(pod: dict, container: dict) -> ApiClient:
        meta = pod.get("metadata") or {}
        token_file = os.path.join(root, meta.get("uid", ""), "serviceaccount", "token")
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip() or None
        except OSError:
            token = None
        return ApiClient(access.server, token, ca_file=access.ca_file, ca_data=access.ca_data, timeout=30.0,
                         user_agent=f"{container.get('name', 'app')}/{meta.get('namespace')}/{meta.get('name')}")
    return make


def volume_api_factory(config: AgentConfig):
    """Clients as the kubelet (system:node:NAME) for what it reads on a pod's behalf, the
    pod's configMap volumes (the Node authorizer allows those of pods bound to the node)."""
    return lambda: ApiClient.from_kubeconfig(config.kubeconfig, user_agent=f"kubelet-volumes/{config.kubelet.node_name}")


class KubeProxy:
    """kube-proxy as `netemu proxy run` wires it: Services and EndpointSlices into the mode's
    Proxier, /metrics on --metrics-bind-address, /healthz on ``healthz`` (None: not served).
    The agent runs it beside the kubelet; components.py runs it as its own process."""

    def __init__(self, api: ApiClient, config: AgentConfig, healthz: str | None):
        self.api, self.config, self.healthz_address = api, config, healthz
        self.proxier = None
        self.servers: list = []

    def prepare(self) -> None:
        """Make the mode's Proxier (modes.ModeUnavailable, before anything changed, when this
        kernel or host cannot run the mode)."""
        if self.proxier is None:
            self.proxier = make_proxier(self.config)

    async def run(self, stop: asyncio.Event) -> None:
        c = self.config
        self.prepare()
        if c.metrics_bind_address:
            from netemu.agent.proxy.metrics import MetricsServer
            self.servers.append(MetricsServer(self.proxier.metrics, c.metrics_bind_address))
        if self.healthz_address:
            from netemu.agent.proxy.healthz import HealthzServer
            sample = self.proxier.metrics.registry.get_sample_value
            state = lambda: (sample("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds") or 0.0,  # noqa: E731
                             sample("kubeproxy_sync_proxy_rules_last_timestamp_seconds") or 0.0)
            self.servers.append(HealthzServer(state, c.kubelet.node_name, 2 * c.sync_period, self.healthz_address))
        # the Node's mode annotation is the kubelet's (flags.py): kube-proxy may not write Nodes
        await feed_proxier(self.api, self.proxier, stop)

    def close(self) -> None:
        if self.proxier is not None:
            self.proxier.stop()
        for server in self.servers:
            server.close()
        self.servers.clear()


def make_proxier(c: AgentConfig):
    """The configured mode's Proxier for this node, made by the mode registry's factory (which
    imports that mode's package, and only that one, now)."""
    from netemu.agent.proxy import modes
    from netemu.agent.proxy.commands import local_exec
    from netemu.agent.proxy.leftovers import clean_other_modes
    from netemu.agent.proxy.model import NodeInfo, ProxyConfig
    report = clean_other_modes(c.proxy_mode, local_exec)     # upstream's cleanup on start
    if report.commands:
        log.info("removed what other proxy modes left on this node: %d commands", len(report.commands))
    node = NodeInfo(name=c.kubelet.node_name, ips=(c.kubelet.node_ip,), cluster_cidr=c.cluster_cidr)
    config = ProxyConfig(min_sync_period=c.min_sync_period, sync_period=c.sync_period,
                         service_cidrs=tuple(c.service_cidrs), conntrack_cleanup=c.conntrack_cleanup)
    return modes.choose(c.proxy_mode).hook("proxier")(node, config, exec_=local_exec, **c.proxy_options)


def run_agent(config: AgentConfig) -> int:
    """Run until SIGTERM / SIGINT."""
    limit_malloc_arenas()
    shrink_tls_read_buffers()     # asyncio's 256 KiB per TLS connection is most of an idle agent's heap
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Agent(config).run(stop)
    asyncio.run(main())
    return 0
