"""The flags of a node's components (``netemu agent``, and the kubelet, kube-proxy and runtime
processes the node supervisor forks from the launcher): one parser and one validation, in the
agent layer, so the launcher (which must not import the CLI) and ``netemu agent`` read a node's
argv the same way. Every bad value is a FlagError with one clear sentence; nothing is touched
before all of them are checked.
"""

from __future__ import annotations

import argparse
import ipaddress
import os

from netemu.agent.proxy import modes


class FlagError(ValueError):
    """A bad flag value; the CLI shows it as a usage error."""


DEFAULT_STATE = "/var/lib/netemu/default"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", required=True, help="this node's name (the Node object)")
    p.add_argument("--node-ip", required=True, help="this node's IP on the node network (InternalIP)")
    p.add_argument("--kubeconfig", required=True,
                   help="the kubelet's kubeconfig (kubeadm's kubelet.conf: identity system:node:NODE); the node's "
                        "runtime uses it too, for what it reads on a pod's behalf (configMap volumes)")
    p.add_argument("--proxy-kubeconfig", default=None,
                   help="kube-proxy's own kubeconfig (identity system:kube-proxy; default: --kubeconfig)")
    p.add_argument("--proxy-mode", default=modes.DEFAULT, choices=[*modes.selectable(), modes.NO_PROXY],
                   help=f"kube-proxy mode, or {modes.NO_PROXY} for a kubelet alone (default %(default)s)")
    modes.add_options(p, "proxier")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", help="pod CIDR for kube-proxy's local traffic detection")
    p.add_argument("--service-cidr", dest="cluster_service_cidr", action="append", default=[], metavar="CIDR",
                   help="the cluster's Service CIDR (repeatable; kube-proxy's nftables mode drops traffic to "
                        "its unallocated ClusterIPs)")
    p.add_argument("--capacity", default="", help="e.g. cpu=2,memory=4Gi,pods=110")
    p.add_argument("--labels", default="", help="extra node labels k=v,...")
    p.add_argument("--taints", default="", help="taints k=v:NoSchedule,...")
    p.add_argument("--heartbeat-interval", type=float, default=10.0, help="seconds between Lease renewals")
    p.add_argument("--state-dir", default=None,
                   help=f"where pod logs and IP allocations live (default {DEFAULT_STATE}/nodes/NODE)")
    p.add_argument("--metrics-bind-address", default="127.0.0.1:10249",
                   help="kube-proxy /metrics HOST:PORT in the node namespace ('' disables)")
    p.add_argument("--healthz-bind-address", default=None,
                   help="kube-proxy /healthz and /livez HOST:PORT in the node namespace ('' disables; default "
                        "0.0.0.0:10256 for kube-proxy in its own process, none in the all-in-one agent)")
    # upstream's flag names (--iptables-...) and the mode-neutral ones `netemu proxy run` takes
    p.add_argument("--min-sync-period", "--iptables-min-sync-period", type=float, default=1.0,
                   help="kube-proxy: seconds between syncs at least, after a burst of 2 (upstream's default 1 s; "
                        "lower trades CPU for latency when changes come faster than one per period)")
    p.add_argument("--sync-period", "--iptables-sync-period", type=float, default=30.0,
                   help="kube-proxy: seconds between syncs at most (periodic resync)")
    p.add_argument("--no-conntrack-cleanup", dest="conntrack_cleanup", action="store_false",
                   help="kube-proxy: do not delete the UDP conntrack entries of removed endpoints (upstream "
                        "always does; for experiments showing why)")
    p.add_argument("--container-runtime-endpoint", default=None, metavar="PATH",
                   help="the container runtime's Unix socket (netemu runtime, its own process); default: "
                        "the runtime runs inside this process")
    p.add_argument("--restart-backoff", type=float, default=10.0,
                   help="first container restart back-off in seconds (doubles up to 5 min)")
    p.add_argument("--cluster-dns", default="10.96.0.10",
                   help="kubelet: the DNS Service IP(s) pods with dnsPolicy ClusterFirst use, comma-separated "
                        "('' : none; such pods fall back to the node's resolv.conf) (default %(default)s)")
    p.add_argument("--cluster-domain", default="cluster.local",
                   help="kubelet: the cluster's DNS domain, searched by pods (default %(default)s)")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf",
                   help="kubelet: the node's resolver file, base of every pod's (default %(default)s)")


def build_config(args: argparse.Namespace):
    """Flags -> AgentConfig, with one clear error for each bad value."""
    from netemu.agent.agent import AgentConfig
    from netemu.agent.kubelet import nodestatus
    from netemu.agent.kubelet.kubelet import KubeletConfig
    from netemu.agent.proxy.leftovers import PROXY_MODE_ANNOTATION
    try:
        node_ip = str(ipaddress.ip_address(args.node_ip))
        cidr = str(ipaddress.ip_network(args.cluster_cidr, strict=False))
        service_cidrs = tuple(str(ipaddress.ip_network(c, strict=False)) for c in args.cluster_service_cidr)
        capacity = nodestatus.parse_capacity(args.capacity)
        labels = nodestatus.parse_labels(args.labels)
        taints = nodestatus.parse_taints(args.taints)
    except ValueError as exc:
        raise FlagError(str(exc)) from None
    if args.heartbeat_interval <= 0:
        raise FlagError("--heartbeat-interval must be > 0")
    if args.restart_backoff <= 0:
        raise FlagError("--restart-backoff must be > 0")
    if not 0 <= args.min_sync_period <= args.sync_period or args.sync_period <= 0:
        raise FlagError("need 0 <= --min-sync-period <= --sync-period, and a sync period > 0")
    proxy_mode = None if args.proxy_mode == modes.NO_PROXY else args.proxy_mode
    try:
        proxy_options = modes.options_from(args, proxy_mode, "proxier")
    except modes.ModeError as exc:
        raise FlagError(str(exc)) from None
    for path in (args.kubeconfig, args.proxy_kubeconfig):
        if path and not os.path.isfile(path):
            raise FlagError(f"kubeconfig {path} does not exist")
    from netemu.agent.proxy.metrics import parse_bind_address
    for address in (args.metrics_bind_address, args.healthz_bind_address):
        try:
            if address:
                parse_bind_address(address)
        except ValueError as exc:
            raise FlagError(str(exc)) from None
    dns = dns_settings(args)
    state_dir = args.state_dir or os.path.join(DEFAULT_STATE, "nodes", args.node)
    # the node's kube-proxy mode, shown by `netemu status` (kube-proxy itself may not write Nodes)
    annotations = {PROXY_MODE_ANNOTATION: proxy_mode} if proxy_mode else {}
    kubelet = KubeletConfig(args.node, node_ip, capacity=capacity, labels=labels, taints=taints,
                            annotations=annotations, heartbeat_interval=args.heartbeat_interval,
                            lease_duration=max(40, int(args.heartbeat_interval * 4)),
                            backoff_initial=args.restart_backoff)
    return AgentConfig(kubelet=kubelet, kubeconfig=args.kubeconfig, state_dir=state_dir,
                       proxy_kubeconfig=args.proxy_kubeconfig,
                       proxy_mode=proxy_mode, proxy_options=proxy_options,
                       cluster_cidr=cidr, service_cidrs=service_cidrs, metrics_bind_address=args.metrics_bind_address or None,
                       min_sync_period=args.min_sync_period, sync_period=args.sync_period, dns=dns,
                       healthz_bind_address=args.healthz_bind_address,
                       runtime_endpoint=args.container_runtime_endpoint,
                       conntrack_cleanup=args.conntrack_cleanup)


def dns_settings(args: argparse.Namespace):
    """--cluster-dns / --cluster-domain / --resolv-conf -> DNSSettings (a missing resolver file
    is an empty one, as a node without DNS configured)."""
    from netemu.agent.kubelet.dns import DNSSettings, parse_resolv_conf
    servers = tuple(s.strip() for s in args.cluster_dns.split(",") if s.strip())
    try:
        for server in servers:
            ipaddress.ip_address(server)
    except ValueError as exc:
        raise FlagError(f"--cluster-dns: {exc}") from None
    try:
        with open(args.resolv_conf, encoding="utf-8", errors="replace") as fh:
            host = parse_resolv_conf(fh.read())
    except FileNotFoundError:
        host = parse_resolv_conf("")
    except OSError as exc:
        raise FlagError(f"--resolv-conf {args.resolv_conf}: {exc.strerror}") from None
    return DNSSettings(servers, args.cluster_domain.strip().strip("."), host)


def parse(argv: list[str]):
    """A node's agent argv (the words after ``netemu agent``) -> AgentConfig; FlagError for a bad
    value (argparse's own errors exit, as for any command line)."""
    p = argparse.ArgumentParser(prog="netemu agent")
    add_arguments(p)
    return build_config(p.parse_args(argv))
