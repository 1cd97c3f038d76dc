"""`netemu trace`: where does this packet go through kube-proxy's rules?

It reads the kernel through argv (``iptables-save``, ``ip -o addr``, ...), optionally inside a
named network namespace through ``ip netns exec NAME ...``; the answer comes from the chosen proxy
mode's pure tracer, found through the registry (netemu.agent.proxy.modes). ``netemu proxy
cleanup`` is in proxy_cleanup_cmd.py.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys

from netemu.agent.proxy import modes
from netemu.agent.proxy.commands import exec_in
from netemu.cli.access import DEFAULT_STATE_DIR
from netemu.cli.main import Command, UsageError


def _run(netns: str | None, argv: list[str]) -> str:
    """stdout of argv (inside ``netns`` if given, via the proxier's Exec); failure -> UsageError."""
    try:
        done = exec_in(netns)(argv)
    except FileNotFoundError:
        raise UsageError(f"{argv[0]} is not installed") from None
    if done.returncode != 0:
        raise UsageError(f"{' '.join(argv)} failed: {done.stderr.strip()[:300]}")
    return done.stdout


def _local_addresses(netns: str | None) -> list[str]:
    """The addresses `addrtype LOCAL` matches in that namespace (`ip -o addr show`)."""
    ips = []
    for line in _run(netns, ["ip", "-o", "addr", "show"]).splitlines():
        words = line.split()
        if len(words) > 3 and words[2] in ("inet", "inet6"):
            ips.append(words[3].split("/")[0])
    return ips


def _read_dump(args: argparse.Namespace, live_flags: list[str]) -> str | None:
    """The dump's text, or None with --live (the mode's tracer reads the kernel itself)."""
    if args.live:
        return None
    if args.netns or any(getattr(args, o.key) not in (o.default, False) for o in live_flags):
        raise UsageError(f"--netns and {', '.join(sorted({o.flag for o in live_flags}))} go with --live")
    try:
        if args.file == "-":
            return sys.stdin.read()
        with open(args.file, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None


def _ipsets(specs: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, members = spec.partition("=")
        if not sep or not name:
            raise UsageError(f"--ipset wants NAME=CIDR[,CIDR...], not {spec!r}")
        for m in filter(None, members.split(",")):
            try:
                ipaddress.ip_network(m, strict=False)
            except ValueError:
                raise UsageError(f"--ipset {name}: {m!r} is not an address or CIDR") from None
        out[name] = [m for m in members.split(",") if m]
    return out


def add_trace_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", help="source IP of the packet (required with -f and --live)")
    p.add_argument("--dst", help="destination IP (ClusterIP, node IP, LB IP, ...)")
    p.add_argument("--dport", type=int, help="destination port")
    p.add_argument("--sport", type=int, default=40000, help="source port (default 40000)")
    p.add_argument("--proto", default="tcp", choices=("tcp", "udp", "sctp"))
    p.add_argument("--node-ip", action="append", default=[], metavar="IP",
                   help="an address of the node (repeat); addrtype LOCAL and local delivery depend "
                        "on them; with --live they default to the namespace's own addresses")
    p.add_argument("--from", dest="origin", choices=("pod", "node", "external"),
                   help="where the packet comes from: pod/external enter nat PREROUTING, node enters "
                        "OUTPUT (default: node when --src is a node IP)")
    p.add_argument("--iif", help="input interface, for rules that match -i")
    p.add_argument("--ipset", action="append", default=[], metavar="NAME=CIDR,...",
                   help="members of an ipset the rules match (unknown sets cannot be evaluated)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-f", "--file", help="rule dump: `netemu proxy render` output or the kernel's listing "
                                          "(iptables: iptables-save; - for stdin)")
    src.add_argument("--live", action="store_true", help="read the rules from the kernel now")
    src.add_argument("--kernel", action="store_true",
                     help="send one real packet (--source to --to, as netemu traffic's --from/--to) and follow it "
                          "with the kernel's own tracing on the node that translates it, next to the offline "
                          "tracer's prediction (a mismatch is reported, exit 1)")
    p.add_argument("--source", metavar="POD|node/NAME|external[/NAME]", help="with --kernel: where the packet starts")
    p.add_argument("--to", metavar="svc/NAME[:PORT]|pod/NAME:PORT|node/NAME:PORT|IP:PORT",
                   help="with --kernel: where it goes")
    p.add_argument("--via", choices=("clusterip", "nodeport", "loadbalancer"), help="with --kernel, as netemu traffic")
    p.add_argument("--node", help="with --kernel --via nodeport: the node whose address is used")
    p.add_argument("-n", "--namespace", default="default", help="with --kernel: namespace of POD and svc/NAME")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="with --kernel: the cluster's state dir")
    p.add_argument("--netns", help="with --live: read the rules inside this network namespace")
    p.add_argument("--mode", default=modes.DEFAULT,
                   help=f"proxy mode whose rules these are: {', '.join(m.name for m in modes.with_hook('tracer'))} "
                        "(default %(default)s)")
    modes.add_options(p, "tracer")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run_kernel_trace(args: argparse.Namespace) -> int:
    from netemu.agent.proxy.tracing import TraceError
    from netemu.traffic.ktrace import kernel_trace
    from netemu.traffic.spec import SpecError

    if not args.source or not args.to:
        raise UsageError("--kernel needs --source POD|node/NAME|external and --to TARGET")
    if args.src or args.dst or args.dport or args.file:
        raise UsageError("--kernel takes the packet from --source/--to, not --src/--dst/--dport")
    if os.geteuid() != 0:
        raise UsageError("trace --kernel adds a TRACE rule in a node's namespace: run it as root")
    try:
        mode_options = {}
        result, node = kernel_trace(args.state_dir, args.source, args.to, proto=args.proto, namespace=args.namespace,
                                    via=args.via, node=args.node, mode_options=mode_options)
    except (SpecError, TraceError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps({"node": node, **result.to_dict()}, indent=2))
    else:
        print(f"node {node}")
        print(result.render(), end="")
    return 0 if result.ok else 1


def run_trace(args: argparse.Namespace) -> int:
    from netemu.agent.proxy.tracing import Packet, TraceError

    if args.kernel:
        return run_kernel_trace(args)
    if args.src is None or args.dst is None or args.dport is None:
        raise UsageError("--src, --dst and --dport are required (or --kernel --source ... --to ...)")
    if args.source or args.to:
        raise UsageError("--source and --to go with --kernel")

    try:
        mode = modes.choose(args.mode, "tracer")
    except modes.ModeError as exc:
        raise UsageError(f"--mode {exc}") from None
    live_flags = [o for m in modes.known() for o in m.options_for("tracer")]
    dump = _read_dump(args, live_flags)
    try:
        options = modes.options_from(args, mode.name, "tracer")
    except modes.ModeError as exc:
        raise UsageError(str(exc)) from None
    node_ips = args.node_ip or (_local_addresses(args.netns) if args.live else [])
    packet = Packet(args.src, args.dst, args.dport, args.proto, args.sport, args.iif)
    try:
        result = mode.hook("tracer")(dump, packet, exec_=exec_in(args.netns), node_ips=node_ips,
                                     origin=args.origin, ipsets=_ipsets(args.ipset), **options)
    except TraceError as exc:
        raise UsageError(str(exc)) from None
    if not node_ips:
        result.notes.append("no node IPs given (--node-ip): only loopback counts as a local address")
    print(result.to_json() if args.json else result.render(), end="" if not args.json else "\n")
    return 0


COMMANDS = [
    Command("trace", "trace a packet through kube-proxy's rules (a dump or the live kernel)",
            add_trace_arguments, run_trace),
]
