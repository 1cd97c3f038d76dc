"""What each timeline event does to the running cluster (the effectful side of eventspec.py).

One async function per event kind, ``ACTIONS[kind](ctx, params) -> details``; the details (pods
deleted, links touched, Services made) go into events.json. Random choices (which pods to
delete) use the run's seeded ``ctx.rng`` over a sorted list, so a seed repeats them. What an
event changes that outlives the run (a cut link, a shaped link, a stopped agent, a cordoned node)
is noted in ``ctx.undo`` and put back by ``restore`` at the end, also on failure.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from netemu.api import kinds
from netemu.experiments.agentctl import set_component
from netemu.experiments.cluster import EXPERIMENT_LABEL, Handle


@dataclass
class Undo:
    links_down: set[str] = field(default_factory=set)
    shaped: set[str] = field(default_factory=set)
    agents_stopped: set[str] = field(default_factory=set)
    cordoned: set[str] = field(default_factory=set)


@dataclass
class Context:
    client: Any
    handle: Handle
    experiment: str
    rng: random.Random
    undo: Undo = field(default_factory=Undo)


def _rt(kind: str):
    return kinds.by_kind_name(kind)


async def scale(ctx: Context, p: dict) -> dict:
    await ctx.client.patch(_rt("Deployment"), p["deployment"], {"spec": {"replicas": p["replicas"]}}, p["namespace"])
    return {"replicas": p["replicas"]}


async def delete_pod(ctx: Context, p: dict) -> dict:
    pods_rt = _rt("Pod")
    if p["name"]:
        names = [p["name"]]
    else:
        field_selector = f"spec.nodeName={p['node']}" if p["node"] else None
        pods = (await ctx.client.list(pods_rt, p["namespace"], label_selector=p["selector"],
                                      field_selector=field_selector)).items
        live = sorted(x["metadata"]["name"] for x in pods if not x["metadata"].get("deletionTimestamp"))
        names = ctx.rng.sample(live, min(p["count"], len(live)))
    for name in names:
        await ctx.client.delete(pods_rt, name, p["namespace"], grace_period_seconds=p["grace_period"])
    return {"deleted": names}


async def rollout(ctx: Context, p: dict) -> dict:
    rt = _rt("Deployment")
    dep = await ctx.client.get(rt, p["deployment"], p["namespace"])
    containers = dep["spec"]["template"]["spec"]["containers"]
    first = {"name": containers[0]["name"]}
    if p["image"]:
        first["image"] = p["image"]
    if p["args"] is not None:
        first["args"] = p["args"]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}},
                                   "spec": {"containers": [first]}}}}
    await ctx.client.patch(rt, p["deployment"], patch, p["namespace"], patch_type="strategic")
    return {"restartedAt": stamp, **{k: p[k] for k in ("image", "args") if p[k] is not None}}


async def link(ctx: Context, p: dict) -> dict:
    from netemu.emulator import shaping
    from netemu.emulator.supervisor import control_request

    node = p["node"]
    if p["state"]:
        answer = await asyncio.to_thread(control_request, str(ctx.handle.state_dir),
                                         {"op": "link", "node": node, "status": p["state"]})
        if "error" in answer:
            raise RuntimeError(answer["error"])
        (ctx.undo.links_down.add if p["state"] == "down" else ctx.undo.links_down.discard)(node)
        return {"links": answer.get("links", [])}
    info = ctx.handle.doc()["nodes"][node]
    spec = shaping.Shape() if p["reset"] else shaping.Shape(p["bw"], p["delay"], p["jitter"], p["loss"])
    devs = await asyncio.to_thread(shaping.shape, info["netns"], info["ip"], spec)
    (ctx.undo.shaped.discard if spec.empty else ctx.undo.shaped.add)(node)
    return {"interfaces": devs}


async def agent(ctx: Context, p: dict) -> dict:
    answer = await set_component(str(ctx.handle.state_dir), p["node"], p["action"], p.get("component", "agent"))
    (ctx.undo.agents_stopped.discard if p["action"] == "start" else ctx.undo.agents_stopped.add)(p["node"])
    return {k: v for k, v in answer.items() if k != "ok"}


async def drain(ctx: Context, p: dict) -> dict:
    """Cordon, then evict every pod on the node but DaemonSet pods (kubectl drain
    --ignore-daemonsets --delete-emptydir-data); an eviction the API refuses is a delete."""
    from netemu.api import errors
    from netemu.client import paths

    await ctx.client.patch(_rt("Node"), p["node"], {"spec": {"unschedulable": True}})
    ctx.undo.cordoned.add(p["node"])
    pods_rt = _rt("Pod")
    pods = (await ctx.client.list(pods_rt, None, field_selector=f"spec.nodeName={p['node']}")).items
    evicted = []
    for pod in sorted(pods, key=lambda x: x["metadata"]["name"]):
        meta = pod["metadata"]
        if any(r.get("kind") == "DaemonSet" for r in meta.get("ownerReferences") or []) or meta.get("deletionTimestamp"):
            continue
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": meta["name"],
                                                                             "namespace": meta["namespace"]}}
        if p["grace_period"] is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": p["grace_period"]}
        try:
            await ctx.client.request("POST", paths.resource_path(pods_rt, meta["namespace"], meta["name"], "eviction"),
                                     body=body)
        except (errors.NotFound, errors.MethodNotAllowed):
            await ctx.client.delete(pods_rt, meta["name"], meta["namespace"], grace_period_seconds=p["grace_period"])
        evicted.append(meta["name"])
    return {"evicted": evicted}


async def uncordon(ctx: Context, p: dict) -> dict:
    await ctx.client.patch(_rt("Node"), p["node"], {"spec": {"unschedulable": None}})
    ctx.undo.cordoned.discard(p["node"])
    return {}


async def service(ctx: Context, p: dict) -> dict:
    spec: dict[str, Any] = {}
    if p["session_affinity"] is not None:
        spec["sessionAffinity"] = p["session_affinity"]
        if p["session_affinity"] == "None":
            spec["sessionAffinityConfig"] = None
    if p["affinity_timeout"] is not None:
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": p["affinity_timeout"]}}
    if p["external_traffic_policy"] is not None:
        spec["externalTrafficPolicy"] = p["external_traffic_policy"]
    if p["internal_traffic_policy"] is not None:
        spec["internalTrafficPolicy"] = p["internal_traffic_policy"]
    await ctx.client.patch(_rt("Service"), p["name"], {"spec": spec}, p["namespace"])
    return {"spec": spec}


async def dummy_services(ctx: Context, p: dict) -> dict:
    """``count`` Services named PREFIX-N (N after those already there), labelled for cleanup,
    created 16 at a time."""
    rt = _rt("Service")
    existing = {s["metadata"]["name"] for s in (await ctx.client.list(
        rt, p["namespace"], label_selector=f"{EXPERIMENT_LABEL}={ctx.experiment}")).items}
    start = sum(1 for n in existing if n.startswith(p["prefix"] + "-"))
    selector = dict(part.split("=", 1) if "=" in part else (part, "") for part in (p["selector"] or "").split(",")
                    if part)
    names = [f"{p['prefix']}-{start + i}" for i in range(p["count"])]
    gate = asyncio.Semaphore(16)

    async def make(name: str) -> None:
        port = {"port": p["port"], "protocol": "TCP", "targetPort": p["target_port"] or p["port"]}
        obj = {"metadata": {"name": name, "labels": {EXPERIMENT_LABEL: ctx.experiment}},
               "spec": {"ports": [port], **({"selector": selector} if selector else {})}}
        async with gate:
            await ctx.client.create(rt, obj, p["namespace"])
    await asyncio.gather(*(make(n) for n in names))
    return {"created": len(names), "first": names[0], "last": names[-1]}


ACTIONS: dict[str, Callable[[Context, dict], Awaitable[dict]]] = {
    "scale": scale, "delete_pod": delete_pod, "rollout": rollout, "link": link, "agent": agent,
    "drain": drain, "uncordon": uncordon, "service": service, "dummy_services": dummy_services,
}


async def restore(ctx: Context) -> list[str]:
    """Put back what the events changed (links up, shaping off, agents started, nodes
    uncordoned); returns what could not be, each with why."""
    failed = []
    steps = [(link, {"node": n, "state": "up", "reset": False}) for n in sorted(ctx.undo.links_down)]
    steps += [(link, {"node": n, "state": None, "reset": True, "bw": None, "delay": None, "jitter": None,
                      "loss": None}) for n in sorted(ctx.undo.shaped)]
    steps += [(agent, {"node": n, "action": "start"}) for n in sorted(ctx.undo.agents_stopped)]
    steps += [(uncordon, {"node": n}) for n in sorted(ctx.undo.cordoned)]
    for fn, params in steps:
        try:
            await fn(ctx, params)
        except Exception as exc:  # restoring is best effort: say what is left as it was
            failed.append(f"{fn.__name__} {params['node']}: {exc}")
    return failed
