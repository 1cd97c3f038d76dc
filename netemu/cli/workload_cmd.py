"""``netemu apply/get/delete/exec/logs``: the workload commands, for users without kubectl.

They talk to the cluster's API server with the same kubeconfig kubectl uses (``--kubeconfig``,
``$KUBECONFIG``, or the state dir's), so what they do is what kubectl would do against it:

- ``apply -f`` creates, or on AlreadyExists sends the manifest as a strategic merge patch (what
  ``kubectl apply`` sends, minus the last-applied annotation: a field removed from the manifest is
  left in place, not deleted). Whether the patch changes anything is decided by running the same
  pure patch function the server runs, so "unchanged" costs no write and no resourceVersion bump.
- ``get`` prints the server's own Table (upstream's columns), so it reads like ``kubectl get``.
- ``exec`` runs a command in the pod's network namespace (netemu/agent/runtime/names.py) or a
  node's (from the state dir's cluster.json) through ``ip netns exec`` as an argv list.
- ``logs`` reads the pods/log subresource, which the API server proxies to the node's kubelet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

from netemu.api import errors, kinds, manifests
from netemu.api.kinds import ResourceType
from netemu.api.meta import Obj
from netemu.api.patch import strategic_merge_patch
from netemu.cli.main import Command, UsageError
from netemu.client import ApiClient
from netemu.client import paths as api_paths

DEFAULT_STATE_DIR = os.environ.get("NETEMU_STATE_DIR") or "/var/lib/netemu/default"   # as netemu up
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
# Fields the server owns: a manifest never sets them, so they never make a change.
SERVER_FIELDS = ("resourceVersion", "uid", "generation", "creationTimestamp", "managedFields")


# -- pure helpers ---------------------------------------------------------------------------------

def resolve_kind(word: str) -> ResourceType:
    """A resource from what a user types: kind, plural, singular or short name, any case, with an
    optional group suffix (``deployments.apps``), as kubectl's RESTMapper accepts them."""
    name, _, group = word.lower().partition(".")
    for rt in kinds.RESOURCES:
        if group and rt.group.lower() != group and rt.group.split(".")[0] != group:
            continue
        if name in (rt.kind.lower(), rt.resource, rt.singular or rt.kind.lower(), *rt.short_names):
            return rt
    known = ", ".join(sorted(rt.resource for rt in kinds.RESOURCES))
    raise UsageError(f"the server doesn't have a resource type {word!r} (known: {known})")


def qualified(rt: ResourceType) -> str:
    """``deployment.apps`` / ``service``: the name kubectl prints before ``/NAME``."""
    return f"{rt.kind.lower()}.{rt.group}" if rt.group else rt.kind.lower()


def load_manifests(target: str, stdin_text: str | None = None, recursive: bool = False) -> list[Obj]:
    """Every object of a file, of the manifest files of a directory (sorted; its subdirectories
    too with ``recursive``, kubectl's -R), or of ``-`` (netemu/api/manifests.py reads them).

    All are read and checked before anything is sent, so a bad document applies nothing."""
    try:
        loaded = manifests.load([target], recursive=recursive, stdin=stdin_text)
    except manifests.ManifestError as exc:
        raise UsageError(str(exc)) from None
    if loaded.problems:
        raise UsageError(loaded.problems[0])
    for where, obj in loaded.objects:
        missing = [f for f in ("apiVersion", "kind") if not obj.get(f)]
        if not isinstance(obj.get("metadata"), dict) or not obj["metadata"].get("name"):
            missing.append("metadata.name")
        if missing:
            raise UsageError(f"{where}: object has no {', '.join(missing)}")
    return [obj for _, obj in loaded.objects]


def resource_of(obj: Obj) -> ResourceType:
    rt = kinds.by_kind(obj["apiVersion"], obj["kind"])
    if rt is None:
        raise UsageError(f"no kind {obj['kind']!r} in version {obj['apiVersion']!r} is served "
                         f"(served: {', '.join(sorted({r.kind for r in kinds.RESOURCES}))})")
    return rt


def _comparable(obj: Obj) -> Obj:
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for field in SERVER_FIELDS:
        meta.pop(field, None)
    out["metadata"] = meta
    return out


def apply_patch_for(manifest: Obj) -> Obj:
    """The strategic merge patch ``apply`` sends for a manifest (status is the controllers')."""
    return {k: v for k, v in manifest.items() if k != "status"}


def would_change(current: Obj, manifest: Obj) -> bool:
    """Whether patching ``current`` with ``manifest`` changes it: the server's own patch
    function, run here, so an unchanged object costs no write."""
    merged = strategic_merge_patch(current, apply_patch_for(manifest), manifest["kind"])
    return _comparable(merged) != _comparable(current)


def render_table(table: Obj, *, wide: bool = False, namespace_column: bool = False) -> str:
    """kubectl's plain table: upper-case headers, columns padded to the widest cell plus 3."""
    cols = [(i, c["name"]) for i, c in enumerate(table.get("columnDefinitions") or [])
            if wide or not c.get("priority")]
    header = [name.upper() for _, name in cols]
    rows = []
    for row in table.get("rows") or []:
        cells = ["" if row["cells"][i] is None else str(row["cells"][i]) for i, _ in cols]
        if namespace_column:
            ns = ((row.get("object") or {}).get("metadata") or {}).get("namespace", "")
            cells = [ns] + cells
        rows.append(cells)
    if namespace_column:
        header = ["NAMESPACE"] + header
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header] + rows]
    return "\n".join(lines)


def fallback_table(answer: Obj) -> Obj:
    """A NAME-only Table from a plain object or list, for a server that serves no Table."""
    items = answer.get("items") if "items" in answer else [answer]
    return {"kind": "Table", "columnDefinitions": [{"name": "Name", "priority": 0}],
            "rows": [{"cells": [(o.get("metadata") or {}).get("name", "")], "object": o}
                     for o in items or []]}


def prefixed(table: Obj, kind_name: str) -> Obj:
    """The table with its Name cells as ``kind/name`` (kubectl's form when several kinds print)."""
    index = next((i for i, c in enumerate(table.get("columnDefinitions") or []) if c["name"] == "Name"), None)
    if index is None:
        return table
    rows = [{**r, "cells": [f"{kind_name}/{v}" if i == index else v for i, v in enumerate(r["cells"])]}
            for r in table.get("rows") or []]
    return {**table, "rows": rows}


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


def kubeconfig_path(args: argparse.Namespace) -> str:
    path = args.kubeconfig or (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0] \
        or str(Path(args.state_dir) / "kubeconfig")
    if not Path(path).is_file():
        raise UsageError(f"no kubeconfig at {path}: is a cluster up (netemu up), or give --kubeconfig")
    return path


def cluster_nodes(state_dir: str) -> dict[str, Obj]:
    path = Path(state_dir) / "cluster.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("nodes") or {}
    except FileNotFoundError:
        raise UsageError(f"no cluster at {state_dir} ({path} is missing): netemu up first") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON: {exc}") from None


# -- the API calls --------------------------------------------------------------------------------

def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient.from_kubeconfig(kubeconfig_path(args), user_agent="netemu-cli")


def _namespace_of(rt: ResourceType, obj: Obj, default: str) -> str | None:
    return ((obj.get("metadata") or {}).get("namespace") or default) if rt.namespaced else None


async def apply_object(client: ApiClient, obj: Obj, namespace: str) -> str:
    """Create ``obj``, or patch the existing one: "created", "configured" or "unchanged"."""
    rt = resource_of(obj)
    ns = _namespace_of(rt, obj, namespace)
    name = obj["metadata"]["name"]
    try:
        await client.create(rt, apply_patch_for(obj), ns)
        return "created"
    except errors.AlreadyExists:
        pass
    current = await client.get(rt, name, ns)
    if not would_change(current, obj):
        return "unchanged"
    await client.patch(rt, name, apply_patch_for(obj), ns, patch_type="strategic")
    return "configured"


async def _raw_get(client: ApiClient, path: str, params: dict[str, object], accept: str) -> Any:
    """A GET with our own Accept header (the Table form), through the client's session."""
    session = client._get_session()  # noqa: SLF001 - the client has no per-call Accept yet
    url = client.server + path + api_paths.query_string(params)
    async with session.get(url, headers={"Accept": accept}, ssl=client._ssl) as resp:  # noqa: SLF001
        text = await resp.text()
        decoded = json.loads(text) if text.startswith("{") else None
        if resp.status >= 400:
            from netemu.client.errors import from_status
            raise from_status(resp.status, decoded, text)
        return decoded


def _dump(doc: Obj, output: str) -> str:
    return json.dumps(doc, indent=4) if output == "json" else yaml.safe_dump(doc, sort_keys=False).rstrip("\n")


async def _items(client: ApiClient, rt: ResourceType, name: str | None, ns: str | None,
                 selector: str | None) -> list[Obj]:
    if name:
        return [await client.get(rt, name, ns)]
    return (await client.list_all(rt, ns, label_selector=selector)).items


async def get_many(client: ApiClient, rts: list[ResourceType], name: str | None, namespace: str | None,
                   output: str, selector: str | None = None) -> tuple[str, int]:
    """``get deploy,svc``: one table per kind with kind/name names (as kubectl), or one List."""
    if len(rts) == 1:
        return await get_objects(client, rts[0], name, namespace, output, selector)
    if output in ("yaml", "json"):
        items = [o for rt in rts for o in await _items(client, rt, name, namespace if rt.namespaced else None,
                                                         selector)]
        return _dump({"apiVersion": "v1", "kind": "List", "items": items,
                      "metadata": {"resourceVersion": ""}}, output), len(items)
    parts, total = [], 0
    for rt in rts:
        text, count = await get_objects(client, rt, name, namespace, output, selector, prefix_names=True)
        if count:
            parts.append(text)
            total += count
    return ("\n" if output != "name" else "").join(p + "\n" for p in parts).rstrip("\n"), total


async def get_objects(client: ApiClient, rt: ResourceType, name: str | None, namespace: str | None,
                      output: str, selector: str | None = None, *,
                      prefix_names: bool = False) -> tuple[str, int]:
    """What ``get`` prints for one kind and its item count."""
    ns = namespace if rt.namespaced else None
    if output in ("yaml", "json"):
        if name:
            return _dump(await client.get(rt, name, ns), output), 1
        items = await _items(client, rt, None, ns, selector)
        return _dump({"apiVersion": "v1", "kind": "List", "items": items,
                      "metadata": {"resourceVersion": ""}}, output), len(items)
    if output == "name":
        items = await _items(client, rt, name, ns, selector)
        return "\n".join(f"{qualified(rt)}/{o['metadata']['name']}" for o in items), len(items)
    path = api_paths.resource_path(rt, ns, name)
    table = await _raw_get(client, path, {"labelSelector": selector}, TABLE_ACCEPT)
    if not table or table.get("kind") != "Table":
        table = fallback_table(table or {})
    count = len(table.get("rows") or [])
    if prefix_names:
        table = prefixed(table, qualified(rt))
    return render_table(table, wide=output == "wide",
                        namespace_column=rt.namespaced and namespace is None and not name), count


async def delete_object(client: ApiClient, rt: ResourceType, name: str, namespace: str | None,
                        grace: int | None) -> None:
    await client.delete(rt, name, namespace if rt.namespaced else None,
                        propagation_policy="Background", grace_period_seconds=grace)


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


# -- the commands ---------------------------------------------------------------------------------

def _common(p: argparse.ArgumentParser, namespace: bool = True) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, else STATE_DIR/kubeconfig)")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help=f"the cluster's state dir (default {DEFAULT_STATE_DIR})")
    if namespace:
        p.add_argument("-n", "--namespace", help="namespace (default: default)")


def _run_async(coro) -> Any:
    """Run one command's coroutine; an API error is one clear line, exit 1, like kubectl's."""
    try:
        return asyncio.run(coro)
    except errors.StatusError as exc:
        print(f"Error from server ({type(exc).reason}): {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # aiohttp's connection errors are OSErrors
        print(f"netemu: cannot reach the API server: {exc}", file=sys.stderr)
        return 1


def _args_apply(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("-f", "--filename", action="append", required=True,
                   help="manifest file, directory of manifests, or - for stdin (repeatable)")
    p.add_argument("-R", "--recursive", action="store_true",
                   help="with -f DIR: its subdirectories' manifests too")


def run_apply(args: argparse.Namespace) -> int:
    objects = [o for target in args.filename for o in load_manifests(target, recursive=args.recursive)]
    for obj in objects:
        resource_of(obj)  # every kind checked before the first write

    async def go() -> int:
        async with _client(args) as client:
            for obj in objects:
                result = await apply_object(client, obj, args.namespace or "default")
                print(f"{qualified(resource_of(obj))}/{obj['metadata']['name']} {result}")
        return 0
    return _run_async(go())


def _args_get(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("kind", help="kind, plural or short name (pods, po, deploy, svc, nodes, ...); "
                   "several with commas (deploy,svc)")
    p.add_argument("name", nargs="?", help="one object's name (default: all)")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    p.add_argument("-o", "--output", choices=("wide", "yaml", "json", "name"), help="output format")
    p.add_argument("-l", "--selector", help="label selector")


def run_get(args: argparse.Namespace) -> int:
    rts = [resolve_kind(word) for word in args.kind.split(",") if word]
    if not rts:
        raise UsageError("get needs a KIND (pods, svc, deploy, nodes, ...)")
    if args.all_namespaces and args.name:
        raise UsageError("a resource cannot be retrieved by name across all namespaces")
    ns = None if args.all_namespaces else (args.namespace or "default")

    async def go() -> int:
        async with _client(args) as client:
            text, count = await get_many(client, rts, args.name, ns, args.output or "", args.selector)
        if count == 0 and not args.output:
            where = f" in {ns} namespace" if any(rt.namespaced for rt in rts) and ns else ""
            print(f"No resources found{where}.", file=sys.stderr)
        else:
            print(text)
        return 0
    return _run_async(go())


def _args_delete(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("kind", nargs="?", help="kind, plural or short name")
    p.add_argument("names", nargs="*", help="names of the objects")
    p.add_argument("-f", "--filename", action="append", help="delete what these manifests name")
    p.add_argument("-R", "--recursive", action="store_true",
                   help="with -f DIR: its subdirectories' manifests too")
    p.add_argument("--grace-period", type=int, help="seconds before a pod is killed (0: now)")
    p.add_argument("--ignore-not-found", action="store_true", help="a missing object is no error")


def _delete_targets(args: argparse.Namespace) -> list[tuple[ResourceType, str, str | None]]:
    if args.filename:
        if args.kind:
            raise UsageError("give either -f FILE or KIND NAME..., not both")
        objs = [o for t in args.filename for o in load_manifests(t, recursive=args.recursive)]
        return [(rt, o["metadata"]["name"], _namespace_of(rt, o, args.namespace or "default"))
                for o in objs for rt in [resource_of(o)]]
    if not args.kind or not args.names:
        raise UsageError("delete needs KIND NAME... or -f FILE")
    rt = resolve_kind(args.kind)
    return [(rt, name, args.namespace or "default") for name in args.names]


def run_delete(args: argparse.Namespace) -> int:
    targets = _delete_targets(args)

    async def go() -> int:
        rc = 0
        async with _client(args) as client:
            for rt, name, ns in targets:
                try:
                    await delete_object(client, rt, name, ns, args.grace_period)
                    print(f'{qualified(rt)} "{name}" deleted')
                except errors.NotFound as exc:
                    if not args.ignore_not_found:
                        print(f"Error from server (NotFound): {exc}", file=sys.stderr)
                        rc = 1
        return rc
    return _run_async(go())


def _args_exec(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("-c", "--container", help="container (all of a pod's share its network namespace)")
    p.add_argument("--node", help="run in this node's network namespace instead of a pod's")
    p.add_argument("pod", nargs="?", help="the pod")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")


def _pod_netns(args: argparse.Namespace, pod_name: str) -> str:
    pods = kinds.by_resource("", "v1", "pods")

    async def go() -> Obj:
        async with _client(args) as client:
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
        _common(more)
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
    _common(p)
    p.add_argument("pod", help="the pod")
    p.add_argument("-c", "--container", help="container (needed when the pod has several)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--tail", type=int, help="only the last N lines")
    p.add_argument("-p", "--previous", action="store_true", help="the previous instance's log")


def run_logs(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with _client(args) as client:
            await stream_logs(client, args.namespace or "default", args.pod, args.container,
                              args.follow, args.tail, args.previous, sys.stdout.buffer)
        return 0
    return _run_async(go())


COMMANDS = [
    Command("apply", "create or update objects from manifests (-f FILE|DIR|-)", _args_apply, run_apply),
    Command("get", "list objects of a kind, or show one (table, wide, yaml, json, name)", _args_get, run_get),
    Command("delete", "delete objects by KIND NAME... or by manifest (-f)", _args_delete, run_delete),
    Command("exec", "run a command in a pod's network namespace (POD -- CMD) or a node's "
            "(--node NODE -- CMD)", _args_exec, run_exec),
    Command("logs", "print a container's log (through the API's pods/log)", _args_logs, run_logs),
]
