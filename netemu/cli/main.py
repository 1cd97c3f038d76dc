"""The `netemu` command: one entry point, commands contributed by small modules.

Each command module exposes ``COMMANDS``: a list of ``Command`` entries whose ``path`` is the
words a user types ("proxy render"). Commands of one group (``proxy``) may live in different
modules, so the parts of the tool stay in the layer they belong to and no module has to know
every command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass
from typing import Callable

# Modules that contribute commands; a module missing here is simply not offered.
COMMAND_MODULES = (
    "netemu.cli.apiserver_cmd",
    "netemu.cli.proxy_cmd",
    "netemu.cli.proxy_run_cmd",
    "netemu.cli.trace_cmd",
    "netemu.cli.proxy_cleanup_cmd",
    "netemu.cli.proxy_demo_cmd",
    "netemu.cli.features_cmd",
    "netemu.cli.explain_cmd",
    "netemu.cli.fake_nodes_cmd",
    "netemu.cli.agent_cmd",
    "netemu.cli.cluster_cmd",
    "netemu.cli.node_component_cmd",
    "netemu.cli.node_cmd",
    "netemu.cli.apply_get_delete_cmd",
    "netemu.cli.exec_logs_cmd",
    "netemu.cli.demo_cmd",
    "netemu.cli.traffic_cmd",
    "netemu.cli.capture_cmd",
    "netemu.cli.probe_cmd",
    "netemu.cli.experiment_cmd",
)


@dataclass(frozen=True)
class Command:
    """One command: ``path`` as typed, its arguments, and the function that runs it.

    ``run(args)`` returns the process exit code.
    """

    path: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad input from the user: printed as one clear line, exit code 2, no traceback."""


# Commands run once per node (100 nodes: 100 processes) load only their own module: every
# other command module costs the process memory it never uses.
LEAN_COMMANDS = {"agent": "netemu.cli.agent_cmd"}


def _load_commands(argv: list[str] | None = None) -> list[Command]:
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    lean = LEAN_COMMANDS.get(words[0]) if words else None
    commands: list[Command] = []
    for name in (lean,) if lean else COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet: not offered
                continue
            raise
        commands.extend(getattr(module, "COMMANDS", []))
    return commands


def build_parser(commands: list[Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netemu", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    }
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for cmd in sorted(commands, key=lambda c: c.path):
        words = tuple(cmd.path.split())
        for depth in range(1, len(words)):
            prefix = words[:depth]
            if prefix not in groups:
                sub = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{' '.join(prefix)} commands")
                parsers[prefix] = sub
                groups[prefix] = sub.add_subparsers(dest="_".join(prefix), metavar="COMMAND", required=True)
        leaf = groups[words[:-1]].add_parser(words[-1], help=cmd.help, description=cmd.help)
        cmd.add_arguments(leaf)
        leaf.set_defaults(_run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(_load_commands(argv))
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        print(f"netemu: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
