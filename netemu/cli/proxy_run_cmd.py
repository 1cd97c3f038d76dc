"""``netemu proxy run``: kube-proxy (iptables mode) against an API server, like upstream's binary.

It lists and watches Services and EndpointSlices with a kubeconfig (netemu.client.Informer),
feeds them to the Proxier's change trackers, and lets the bounded-frequency runner program
this host's kernel -- or, with ``--netns NS``, the kernel of a node namespace (every iptables
and conntrack command then runs as ``ip netns exec NS ...``). Metrics are served on
--metrics-bind-address like upstream (default 127.0.0.1:10249; port 0 picks a free one).
SIGTERM / Ctrl-C stop it; the rules stay (as upstream's do) until ``netemu proxy cleanup``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import threading

from netemu.agent.proxy.commands import local_exec, netns_exec
from netemu.agent.proxy.iptables.apply import BACKENDS
from netemu.agent.proxy.metrics import DEFAULT_BIND_ADDRESS, MetricsServer, parse_bind_address
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.agent.proxy.iptables.proxier import IptablesProxier
from netemu.cli.main import Command, UsageError

log = logging.getLogger(__name__)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of the API server to watch")
    p.add_argument("--hostname-override", required=True, metavar="NODE",
                   help="this node's name (endpoints with this nodeName are local)")
    p.add_argument("--node-ip", action="append", default=[], metavar="IP",
                   help="this node's IP (repeatable; the first is the primary)")
    p.add_argument("--cluster-cidr", default=None, help="pod CIDR used to detect local traffic")
    p.add_argument("--proxy-mode", default="iptables", choices=["iptables"],
                   help="only iptables mode is implemented by this command")
    p.add_argument("--iptables-backend", default="iptables", choices=BACKENDS,
                   help="iptables binaries: the system's alternative (default), nft or legacy")
    p.add_argument("--netns", default=None, help="program this network namespace instead of the host's")
    p.add_argument("--metrics-bind-address", default=DEFAULT_BIND_ADDRESS, help="HOST:PORT for /metrics")
    p.add_argument("--min-sync-period", type=float, default=1.0, help="seconds between syncs at least")
    p.add_argument("--sync-period", type=float, default=30.0, help="seconds between syncs at most")


def node_info(args: argparse.Namespace) -> NodeInfo:
    """The node identity from flags, with one clear error for a bad IP or CIDR."""
    try:
        ips = tuple(str(ipaddress.ip_address(ip)) for ip in args.node_ip)
        cidr = str(ipaddress.ip_network(args.cluster_cidr, strict=False)) if args.cluster_cidr else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return NodeInfo(name=args.hostname_override, ips=ips, cluster_cidr=cidr)


def run(args: argparse.Namespace) -> int:
    node = node_info(args)
    try:
        parse_bind_address(args.metrics_bind_address)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.min_sync_period < 0 or args.sync_period < args.min_sync_period:
        raise UsageError("need 0 <= --min-sync-period <= --sync-period")
    config = ProxyConfig(min_sync_period=args.min_sync_period, sync_period=args.sync_period)
    exec_ = netns_exec(args.netns) if args.netns else local_exec
    try:
        proxier = IptablesProxier(node, config, backend=args.iptables_backend, exec_=exec_)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    server = MetricsServer(proxier.metrics, args.metrics_bind_address)
    print(f"kube-proxy for node {node.name} ({proxier.backend} backend"
          f"{', netns ' + args.netns if args.netns else ''}); metrics on http://{server.address}/metrics",
          flush=True)
    try:
        asyncio.run(_watch(args.kubeconfig, proxier))
    finally:
        proxier.stop()
        server.close()
    return 0


async def _watch(kubeconfig: str, proxier: IptablesProxier) -> None:
    from netemu.agent.proxy.feed import feed_proxier
    from netemu.client import ApiClient

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        if threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(sig, stop.set)
    async with ApiClient.from_kubeconfig(kubeconfig, user_agent="netemu-kube-proxy") as api:
        await feed_proxier(api, proxier, stop)


COMMANDS = [Command("proxy run", "run kube-proxy (iptables mode) against an API server",
                    _add_arguments, run)]
