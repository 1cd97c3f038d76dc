"""``netemu exec`` and ``netemu logs``: into a pod (or a node) of the cluster, for users without
kubectl.

- ``exec`` runs a command in the pod's network namespace (netemu/agent/runtime/names.py) or a
  node's (from the state dir's cluster.json) through ``ip netns exec`` as an argv list.
- ``logs`` reads the pods/log subresource, which the API server proxies to the node's kubelet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

from netemu.api import errors, kinds
from netemu.api.meta import Obj
from netemu.cli.access import add_access_arguments, client_for, run_api
from netemu.cli.main import Command, UsageError
from netemu.client import ApiClient
from netemu.client import paths as api_paths


def split_exec_words(pod: str | None, words: list[str], node: str | None) -> tuple[str | None, list[str], list[str]]:
    """(pod, options given after the pod, command) from what argparse left.

    argparse cannot tell ``exec --node N -- cmd`` (the command's first word lands in POD) nor
    ``exec POD -n NS -- cmd`` (the options land in the command) apart: undone here."""
    if node is not None:
        return None, [], ([pod] if pod is not None else []) + words
    if "--" in words:
        cut = words.index("--")
        return pod, words[:cut], words[cut + 1:]
    return pod, [], words


def cluster_nodes(state_dir: str) -> dict[str, Obj]:
    path = Path(state_dir) / "cluster.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("nodes") or {}
    except FileNotFoundError:
        raise UsageError(f"no cluster at {state_dir} ({path} is missing): netemu up first") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON: {exc}") from None


async def stream_logs(client: ApiClient, namespace: str, pod: str, container: str | None,
                      follow: bool, tail: int | None, previous: bool, out) -> None:
    """Copy the pods/log answer (plain text, a stream when following) to ``out`` as it comes."""
    pods = kinds.by_resource("", "v1", "pods")
    obj = await client.get(pods, pod, namespace)
    names = [c["name"] for c in (obj.get("spec") or {}).get("containers") or []]
    if container is None and len(names) > 1:
        raise UsageError(f"a container name must be specified for pod {pod}, choose one of: {names}")
    if container is not None and container not in names:
        raise UsageError(f"container {container} is not valid for pod {pod} (it has: {names})")
    params = {"container": container or names[0], "follow": follow or None, "tailLines": tail,
              "previous": previous or None}
    url = client.server + api_paths.resource_path(pods, namespace, pod, "log") + \
        api_paths.query_string(params)
    import aiohttp
    timeout = aiohttp.ClientTimeout(total=None if follow else client.timeout)
    session = client._get_session()  # noqa: SLF001 - the client reads JSON only
    async with session.get(url, headers={"Accept": "*/*"}, ssl=client._ssl, timeout=timeout) as resp:  # noqa: SLF001
        if resp.status >= 400:
            text = await resp.text()
            from netemu.client.errors import from_status
            raise from_status(resp.status, json.loads(text) if text.startswith("{") else None, text)
        async for chunk in resp.content.iter_any():
            out.write(chunk)
            out.flush()


def _args_exec(p: argparse.ArgumentParser) -> None:
    add_access_arguments(p)
    p.add_argument("-c", "--container", help="container (all of a pod's share its network namespace)")
    p.add_argument("--node", help="run in this node's network namespace instead of a pod's")
    p.add_argument("pod", nargs="?", help="the pod")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")


def _pod_netns(args: argparse.Namespace, pod_name: str) -> str:
    pods = kinds.by_resource("", "v1", "pods")

    async def go() -> Obj:
        async with client_for(args) as client:
            return await client.get(pods, pod_name, args.namespace or "default")
    try:
        pod = asyncio.run(go())
    except errors.NotFound as exc:
        raise UsageError(str(exc)) from None
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    if args.container and args.container not in names:
        raise UsageError(f"container {args.container} is not valid for pod {pod_name} (it has: {names})")
    from netemu.agent.runtime.names import pod_netns_of   # here: the runtime package is not light
    try:
        netns = pod_netns_of(pod)
    except ValueError as exc:
        raise UsageError(f"pod {pod_name}: {exc}") from None
    if not Path("/run/netns", netns).exists():
        phase = (pod.get("status") or {}).get("phase", "Pending")
        raise UsageError(f"pod {pod_name} has no sandbox on this machine yet (phase {phase}, "
                         f"no /run/netns/{netns})")
    return netns


def run_exec(args: argparse.Namespace) -> int:
    pod, extra, command = split_exec_words(args.pod, args.command, args.node)
    if extra:  # options typed after POD: parsed with the same definitions
        more = argparse.ArgumentParser(prog="netemu exec", add_help=False)
        add_access_arguments(more)
        more.add_argument("-c", "--container")
        more.add_argument("--node")
        parsed, unknown = more.parse_known_args(extra)
        if unknown:
            raise UsageError(f"unknown options before --: {' '.join(unknown)}")
        for key, value in vars(parsed).items():
            if value is not None and value != more.get_default(key):
                setattr(args, key, value)
        if args.node is not None:
            raise UsageError("give either POD or --node NODE, not both")
    if not command:
        raise UsageError("exec needs a command after --, e.g. netemu exec POD -- ip addr")
    if args.node is not None:
        nodes = cluster_nodes(args.state_dir)
        if args.node not in nodes:
            raise UsageError(f"no node {args.node!r} in this cluster (nodes: {', '.join(sorted(nodes))})")
        netns = nodes[args.node]["netns"]
    elif pod:
        netns = _pod_netns(args, pod)
    else:
        raise UsageError("exec needs a POD or --node NODE")
    try:
        return subprocess.run(["ip", "netns", "exec", netns, *command], check=False).returncode
    except FileNotFoundError:
        raise UsageError("the ip command (iproute2) is not installed") from None


def _args_logs(p: argparse.ArgumentParser) -> None:
    add_access_arguments(p)
    p.add_argument("pod", help="the pod")
    p.add_argument("-c", "--container", help="container (needed when the pod has several)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--tail", type=int, help="only the last N lines")
    p.add_argument("-p", "--previous", action="store_true", help="the previous instance's log")


def run_logs(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with client_for(args) as client:
            await stream_logs(client, args.namespace or "default", args.pod, args.container,
                              args.follow, args.tail, args.previous, sys.stdout.buffer)
        return 0
    return run_api(go())


COMMANDS = [
    Command("exec", "run a command in a pod's network namespace (POD -- CMD) or a node's "
            "(--node NODE -- CMD)", _args_exec, run_exec),
    Command("logs", "print a container's log (through the API's pods/log)", _args_logs, run_logs),
]
