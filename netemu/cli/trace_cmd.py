"""`netemu trace` (where does this packet go?) and `netemu proxy cleanup` (remove kube-proxy's rules).

Both read the kernel through argv (``iptables-save``, ``ip -o addr``), optionally inside a named
network namespace through ``ip netns exec NAME ...``; the answers come from the pure tracer and
cleanup planner in netemu.agent.proxy.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import sys
from dataclasses import asdict

from netemu.agent.proxy.cleanup import BACKENDS, Cleaner
from netemu.agent.proxy.commands import exec_in
from netemu.agent.proxy.iptables.dump import parse
from netemu.agent.proxy.trace import Packet, TraceError, Tracer
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


def _read_live(netns: str | None, backend: str | None) -> tuple[str, str | None]:
    """iptables-save text of the chosen backend, or else of the backend holding KUBE- rules.

    Both backends can hold rules at once and both apply to packets; kube-proxy writes to one
    (upstream picks the one with more rules). Reading the system default blindly would trace an
    empty table on a node whose kube-proxy uses the other backend."""
    if backend:
        return _run(netns, [f"iptables-{backend}-save"]), None
    found = {}
    for b in BACKENDS:
        if shutil.which(f"iptables-{b}-save"):
            found[b] = _run(netns, [f"iptables-{b}-save"])
    counts = {b: text.count("-A KUBE-") for b, text in found.items()}
    if not counts or max(counts.values()) == 0:
        return _run(netns, ["iptables-save"]), "no KUBE- rules in either iptables backend"
    best = max(counts, key=counts.get)
    other = [b for b in counts if b != best and counts[b]]
    note = f"read iptables-{best}-save (it holds kube-proxy's rules)"
    if other:
        note += f"; iptables-{other[0]} also holds {counts[other[0]]} KUBE- rules, not traced (--backend)"
    return found[best], note


def _read_dump(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.live:
        return _read_live(args.netns, args.backend)
    if args.netns or args.backend:
        raise UsageError("--netns and --backend go with --live")
    try:
        if args.file == "-":
            return sys.stdin.read(), None
        with open(args.file, encoding="utf-8") as f:
            return f.read(), None
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
    p.add_argument("--src", required=True, help="source IP of the packet")
    p.add_argument("--dst", required=True, help="destination IP (ClusterIP, node IP, LB IP, ...)")
    p.add_argument("--dport", required=True, type=int, help="destination port")
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
    src.add_argument("-f", "--file", help="rule dump: `netemu proxy render` output or iptables-save (- for stdin)")
    src.add_argument("--live", action="store_true", help="read the rules with iptables-save now")
    p.add_argument("--netns", help="with --live: run iptables-save inside this network namespace")
    p.add_argument("--backend", choices=BACKENDS,
                   help="with --live: read this iptables backend (default: the one holding KUBE- rules)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run_trace(args: argparse.Namespace) -> int:
    text, source_note = _read_dump(args)
    dump = parse(text)
    if not dump.tables:
        raise UsageError("the dump holds no table (is it iptables-save / restore text?)")
    node_ips = args.node_ip or (_local_addresses(args.netns) if args.live else [])
    packet = Packet(args.src, args.dst, args.dport, args.proto, args.sport, args.iif)
    try:
        result = Tracer(dump).trace(packet, node_ips, args.origin, _ipsets(args.ipset))
    except TraceError as exc:
        raise UsageError(str(exc)) from None
    if source_note:
        result.notes.insert(0, source_note)
    if not node_ips:
        result.notes.append("no node IPs given (--node-ip): only loopback counts as a local address")
    print(result.to_json() if args.json else result.render(), end="" if not args.json else "\n")
    return 0


def add_cleanup_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--netns", help="clean inside this network namespace instead of the host's")
    p.add_argument("--backend", choices=BACKENDS,
                   help="only this iptables backend (default: both, since leftovers in either apply)")
    p.add_argument("--json", action="store_true", help="machine-readable report")


def run_cleanup(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise UsageError("proxy cleanup changes netfilter rules: run it as root")
    if args.netns and not os.path.exists(f"/run/netns/{args.netns}"):
        raise UsageError(f"no network namespace {args.netns!r} (ip netns list)")
    backends = (args.backend,) if args.backend else BACKENDS
    report = Cleaner(netns=args.netns, backends=backends).cleanup()
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        where = f"netns {args.netns}" if args.netns else "this host"
        if report.nothing_to_do:
            print(f"nothing to clean in {where}")
        else:
            print(f"removed {len(report.removed_chains)} KUBE-* chains and "
                  f"{len(report.removed_jumps)} jump rules in {where}")
        for argv in report.commands:
            if not argv[0].endswith("-restore"):
                print("ran: " + " ".join(argv))
        for s in report.skipped:
            print(f"skipped: {s}")
        for e in report.errors:
            print(f"error: {e}", file=sys.stderr)
    return 1 if report.errors else 0


COMMANDS = [
    Command("trace", "trace a packet through kube-proxy's rules (a dump or the live kernel)",
            add_trace_arguments, run_trace),
    Command("proxy cleanup", "remove every KUBE-* chain and jump rule, nftables kube-proxy tables, "
            "kube-ipvs0 (like kube-proxy --cleanup)", add_cleanup_arguments, run_cleanup),
]
