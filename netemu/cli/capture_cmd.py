"""``netemu capture``: a pcap from inside the emulation (a pod's, a node's, an external host's
namespace, or one of the cluster's links), and with ``--summary`` the flows it holds, the
Services' DNAT paired up. A thin layer over netemu.traffic.capture."""

from __future__ import annotations

import argparse
import asyncio
import re

from netemu.cli.access import DEFAULT_STATE_DIR
from netemu.cli.main import Command, UsageError


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("where", nargs="+", metavar="POD|node/NAME|external[/NAME]|link NAME",
                   help="the namespace (all its interfaces) or a link of the cluster in the root namespace")
    p.add_argument("-w", "--write", required=True, metavar="FILE.pcap", help="the pcap file to write")
    p.add_argument("--filter", help="a BPF filter, e.g. 'tcp port 80'")
    p.add_argument("-i", "--interface", default="any", help="interface inside the namespace (default any)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--count", type=int, help="stop after N packets")
    stop.add_argument("--duration", type=float, help="stop after S seconds (default: Ctrl-C)")
    p.add_argument("--summary", action="store_true", help="print the flows and the DNAT pairs seen")
    p.add_argument("-n", "--namespace", default="default", help="namespace of POD (default default)")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help=f"the cluster's state dir (default {DEFAULT_STATE_DIR})")


def _namespace(args: argparse.Namespace) -> tuple[str | None, str, set[str]]:
    """(netns or None for the root namespace, interface, the cluster's Service addresses)."""
    from netemu.traffic.cluster import load_snapshot

    snap = asyncio.run(load_snapshot(args.state_dir))
    services = {ip for s in snap.services for ip in (s.get("spec") or {}).get("clusterIPs") or [] if ip != "None"}
    words = args.where[0].split("/", 1) + args.where[1:] if args.where[0].startswith("link") else args.where
    if words[0] == "link":
        if len(words) != 2:
            raise UsageError("capture link NAME: one link name")
        prefix = f"n{snap.doc.get('id', '')}"
        if not re.match(rf"^{prefix}[hsx]", words[1]):
            raise UsageError(f"{words[1]} is not a link of this cluster (its links start with {prefix}: ip link)")
        return None, words[1], services
    if len(words) != 1:
        raise UsageError("capture takes one POD, node/NAME, external[/NAME] or link NAME")
    source = snap.source(words[0], args.namespace)
    if source.kind == "external":
        from netemu.emulator import external
        source_ns = external.ensure(args.state_dir, source.name).netns
    else:
        source_ns = source.netns
    return source_ns, args.interface, services


def run_capture(args: argparse.Namespace) -> int:
    from netemu.traffic.capture import Capture, CaptureError, summarize
    from netemu.traffic.result import check_output
    from netemu.traffic.spec import SpecError

    if args.count is not None and args.count < 1 or args.duration is not None and not args.duration > 0:
        raise UsageError("--count must be >= 1 and --duration > 0")
    try:
        check_output(args.write, (".pcap",))
        netns, iface, services = _namespace(args)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    cap = Capture(args.write, netns, iface, args.filter, args.count)
    try:
        cap.start()
    except CaptureError as exc:
        raise UsageError(str(exc)) from None
    print(f"capturing in {netns or 'the root namespace'} on {iface} -> {args.write} "
          f"({'Ctrl-C to stop' if not args.count and not args.duration else 'stops by itself'})", flush=True)
    try:
        cap.wait(args.duration)
    finally:
        print(cap.stop() or "stopped")
    if args.summary:
        print(summarize(args.write, services).render(), end="")
    return 0


COMMANDS = [
    Command("capture", "capture packets in a pod, node, external host or cluster link to a pcap "
            "(--summary: the flows and Service DNAT seen)", _args, run_capture),
]
