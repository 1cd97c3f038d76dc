"""``netemu proxy run``: kube-proxy against an API server, like upstream's binary.

It lists and watches Services and EndpointSlices with a kubeconfig (netemu.client.Informer),
feeds them to the chosen mode's Proxier (made by the proxy-mode registry), and lets the
bounded-frequency runner program this host's kernel -- or, with ``--netns NS``, the kernel of a
node namespace (every command the proxier runs then runs as ``ip netns exec NS ...``). Metrics are served on
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

from netemu.agent.proxy import modes
from netemu.agent.proxy.commands import exec_in
from netemu.agent.proxy.metrics import DEFAULT_BIND_ADDRESS, MetricsServer, parse_bind_address
from netemu.agent.proxy.leftovers import clean_other_modes
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.agent.proxy.proxier import Proxier
from netemu.cli.main import Command, UsageError

log = logging.getLogger(__name__)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of the API server to watch")
    p.add_argument("--hostname-override", required=True, metavar="NODE",
                   help="this node's name (endpoints with this nodeName are local)")
    p.add_argument("--node-ip", action="append", default=[], metavar="IP",
                   help="this node's IP (repeatable; the first is the primary)")
    p.add_argument("--cluster-cidr", default=None, help="pod CIDR used to detect local traffic")
    p.add_argument("--proxy-mode", default=modes.DEFAULT, choices=modes.selectable(),
                   help="kube-proxy mode (default %(default)s)")
    modes.add_options(p, "proxier")
    p.add_argument("--netns", default=None, help="program this network namespace instead of the host's")
    p.add_argument("--metrics-bind-address", default=DEFAULT_BIND_ADDRESS, help="HOST:PORT for /metrics")
    p.add_argument("--service-cidr", dest="cluster_service_cidr", action="append", default=[], metavar="CIDR",
                   help="the cluster's Service CIDR (repeatable; the nftables mode drops its unallocated ClusterIPs)")
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
    try:
        service_cidrs = tuple(str(ipaddress.ip_network(c, strict=False)) for c in args.cluster_service_cidr)
    except ValueError as exc:
        raise UsageError(f"--service-cidr: {exc}") from None
    config = ProxyConfig(min_sync_period=args.min_sync_period, sync_period=args.sync_period,
                         service_cidrs=service_cidrs)
    try:
        options = modes.options_from(args, args.proxy_mode, "proxier")
        make = modes.choose(args.proxy_mode).hook("proxier")
        proxier = make(node, config, exec_=exec_in(args.netns), **options)
        clean_other_modes(args.proxy_mode, exec_in(args.netns))      # upstream's cleanup on start
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    server = MetricsServer(proxier.metrics, args.metrics_bind_address)
    backend = getattr(proxier, "backend", None)      # a mode with several backends names the one it uses
    print(f"kube-proxy for node {node.name} ({args.proxy_mode} mode{f', {backend} backend' if backend else ''}"
          f"{', netns ' + args.netns if args.netns else ''}); metrics on http://{server.address}/metrics",
          flush=True)
    try:
        asyncio.run(_watch(args.kubeconfig, proxier, args.proxy_mode))
    finally:
        proxier.stop()
        server.close()
    return 0


async def _watch(kubeconfig: str, proxier: Proxier, mode: str | None = None) -> None:
    from netemu.agent.proxy.feed import feed_proxier
    from netemu.client import ApiClient

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        if threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(sig, stop.set)
    async with ApiClient.from_kubeconfig(kubeconfig, user_agent="netemu-kube-proxy") as api:
        await feed_proxier(api, proxier, stop, mode=mode)


COMMANDS = [Command("proxy run", "run kube-proxy against an API server",
                    _add_arguments, run)]
