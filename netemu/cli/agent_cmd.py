"""``netemu agent``: the per-node process (kubelet + kube-proxy), started by `netemu up` inside
each node's network namespace. Flags are validated before anything is touched, so bad input
costs nothing."""

from __future__ import annotations

import argparse
import logging

from netemu.agent import flags
from netemu.agent.proxy import modes
from netemu.cli.main import Command, UsageError

DEFAULT_STATE = flags.DEFAULT_STATE


def _add_arguments(p: argparse.ArgumentParser) -> None:
    flags.add_arguments(p)


def build_config(args: argparse.Namespace):
    """Flags -> AgentConfig, with one clear error for each bad value."""
    try:
        return flags.build_config(args)
    except flags.FlagError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from netemu.agent.castore import without_system_ca_store
    with without_system_ca_store():   # build_config imports the agent, hence aiohttp: 1.8 MB less
        config = build_config(args)
    from netemu.agent.agent import run_agent
    logging.getLogger("netemu").setLevel(min(logging.getLogger().level, logging.INFO))
    print(f"netemu agent for node {args.node} ({args.node_ip}); state in {config.state_dir}", flush=True)
    try:
        return run_agent(config)
    except modes.ModeUnavailable as exc:      # before the agent started anything: one line, exit 2
        raise UsageError(str(exc)) from None


COMMANDS = [Command("agent", "run a node's kubelet and kube-proxy (one process per node)", _add_arguments, run)]


def main(argv: list[str] | None = None) -> int:
    """``python -m netemu.cli.agent_cmd ...``: ``netemu agent ...`` (which loads only this
    command module too: netemu.cli.main.LEAN_COMMANDS)."""
    import sys

    from netemu.cli.main import main as netemu_main
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = [a for a in argv if a in ("-v", "-vv")]
    return netemu_main([*verbose, "agent", *(a for a in argv if a not in verbose)])


if __name__ == "__main__":
    raise SystemExit(main())
