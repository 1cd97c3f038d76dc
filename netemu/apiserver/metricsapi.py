"""metrics.k8s.io/v1beta1 (``kubectl top``): NodeMetrics and PodMetrics, as metrics-server
serves them, from the kubelets' ``/metrics/resource``.

Like metrics-server, the CPU usage is a rate between two scrapes of a node's kubelet (the
cumulative ``*_cpu_usage_seconds_total`` counters), memory the working set of the newer one.
metrics-server scrapes every node every 15 s in the background; here a request scrapes the
nodes it needs, using the previous scrape of a node when it is between ``MIN_WINDOW`` and
``MAX_WINDOW`` old, else scraping twice ``MIN_WINDOW`` apart (the first ``kubectl top`` takes
a second longer). ``parse`` and the object builders are pure. A node whose kubelet does not
answer has no NodeMetrics (kubectl top prints ``<unknown>``), as with metrics-server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import aiohttp
from aiohttp import web

from netemu.api import errors, kinds, meta
from netemu.api.meta import Obj
from netemu.apiserver import listing, tables
from netemu.apiserver.handlers import json_response
from netemu.apiserver.podlog import KUBELET_PORT, node_address
from netemu.apiserver.routing import Target

log = logging.getLogger(__name__)
MIN_WINDOW = 1.0
MAX_WINDOW = 60.0
GROUP_VERSION = "metrics.k8s.io/v1beta1"
NODES = kinds.by_resource("", "v1", "nodes")
PODS = kinds.by_resource("", "v1", "pods")
_SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})?\s+(\S+)(?:\s+(\d+))?$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Fetch = Callable[[str], Awaitable[str]]


@dataclass
class Scrape:
    """One node's /metrics/resource: cumulative CPU seconds and memory bytes, at ``at`` (s)."""

    at: float
    node: tuple[float, float] | None = None                       # (cpu seconds, memory bytes)
    containers: dict[tuple[str, str, str], tuple[float, float]] = field(default_factory=dict)


def parse(text: str, fetched_at: float) -> Scrape:
    """The samples metrics-server reads; malformed lines are skipped."""
    out = Scrape(fetched_at)
    node: dict[str, float] = {}
    parts: dict[tuple[str, str, str], dict[str, float]] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line.strip())
        if not m or line.startswith("#"):
            continue
        name, labels, value, stamp = m.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        if stamp:
            out.at = int(stamp) / 1000
        if name.startswith("node_"):
            node[name] = number
        elif name.startswith("container_"):
            lab = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(labels or "")}
            key = (lab.get("namespace", ""), lab.get("pod", ""), lab.get("container", ""))
            parts.setdefault(key, {})[name] = number
    if "node_cpu_usage_seconds_total" in node and "node_memory_working_set_bytes" in node:
        out.node = (node["node_cpu_usage_seconds_total"], node["node_memory_working_set_bytes"])
    for key, values in parts.items():
        if "container_cpu_usage_seconds_total" in values and "container_memory_working_set_bytes" in values:
            out.containers[key] = (values["container_cpu_usage_seconds_total"],
                                   values["container_memory_working_set_bytes"])
    return out


def usage(cpu_before: float, cpu_now: float, seconds: float, memory: float) -> dict[str, str]:
    """metrics-server's quantities: CPU in nanocores (a counter that went back counts as 0),
    memory in Ki."""
    nanocores = max(0.0, cpu_now - cpu_before) / seconds * 1e9 if seconds > 0 else 0.0
    return {"cpu": f"{int(nanocores)}n", "memory": f"{int(memory) // 1024}Ki"}


def _window(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def _metadata(obj: Obj, namespaced: bool) -> Obj:
    md = obj.get("metadata") or {}
    out: Obj = {"name": md.get("name"), "creationTimestamp": meta.now_rfc3339()}
    if namespaced:
        out["namespace"] = md.get("namespace")
    if md.get("labels"):
        out["labels"] = md["labels"]
    return out


def node_metrics(node: Obj, before: Scrape, now: Scrape) -> Obj | None:
    if before.node is None or now.node is None:
        return None
    seconds = now.at - before.at
    return {"kind": "NodeMetrics", "apiVersion": GROUP_VERSION, "metadata": _metadata(node, False),
            "timestamp": _stamp(now.at), "window": _window(seconds),
            "usage": usage(before.node[0], now.node[0], seconds, now.node[1])}


def pod_metrics(pod: Obj, before: Scrape, now: Scrape) -> Obj | None:
    """A pod's metrics, when every running container of it has two samples."""
    md = pod.get("metadata") or {}
    seconds, containers = now.at - before.at, []
    for c in (pod.get("spec") or {}).get("containers") or []:
        key = (md.get("namespace", ""), md.get("name", ""), c.get("name", ""))
        if key in now.containers and key in before.containers:
            containers.append({"name": key[2], "usage": usage(before.containers[key][0], now.containers[key][0],
                                                              seconds, now.containers[key][1])})
    if not containers:
        return None
    return {"kind": "PodMetrics", "apiVersion": GROUP_VERSION, "metadata": _metadata(pod, True),
            "timestamp": _stamp(now.at), "window": _window(seconds), "containers": containers}


def _stamp(at: float) -> str:
    return meta.now_rfc3339(dt.datetime.fromtimestamp(at, dt.timezone.utc))


async def _http_get(url: str) -> str:
    timeout = aiohttp.ClientTimeout(total=10, sock_connect=3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as resp:
            if resp.status != 200:
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status, message=resp.reason or "")
            return await resp.text()


class MetricsAPI:
    """The metrics.k8s.io handlers of one API server (``fetch`` is injectable for tests)."""

    def __init__(self, registry, fetch: Fetch = _http_get):
        self.registry, self.fetch = registry, fetch
        self.last: dict[str, Scrape] = {}

    async def _scrape(self, node: Obj) -> Scrape | None:
        ip = node_address(node)
        if not ip:
            return None
        host = f"[{ip}]" if ":" in ip else ip
        url = f"http://{host}:{KUBELET_PORT}/metrics/resource"
        try:
            return parse(await self.fetch(url), time.time())
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, UnicodeDecodeError) as exc:
            log.info("no resource metrics from %s: %s", url, exc)
            return None

    async def _pair(self, node: Obj) -> tuple[Scrape, Scrape] | None:
        """Two scrapes of ``node`` at least MIN_WINDOW apart, the newer one fresh."""
        name = (node.get("metadata") or {}).get("name", "")
        now = await self._scrape(node)
        if now is None:
            return None
        before = self.last.get(name)
        if before is None or not MIN_WINDOW <= now.at - before.at <= MAX_WINDOW:
            if before is not None and 0 <= now.at - before.at < MIN_WINDOW:
                await asyncio.sleep(MIN_WINDOW - (now.at - before.at))
            else:
                before = now
                await asyncio.sleep(MIN_WINDOW)
            now = await self._scrape(node)
            if now is None:
                return None
        self.last[name] = now
        return before, now

    async def pairs(self, nodes: list[Obj]) -> dict[str, tuple[Scrape, Scrape]]:
        found = await asyncio.gather(*(self._pair(n) for n in nodes))
        return {(n.get("metadata") or {}).get("name", ""): p for n, p in zip(nodes, found) if p is not None}

    # -- HTTP ----------------------------------------------------------------------------------

    async def serve(self, request: web.Request, target: Target) -> web.Response:
        if request.method != "GET" or target.subresource is not None or target.watch:
            raise errors.MethodNotAllowed(f"the server does not allow this method on {target.rt.resource}."
                                          "metrics.k8s.io")
        q = request.query
        if target.rt.kind == "NodeMetrics":
            items = await self._nodes(target.name, q.get("labelSelector"))
        else:
            items = await self._pods(target.namespace, target.name, q.get("labelSelector"), q.get("fieldSelector"))
        if target.name is not None:
            if not items:              # metrics-server's words: podmetrics "NS/NAME", nodemetrics "NAME"
                shown = f"{target.namespace}/{target.name}" if target.namespace else target.name
                what = target.rt.kind.lower()
                raise errors.NotFound(f'{what}.metrics.k8s.io "{shown}" not found',
                                      details={"name": shown, "group": "metrics.k8s.io", "kind": what})
            return json_response(items[0])
        if tables.accepts_table(request.headers.get("Accept")):
            return json_response(tables.table(target.rt.kind, items, dt.datetime.now(dt.timezone.utc)))
        return json_response({"kind": f"{target.rt.kind}List", "apiVersion": GROUP_VERSION,
                              "metadata": {}, "items": items})

    async def _list(self, rt, namespace: str | None, name: str | None, label_selector: str | None,
                    field_selector: str | None = None) -> list[Obj]:
        if name is not None:
            try:
                objs = [await self.registry.get(rt, namespace, name)]
            except errors.NotFound:
                return []
            match = listing.object_filter(rt, label_selector, field_selector)
            return [o for o in objs if match is None or match(o)]
        page = await listing.list_page(self.registry.store, rt, namespace,
                                       match=listing.object_filter(rt, label_selector, field_selector))
        return page.items

    async def _nodes(self, name: str | None, label_selector: str | None) -> list[Obj]:
        nodes = await self._list(NODES, None, name, label_selector)
        pairs = await self.pairs(nodes)
        out = [node_metrics(n, *pairs[n["metadata"]["name"]]) for n in nodes if n["metadata"]["name"] in pairs]
        return [m for m in out if m is not None]

    async def _pods(self, namespace: str | None, name: str | None, label_selector: str | None,
                    field_selector: str | None) -> list[Obj]:
        pods = [p for p in await self._list(PODS, namespace, name, label_selector, field_selector)
                if (p.get("spec") or {}).get("nodeName") and (p.get("status") or {}).get("phase") == "Running"]
        wanted = sorted({p["spec"]["nodeName"] for p in pods})
        nodes = []
        for node_name in wanted:
            try:
                nodes.append(await self.registry.get(NODES, None, node_name))
            except errors.NotFound:
                continue
        pairs = await self.pairs(nodes)
        out = [pod_metrics(p, *pairs[p["spec"]["nodeName"]]) for p in pods if p["spec"]["nodeName"] in pairs]
        return [m for m in out if m is not None]

