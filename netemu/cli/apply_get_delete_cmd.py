"""``netemu apply``, ``netemu get`` and ``netemu delete``: objects in and out of the cluster, for
users without kubectl (``netemu exec`` and ``logs`` are in exec_logs_cmd.py).

They talk to the cluster's API server with the same kubeconfig kubectl uses (``--kubeconfig``,
``$KUBECONFIG``, or the state dir's), so what they do is what kubectl would do against it:

- ``apply -f`` creates, or on AlreadyExists sends the manifest as a strategic merge patch (what
  ``kubectl apply`` sends, minus the last-applied annotation: a field removed from the manifest is
  left in place, not deleted). Whether the patch changes anything is decided by running the same
  pure patch function the server runs, so "unchanged" costs no write and no resourceVersion bump.
- ``get`` prints the server's own Table (upstream's columns), so it reads like ``kubectl get``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from netemu.api import errors, kinds, manifests
from netemu.api.kinds import ResourceType
from netemu.api.meta import Obj
from netemu.api.patch import strategic_merge_patch
from netemu.cli.access import add_access_arguments, client_for, run_api
from netemu.cli.main import Command, UsageError
from netemu.client import ApiClient
from netemu.client import paths as api_paths

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


# -- the API calls --------------------------------------------------------------------------------

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


# -- the commands ---------------------------------------------------------------------------------

def _args_apply(p: argparse.ArgumentParser) -> None:
    add_access_arguments(p)
    p.add_argument("-f", "--filename", action="append", required=True,
                   help="manifest file, directory of manifests, or - for stdin (repeatable)")
    p.add_argument("-R", "--recursive", action="store_true",
                   help="with -f DIR: its subdirectories' manifests too")


def run_apply(args: argparse.Namespace) -> int:
    objects = [o for target in args.filename for o in load_manifests(target, recursive=args.recursive)]
    for obj in objects:
        resource_of(obj)  # every kind checked before the first write

    async def go() -> int:
        async with client_for(args) as client:
            for obj in objects:
                result = await apply_object(client, obj, args.namespace or "default")
                print(f"{qualified(resource_of(obj))}/{obj['metadata']['name']} {result}")
        return 0
    return run_api(go())


def _args_get(p: argparse.ArgumentParser) -> None:
    add_access_arguments(p)
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
        async with client_for(args) as client:
            text, count = await get_many(client, rts, args.name, ns, args.output or "", args.selector)
        if count == 0 and not args.output:
            where = f" in {ns} namespace" if any(rt.namespaced for rt in rts) and ns else ""
            print(f"No resources found{where}.", file=sys.stderr)
        else:
            print(text)
        return 0
    return run_api(go())


def _args_delete(p: argparse.ArgumentParser) -> None:
    add_access_arguments(p)
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
        async with client_for(args) as client:
            for rt, name, ns in targets:
                try:
                    await delete_object(client, rt, name, ns, args.grace_period)
                    print(f'{qualified(rt)} "{name}" deleted')
                except errors.NotFound as exc:
                    if not args.ignore_not_found:
                        print(f"Error from server (NotFound): {exc}", file=sys.stderr)
                        rc = 1
        return rc
    return run_api(go())


COMMANDS = [
    Command("apply", "create or update objects from manifests (-f FILE|DIR|-)", _args_apply, run_apply),
    Command("get", "list objects of a kind, or show one (table, wide, yaml, json, name)", _args_get, run_get),
    Command("delete", "delete objects by KIND NAME... or by manifest (-f)", _args_delete, run_delete),
]
