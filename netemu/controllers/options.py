"""Flags and settings of the control-plane loops (kube-controller-manager / kube-scheduler /
cloud-controller-manager flags we emulate), shared by ``netemu apiserver`` and tests."""

from __future__ import annotations

import argparse
import ipaddress
import re
from dataclasses import dataclass

ALL_CONTROLLERS = ("scheduler", "deployment", "replicaset", "statefulset", "daemonset", "job",
                   "endpointslice", "nodelifecycle", "namespace", "garbagecollector", "serviceaccount", "nodeipam", "cloud-lb",
                   "podgc")


@dataclass
class Settings:
    controllers: tuple[str, ...] = ALL_CONTROLLERS
    node_monitor_grace_period: float = 40.0
    node_monitor_period: float = 5.0
    default_not_ready_toleration_seconds: int = 300
    default_unreachable_toleration_seconds: int = 300
    lb_pool: str = "172.18.255.200-172.18.255.250"
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    service_cidr: str = "10.96.0.0/12"
    max_endpoints_per_slice: int = 100
    endpointslice_updates_batch_period: float = 0.0
    kubeconfig: str | None = None        # when set, the loops connect with it (CA included)
    scheduler_kubeconfig: str | None = None   # the scheduler's own identity (else the manager's)
    use_service_account_credentials: bool = True   # each controller as its kube-system ServiceAccount


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")


def duration(text: str) -> float:
    """Go-style durations as upstream flags take them: "40s", "500ms", "5m", or plain seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 40s, 500ms, 2m)")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def controller_list(text: str) -> tuple[str, ...]:
    """upstream --controllers: "*" for all, names to enable, "-name" to disable."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w.lstrip("-") for w in words if w != "*" and w.lstrip("-") not in ALL_CONTROLLERS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown controller(s) {', '.join(unknown)}; known: {', '.join(ALL_CONTROLLERS)}")
    enabled = set(ALL_CONTROLLERS) if "*" in words else set()
    for w in words:
        if w.startswith("-"):
            enabled.discard(w[1:])
        elif w != "*":
            enabled.add(w)
    return tuple(c for c in ALL_CONTROLLERS if c in enabled)


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid CIDR {text!r}: {exc}") from None


def _pool(text: str) -> str:
    from netemu.controllers.cloud import parse_pool
    try:
        parse_pool(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Settings()
    g = parser.add_argument_group("control plane (scheduler, controllers, cloud controller)")
    g.add_argument("--controllers", type=controller_list, default=d.controllers, metavar="LIST",
                   help=f"'*' or names, '-name' disables (known: {','.join(ALL_CONTROLLERS)})")
    g.add_argument("--node-monitor-grace-period", type=duration, default=d.node_monitor_grace_period,
                   metavar="DURATION", help="silence after which a node is NotReady (default 40s)")
    g.add_argument("--node-monitor-period", type=duration, default=d.node_monitor_period, metavar="DURATION",
                   help="how often node health is checked (default 5s)")
    g.add_argument("--default-not-ready-toleration-seconds", type=int,
                   default=d.default_not_ready_toleration_seconds, metavar="N",
                   help="tolerationSeconds for not-ready:NoExecute given to pods without one (default 300)")
    g.add_argument("--default-unreachable-toleration-seconds", type=int,
                   default=d.default_unreachable_toleration_seconds, metavar="N",
                   help="tolerationSeconds for unreachable:NoExecute given to pods without one (default 300)")
    g.add_argument("--lb-pool", type=_pool, default=d.lb_pool, metavar="RANGE|CIDR",
                   help="LoadBalancer ingress addresses (default %(default)s)")
    g.add_argument("--cluster-cidr", type=_cidr, default=d.cluster_cidr, metavar="CIDR",
                   help="pod network; each node gets a podCIDR from it (default %(default)s)")
    g.add_argument("--node-cidr-mask-size", type=int, default=d.node_cidr_mask_size, metavar="N",
                   help="prefix length of each node's podCIDR (default %(default)s)")
    g.add_argument("--max-endpoints-per-slice", type=int, default=d.max_endpoints_per_slice, metavar="N",
                   help="endpoints per EndpointSlice, 1-1000 (default %(default)s)")
    g.add_argument("--endpointslice-updates-batch-period", type=duration,
                   default=d.endpointslice_updates_batch_period, metavar="DURATION",
                   help="delay pod-driven EndpointSlice (and Endpoints) syncs by this long so pod changes "
                        "within it join one update: fewer slice versions for every kube-proxy to apply, "
                        "later endpoints (default 0s, as upstream)")
    g.add_argument("--service-cidr", type=_cidr, default=d.service_cidr, metavar="CIDR",
                   help="Service ClusterIP range the controllers assume (default %(default)s)")


class SettingsError(ValueError):
    """Flags that parse one by one but do not fit together; the command reports it as a usage
    error (exit 2)."""


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings, once the flags are known to fit together. ``kubeconfig`` stays unset: the
    control-plane process fills in the one it writes (CA included) before the loops start."""
    net = ipaddress.ip_network(args.cluster_cidr)
    if not net.prefixlen <= args.node_cidr_mask_size <= net.max_prefixlen:
        raise SettingsError(f"--node-cidr-mask-size {args.node_cidr_mask_size} does not fit in --cluster-cidr "
                         f"{args.cluster_cidr}")
    if not 1 <= args.max_endpoints_per_slice <= 1000:
        raise SettingsError(f"--max-endpoints-per-slice {args.max_endpoints_per_slice}: must be 1-1000")
    if args.node_monitor_period <= 0 or args.node_monitor_grace_period <= 0:
        raise SettingsError("--node-monitor-period and --node-monitor-grace-period must be positive")
    if args.endpointslice_updates_batch_period > 3600:
        raise SettingsError(f"--endpointslice-updates-batch-period {args.endpointslice_updates_batch_period:g}s: "
                            "at most 1h (pod changes would wait that long to reach the endpoints)")
    return Settings(controllers=tuple(args.controllers),
                    node_monitor_grace_period=args.node_monitor_grace_period,
                    node_monitor_period=args.node_monitor_period,
                    default_not_ready_toleration_seconds=args.default_not_ready_toleration_seconds,
                    default_unreachable_toleration_seconds=args.default_unreachable_toleration_seconds,
                    lb_pool=args.lb_pool, cluster_cidr=args.cluster_cidr,
                    node_cidr_mask_size=args.node_cidr_mask_size, service_cidr=args.service_cidr,
                    max_endpoints_per_slice=args.max_endpoints_per_slice,
                    endpointslice_updates_batch_period=args.endpointslice_updates_batch_period)
