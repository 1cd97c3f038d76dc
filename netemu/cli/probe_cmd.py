"""``netemu probe``: one crafted SYN or UDP datagram (scapy) from a pod, node or external host,
optionally from a chosen source port and a spoofed source inside the emulated ranges; prints
what came back and from where, and the node's conntrack entry (the DNAT written down).
A thin layer over netemu.traffic.probe."""

from __future__ import annotations

import argparse
import asyncio
import json
import random

from netemu.cli.access import DEFAULT_STATE_DIR
from netemu.cli.main import Command, UsageError


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="source", required=True, metavar="POD|node/NAME|external[/NAME]")
    p.add_argument("--to", dest="target", required=True, metavar="svc/NAME[:PORT]|pod/NAME:PORT|node/NAME:PORT|IP:PORT")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--syn", action="store_true", help="a TCP SYN")
    kind.add_argument("--udp", action="store_true", help="a UDP datagram (agnhost's 'hostname' command)")
    p.add_argument("--sport", type=int, help="source port (default: a random one, 20000-29999)")
    p.add_argument("--src", help="spoofed source address (inside the pod CIDR or the node network)")
    p.add_argument("--via", choices=("clusterip", "nodeport", "loadbalancer"))
    p.add_argument("--node", help="with --via nodeport: the node whose address is used")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--json", action="store_true")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR)


def run_probe(args: argparse.Namespace) -> int:
    from netemu.traffic.cluster import load_snapshot
    from netemu.traffic.probe import EMULATED, Probe, conntrack, run_in
    from netemu.traffic.spec import SpecError

    proto = "tcp" if args.syn else "udp"
    try:
        snap = asyncio.run(load_snapshot(args.state_dir))
        src = snap.source(args.source, args.namespace)
        resolved = snap.target(args.target, args.namespace, src, proto, args.via, args.node)
        snap.scope().check(resolved.target.ip)
        probe = Probe(proto, args.src, args.sport or random.randint(20000, 29999), resolved.target.ip,
                      resolved.target.port, args.timeout).check([*EMULATED, snap.doc["node_network"]])
        if args.src and args.src == snap.doc.get("root_ip"):
            raise SpecError("--src may not be the root namespace's address")
        netns = src.netns
        if src.kind == "external":
            from netemu.emulator import external
            ext = external.ensure(args.state_dir, src.name)
            netns, src_ip = ext.netns, ext.ip
        else:
            src_ip = src.ip
        by_ip = {info["ip"]: name for name, info in snap.nodes.items()}
        node = src.node if src.kind in ("pod", "node") else by_ip.get(resolved.target.ip)
        out = run_in(netns, probe)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    entries = conntrack(snap.nodes[node]["netns"], probe, args.src or src_ip) if node else []
    out.update(node=node, conntrack=entries, target=resolved.target.label)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    s, a = out["sent"], out["answer"]
    print(f"sent     {s['proto']} {s['src']}:{s['sport']} -> {s['dst']}:{s['dport']} ({resolved.target.label})")
    if a is None:
        print("answer   none" + (f" (the answer went to the spoofed {args.src})" if args.src else ""))
    else:
        extra = a.get("flags") or a.get("data") or (f"icmp type {a['icmp_type']} code {a['icmp_code']}"
                                                     if "icmp_type" in a else "")
        print(f"answer   {a['src']}:{a.get('sport', '')} -> {a['dst']}:{a.get('dport', '')} {extra}")
    for line in entries or ([f"(no conntrack entry on node {node})"] if node else []):
        print(f"conntrack[{node}] {line}")
    return 0


COMMANDS = [Command("probe", "send one crafted SYN or UDP datagram (scapy, optional spoofed source) and show "
                             "the answer and the node's conntrack entry", _args, run_probe)]
