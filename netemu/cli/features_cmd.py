"""`netemu features` and `netemu doctor`: what this kernel has, and what needs the lab VM.

Why a command: a user on a trimmed kernel should learn before `netemu up` that IPVS mode, the
OVS switch or a delayed link cannot work here, and where they can (docs/labvm.md), instead of
meeting an obscure netlink error or, for TCLink, a delay that is printed but never applied.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from netemu import features
from netemu.agent.proxy import modes as proxy_modes
from netemu.cli.main import Command, UsageError


def parse_link_options(text: str | None) -> dict[str, str]:
    """'delay=5ms,loss=1' -> {'delay': '5ms', 'loss': '1'} (the TCLink parameter names)."""
    known = features.NETEM_PARAMS + ("bw",)
    options: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise UsageError(f"--link: expected NAME=VALUE, got {part.strip()!r}")
        if key not in known:
            raise UsageError(f"--link: unknown option {key!r} (one of {', '.join(known)})")
        options[key] = value.strip()
    return options


def _mark(available: bool | None) -> str:
    return {True: "yes", False: "NO", None: "?"}[available]


def _add_features_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--no-probe", action="store_true",
                        help="only read kernel config and /sys/module (no scratch netns, even as root)")


def _run_features(args: argparse.Namespace) -> int:
    verdicts = features.detect(probe=False if args.no_probe else None)
    tools = features.detect_tools()
    if args.json:
        print(json.dumps({"kernel": os.uname().release, "in_labvm": os.environ.get("NETEMU_IN_LABVM") == "1",
                          "features": {n: {"available": v.available, "evidence": v.evidence}
                                       for n, v in verdicts.items()},
                          "tools": tools}, indent=2))
        return 0
    print(f"kernel {os.uname().release}")
    width = max(len(n) for n in [*verdicts, *tools])
    for name, verdict in verdicts.items():
        purpose = features.FEATURES[name].purpose
        print(f"  {name:<{width}}  {_mark(verdict.available):<3}  {purpose}: {verdict.evidence}")
    print("tools")
    for tool, where in tools.items():
        print(f"  {tool:<{width}}  {where or 'NOT FOUND'}")
    return 0


def _add_doctor_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--proxy-mode", choices=proxy_modes.names(),
                        help="check one proxy mode (default: every mode, and report each)")
    parser.add_argument("--switch", choices=features.SWITCHES, help="Mininet switch you intend to use")
    parser.add_argument("--link", metavar="OPTS", help="TCLink options, e.g. delay=5ms,loss=1,bw=10")
    parser.add_argument("--no-probe", action="store_true", help="do not probe in a scratch netns")


def _run_doctor(args: argparse.Namespace) -> int:
    """Exit 1 when something asked for (or pods, or the default proxy mode) needs the lab VM.

    Without --proxy-mode every mode is reported, but only the default mode decides the exit
    code: a kernel without ip_vs is a fine place to run the default iptables mode.
    """
    link = parse_link_options(args.link)
    modes = [args.proxy_mode] if args.proxy_mode else list(proxy_modes.names())
    decisive = args.proxy_mode or proxy_modes.DEFAULT
    verdicts = features.detect(probe=False if args.no_probe else None)
    fatal = False
    checks = [(f"proxy mode {m}", features.wants_for(proxy_mode=m), m == decisive) for m in modes]
    if args.switch:
        checks.append((f"switch {args.switch}", features.wants_for(switch=args.switch), True))
    if link:
        checks.append((f"link {args.link}", features.wants_for(link=link), True))
    checks.append(("pods", ["pods"], True))
    for label, wants, counts in checks:
        found = features.problems(verdicts, wants)
        status = "NEEDS THE LAB VM" if any(p.fatal for p in found) else ("unverified" if found else "ok")
        print(f"{label}: {status}")
        for problem in found:
            print(f"  {'error' if problem.fatal else 'warning'}: {problem.message}")
        fatal = fatal or (counts and any(p.fatal for p in found))
    if fatal and os.environ.get("NETEMU_IN_LABVM") == "1":
        print("note: this is the lab VM already; its kernel lacks the feature", file=sys.stderr)
    return 1 if fatal else 0


COMMANDS = [
    Command("features", "list the kernel features netemu uses and whether this kernel has them",
            _add_features_args, _run_features),
    Command("doctor", "check proxy modes, switch and link options against this kernel; "
            "say which need the lab VM", _add_doctor_args, _run_doctor),
]
