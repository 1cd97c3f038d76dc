"""``netemu proxy render``: the rules kube-proxy would write on a node, from manifest files.

Touches nothing: reads Services and EndpointSlices, prints what the chosen mode's renderer
(the proxy-mode registry's hook) makes of them; for iptables, the ``iptables-restore`` input
(what upstream kube-proxy v1.32 passes to ``iptables-restore --noflush`` on a full sync).

Exit codes: 0 rules printed from every object; 1 rules printed but some objects or fields
were skipped (each reason on stderr); 2 unusable input (bad flag, unreadable or malformed
file, unsupported mode) and nothing printed. With ``--compare SAVE_FILE`` the differences
from another dump (a real node's ``iptables-save``) are printed instead: 0 none, 1 some.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from netemu.agent.proxy import modes
from netemu.cli.main import Command, UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("exit status: 0 rules printed from every object; 1 rules printed but some objects were "
                "skipped (reasons on stderr); 2 unusable input, nothing printed")
    p.add_argument("--mode", default=modes.DEFAULT,
                   help=f"proxy mode: {', '.join(m.name for m in modes.with_hook('renderer'))} "
                        "(default %(default)s)")
    p.add_argument("--node", required=True, metavar="NAME", help="node name (endpoints with this nodeName are local)")
    p.add_argument("--node-ip", action="append", default=[], metavar="IP",
                   help="node IP, primary first (repeatable)")
    p.add_argument("--cluster-cidr", metavar="CIDR",
                   help="pod range for local-traffic detection (omit: detection off, as upstream)")
    p.add_argument("--node-label", action="append", default=[], metavar="KEY=VALUE",
                   help="node label, e.g. topology.kubernetes.io/zone=a (repeatable)")
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE_OR_DIR",
                   help="YAML/JSON file or folder with Services and EndpointSlices, - for stdin (repeatable)")
    p.add_argument("--masquerade-all", action="store_true", help="SNAT all Service traffic")
    p.add_argument("--no-random-fully", action="store_true", help="MASQUERADE without --random-fully")
    p.add_argument("--no-localhost-nodeports", action="store_true", help="NodePorts not on 127.0.0.1")
    p.add_argument("--nfacct", action="store_true", help="add upstream's nfacct counters to rules")
    p.add_argument("--compare", metavar="SAVE_FILE",
                   help="instead of printing, compare with a dump of a real node (iptables: `iptables-save`; "
                        "KUBE-* chains only) and print the differences")
    modes.add_options(p, "renderer")


def _node(args: argparse.Namespace):
    from netemu.agent.proxy.model import NodeInfo
    ips = []
    for raw in args.node_ip:
        try:
            ips.append(str(ipaddress.ip_address(raw)))
        except ValueError:
            raise UsageError(f"--node-ip {raw!r} is not an IP address") from None
    cidr = None
    if args.cluster_cidr:
        try:
            cidr = str(ipaddress.ip_network(args.cluster_cidr, strict=False))
        except ValueError:
            raise UsageError(f"--cluster-cidr {args.cluster_cidr!r} is not a CIDR") from None
    labels = {}
    for raw in args.node_label:
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise UsageError(f"--node-label {raw!r} is not KEY=VALUE")
        labels[key] = value
    family = "IPv6" if ips and ":" in ips[0] else "IPv4"
    return NodeInfo(args.node, tuple(ips), cidr, labels, ip_family=family)


def run(args: argparse.Namespace) -> int:
    try:
        mode = modes.choose(args.mode, "renderer")
    except modes.ModeError as exc:
        raise UsageError(f"--mode {exc}") from None
    try:
        options = modes.options_from(args, mode.name, "renderer")
    except modes.ModeError as exc:
        raise UsageError(str(exc)) from None
    from netemu.agent.proxy.manifests import ManifestError, load
    from netemu.agent.proxy.model import ProxyConfig

    node = _node(args)
    try:
        manifests = load(args.filename)
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    config = ProxyConfig(masquerade_all=args.masquerade_all, random_fully=not args.no_random_fully,
                         localhost_nodeports=not args.no_localhost_nodeports, nfacct=args.nfacct)
    problems = list(manifests.problems)
    try:
        rendered = mode.hook("renderer")(manifests.services, manifests.endpoint_slices, node, config,
                                         problems=problems, **options)
    except ValueError as exc:          # a mode's option with a bad value
        raise UsageError(str(exc)) from None
    if args.compare:
        return _compare(rendered, mode.name, args.compare, problems)
    sys.stdout.write(rendered.text)
    for p in problems:
        print(f"netemu: skipped: {p}", file=sys.stderr)
    print(f"netemu: {len(manifests.services)} Services, {len(manifests.endpoint_slices)} EndpointSlices "
          f"from {len(manifests.files)} files -> {rendered.summary}", file=sys.stderr)
    return 1 if problems else 0


def _compare(rendered: modes.Rendering, mode: str, path: str, problems: list[str]) -> int:
    """--compare: 0 same rules, 1 differences (printed) or skipped objects, 2 bad file."""
    if rendered.compare is None:
        raise UsageError(f"--compare: proxy mode {mode} cannot compare its rules with a dump yet")
    try:
        with open(path, encoding="utf-8") as f:
            theirs = f.read()
        diffs = rendered.compare(theirs)
    except (OSError, ValueError) as exc:      # UnicodeDecodeError and a mode's DumpError are ValueErrors
        raise UsageError(f"{path}: {exc}") from None
    for p in problems:
        print(f"netemu: skipped: {p}", file=sys.stderr)
    for d in diffs:
        print(d)
    print(f"netemu: {len(diffs)} differences between our rules and {path}", file=sys.stderr)
    return 1 if diffs or problems else 0


COMMANDS = [Command("proxy render", "print the rules kube-proxy would write on a node (touches nothing)",
                    add_arguments, run)]
