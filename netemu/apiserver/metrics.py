"""The API server's Prometheus metrics, named like upstream's (apiserver_request_total, ...).

One registry per server (no global state, so tests can run several servers in one process),
served on ``/metrics`` to authenticated clients as upstream does. Long-running requests
(watches) are counted when they start, not timed.
"""

from __future__ import annotations

import time
from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from netemu.apiserver import routing

_VERBS = {"GET": "GET", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH", "DELETE": "DELETE"}


def verb_of(request: web.Request, target: routing.Target | None) -> str:
    """Upstream's verb label: LIST / WATCH / GET / POST / PUT / PATCH / DELETE / DELETECOLLECTION."""
    if target is None:
        return request.method
    if request.method == "GET":
        if target.watch or request.query.get("watch") in ("1", "true"):
            return "WATCH"
        return "GET" if target.name else "LIST"
    if request.method == "DELETE" and not target.name:
        return "DELETECOLLECTION"
    return _VERBS.get(request.method, request.method)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("verb", "group", "version", "resource", "subresource", "code")
        self.requests = Counter("apiserver_request_total", "Requests by verb, resource and HTTP code.",
                                labels, registry=self.registry)
        self.duration = Histogram("apiserver_request_duration_seconds", "Request latency (not watches).",
                                  labels[:-1], registry=self.registry,
                                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.watches = Gauge("apiserver_longrunning_requests", "Open watches.", ("resource",),
                             registry=self.registry)

    def middleware(self) -> Callable:
        @web.middleware
        async def observe(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
            try:
                target = routing.parse(request.path) if request.path.startswith("/api") else None
            except Exception:  # a bad path: the handler answers 404, we count it unlabelled
                target = None
            if not isinstance(target, routing.Target):
                return await handler(request)
            rt, verb = target.rt, verb_of(request, target)
            names = (verb, rt.group, rt.version, rt.resource, target.subresource or "")
            start = time.perf_counter()
            if verb == "WATCH":
                self.watches.labels(rt.resource).inc()
            try:
                resp = await handler(request)
            finally:
                if verb == "WATCH":
                    self.watches.labels(rt.resource).dec()
            self.requests.labels(*names, str(resp.status)).inc()
            if verb != "WATCH":
                self.duration.labels(*names).observe(time.perf_counter() - start)
            return resp
        return observe

    async def serve(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
