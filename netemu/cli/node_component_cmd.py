"""``netemu node kill|restart|stop|start|components``: a node's processes, one at a time, for experiments.

    netemu node kill worker kubelet        # SIGKILL, as `kill -9`: the node supervisor restarts
                                           # it after its back-off, like systemd's Restart=always
    netemu node restart worker kube-proxy  # `systemctl restart`: SIGTERM, a new process at once
    netemu node stop worker kubelet        # `systemctl stop`: down until `netemu node start`
    netemu node components [worker]        # pids, restart counts, last exit of each

Each command talks to the node's supervisor (netemu/agent/nodesup.py) on its Unix socket,
which cluster.json names; nothing is signalled before the node and the component are checked.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from netemu.cli.cluster_cmd import add_state_dir, no_cluster, running_supervisor, state_dir_of
from netemu.cli.main import Command, UsageError

COMPONENTS = ("kubelet", "kube-proxy", "runtime")


def _node_socket(args) -> tuple[dict, str]:
    state = state_dir_of(args)
    doc, pid = running_supervisor(state)
    if pid is None:
        raise UsageError(no_cluster(state))
    nodes = doc.get("nodes") or {}
    if args.node not in nodes:
        raise UsageError(f"no node {args.node!r} (nodes: {', '.join(nodes)})")
    control = nodes[args.node].get("control")
    if not control:
        raise UsageError(f"node {args.node!r} has no node supervisor (the control plane's host, or "
                         f"a cluster of fake agents)")
    return doc, control


def _ask(control: str, request: dict) -> dict:
    from netemu.agent.nodesup import control_request
    try:
        return control_request(control, request)
    except OSError as exc:
        raise UsageError(f"the node supervisor does not answer on {control}: {exc}") from None


def run_kill_or_restart(args: argparse.Namespace) -> int:
    _doc, control = _node_socket(args)
    answer = _ask(control, {"op": args.action, "component": args.component})
    if "error" in answer:
        print(f"netemu node {args.action}: error: {answer['error']}", file=sys.stderr)
        return 1
    if args.action == "kill":
        print(f"{args.node}: {args.component} (pid {answer['killed']}) killed; its node supervisor restarts it")
    elif args.action == "stop":
        print(f"{args.node}: {args.component} stopped" + (f" (pid {answer['stopped']})" if answer["stopped"] else "")
              + f"; `netemu node start {args.node} {args.component}` starts it again")
    elif args.action == "start":
        print(f"{args.node}: {args.component} running (pid {answer['pid']})")
    else:
        print(f"{args.node}: {args.component} restarted (pid {answer['pid']})")
    return 0


def component_rows(status: dict, now: float) -> list[list[str]]:
    """Pure: one table row per component of a node supervisor's status answer."""
    rows = []
    for name, c in (status.get("components") or {}).items():
        up = f"{now - c['started_at']:.0f}s" if c.get("pid") and c.get("started_at") else "-"
        state = c.get("state", "?")
        if c.get("next_start_in") is not None:
            state += f" (starts in {c['next_start_in']:.1f}s)"
        rows.append([status.get("node", ""), name, str(c.get("pid") or "-"), state, up,
                     str(c.get("restarts", 0)), c.get("last_exit") or ""])
    return rows


def run_components(args: argparse.Namespace) -> int:
    state = state_dir_of(args)
    doc, pid = running_supervisor(state)
    if pid is None:
        raise UsageError(no_cluster(state))
    nodes = doc.get("nodes") or {}
    names = [args.node] if args.node else [n for n, v in nodes.items() if v.get("control")]
    if args.node and args.node not in nodes:
        raise UsageError(f"no node {args.node!r} (nodes: {', '.join(nodes)})")
    statuses = [_ask(nodes[n]["control"], {"op": "status"}) for n in names if nodes[n].get("control")]
    if args.json:
        print(json.dumps({s.get("node"): s for s in statuses}, indent=2))
        return 0
    rows = [["NODE", "COMPONENT", "PID", "STATE", "UP", "RESTARTS", "LAST EXIT"]]
    now = time.time()
    for status in statuses:
        rows += component_rows(status, now)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


def _add_action(action: str):
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("node", help="the node")
        p.add_argument("component", choices=COMPONENTS, help="which of the node's processes")
        add_state_dir(p)
        p.set_defaults(action=action)
    return add


def _add_components(p: argparse.ArgumentParser) -> None:
    p.add_argument("node", nargs="?", help="one node (default: every node)")
    p.add_argument("--json", action="store_true", help="the node supervisors' answers as JSON")
    add_state_dir(p)


COMMANDS = [
    Command("node kill", "SIGKILL one of a node's processes (its node supervisor restarts it, with back-off)",
            _add_action("kill"), run_kill_or_restart),
    Command("node restart", "restart one of a node's processes now (systemctl restart)",
            _add_action("restart"), run_kill_or_restart),
    Command("node stop", "stop one of a node's processes until `netemu node start` (systemctl stop)",
            _add_action("stop"), run_kill_or_restart),
    Command("node start", "start a stopped process of a node again (systemctl start)",
            _add_action("start"), run_kill_or_restart),
    Command("node components", "a node's processes: pids, state, restarts, last exit",
            _add_components, run_components),
]
