"""The aiohttp application: authentication, error rendering, and the route table.

Every error leaves as a Kubernetes ``Status``: StatusErrors with their own code, aiohttp's own
HTTP errors (bad request lines, oversized bodies) mapped to the matching Status, and anything
unexpected as a 500 that is logged (a server bug, never a client mistake).
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from netemu.api import errors, kinds, meta
from netemu.apiserver import apiservices, body, discovery, openapi, podexec, podlog, portforward, reviews, routing
from netemu.apiserver.metrics import Metrics
from netemu.apiserver.metricsapi import MetricsAPI
from netemu.apiserver.handlers import Handlers, json_response
from netemu.apiserver.registry import Registry
from netemu.apiserver.security import USER_KEY, Security

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_TO_STATUS = {400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden,
                   404: errors.NotFound, 405: errors.MethodNotAllowed, 413: errors.RequestEntityTooLarge,
                   415: errors.UnsupportedMediaType}


@web.middleware
async def status_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.StatusError as exc:
        return json_response(exc.status(), exc.code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        cls = _HTTP_TO_STATUS.get(exc.status, errors.BadRequest if exc.status < 500 else errors.InternalError)
        return json_response(cls(exc.reason or str(exc)).status(), exc.status)
    except ConnectionResetError:
        raise
    except Exception as exc:
        log.exception("internal error serving %s %s", request.method, request.path)
        return json_response(errors.InternalError(f"internal error: {type(exc).__name__}: {exc}").status(), 500)


def authenticate_and_authorize(security: Security) -> Callable:
    """Every request, health and version included, goes through authentication, impersonation
    and authorization (anonymous requests may read /healthz, /livez, /readyz and /version, as
    upstream's system:public-info-viewer role allows)."""
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        await security.check(request)
        return await handler(request)
    return middleware


class ApiServer:
    """Routes of one API server; ``app`` is what aiohttp serves."""

    def __init__(self, registry: Registry, security: Security, *, server_address: str = "127.0.0.1:6443",
                 bookmark_interval: float = 60.0):
        self.registry = registry
        self.security = security
        self.server_address = server_address
        self.handlers = Handlers(registry, bookmark_interval=bookmark_interval)
        self.metrics_api = MetricsAPI(registry)
        self.started = meta.now_rfc3339()
        self.ready = False
        self.metrics = Metrics()
        self.app = web.Application(client_max_size=body.MAX_BODY_BYTES,
                                   middlewares=[self.metrics.middleware(), status_errors,
                                                authenticate_and_authorize(security)])
        self.app.router.add_get("/version", self.version)
        self.app.router.add_get("/metrics", self.metrics.serve)
        for path in ("/healthz", "/livez", "/readyz"):
            self.app.router.add_get(path, self.health)
        self.app.router.add_get("/openapi/v2", self.openapi_v2)
        self.app.router.add_get("/openapi/v3", self.openapi_index)
        self.app.router.add_get("/openapi/v3/{gv:.*}", self.openapi_document)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)

    async def version(self, request: web.Request) -> web.Response:
        return json_response(discovery.version_info())

    async def health(self, request: web.Request) -> web.Response:
        if request.path == "/readyz" and not self.ready:
            return web.Response(status=503, text="not ready")
        return web.Response(text="ok")

    async def openapi_v2(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        if "json" not in accept and "*/*" not in accept and accept:
            raise errors.NotAcceptable("only application/json is served for /openapi/v2")
        doc = openapi.document_v2()
        return web.json_response(doc, headers={"ETag": openapi.etag(doc)})

    async def openapi_index(self, request: web.Request) -> web.Response:
        return json_response(openapi.index())

    async def openapi_document(self, request: web.Request) -> web.Response:
        parts = request.match_info["gv"].strip("/").split("/")
        doc = None
        if len(parts) == 2 and parts[0] == "api":
            doc = openapi.document("", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = openapi.document(parts[1], parts[2])
        if doc is None:
            raise errors.NotFound("the server could not find the requested resource")
        return web.json_response(doc, headers={"ETag": openapi.etag(doc)})

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        target = routing.parse(request.path)
        if isinstance(target, routing.GroupVersion):
            if request.method != "GET":
                raise errors.MethodNotAllowed(f"{request.method} is not allowed on discovery documents")
            return json_response(self._discovery(target))
        if target.subresource == "log" and target.rt.kind == "Pod":
            return await podlog.serve(self.registry, request, target.namespace or "default", target.name)
        if target.subresource in ("exec", "attach") and target.rt.kind == "Pod":
            return await podexec.serve(self.registry, request, target.namespace or "default", target.name,
                                       target.subresource)
        if target.subresource == "portforward" and target.rt.kind == "Pod":
            return await portforward.serve(self.registry, request, target.namespace or "default", target.name)
        if target.rt.kind in kinds.REVIEW_KINDS or target.subresource == "token":
            return await self._review(request, target)
        if target.rt.kind in kinds.METRICS_KINDS:
            return await self.metrics_api.serve(request, target)
        if target.rt.kind == "APIService":
            return await apiservices.serve(request, target, self.started)
        await self.security.admit(request, target)
        return await self.handlers.handle(request, target)

    async def _review(self, request: web.Request, target: routing.Target) -> web.Response:
        """Reviews and TokenRequests: POST a question, get it back with its status."""
        if request.method != "POST":
            raise errors.MethodNotAllowed(f"{request.method} is not allowed on {target.rt.resource}"
                                          + (f"/{target.subresource}" if target.subresource else ""))
        obj = body.decode_object(await request.read(), request.content_type)
        user, sec = request[USER_KEY], self.security
        if target.subresource == "token":
            await sec.admit(request, target, obj)
            return json_response(await reviews.token_request(sec, obj, target.namespace or "default", target.name),
                                 201)
        kind = target.rt.kind
        expected = (target.rt.api_version, kind)
        if (obj.get("apiVersion"), obj.get("kind")) != expected and obj.get("kind") not in (None, kind):
            raise errors.BadRequest(f"the kind in the request body ({obj.get('kind')}) does not match the "
                                    f"kind of the URL ({kind})")
        obj["apiVersion"], obj["kind"] = expected
        if kind in ("SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview"):
            out = await reviews.access_review(sec, obj, user, kind, target.namespace)
        elif kind == "SelfSubjectRulesReview":
            out = await reviews.rules_review(sec, obj, user)
        elif kind == "TokenReview":
            out = await reviews.token_review(sec, obj)
        else:
            out = reviews.self_subject_review(obj, user)
        return json_response(out, 201)

    def _discovery(self, gv: routing.GroupVersion) -> dict[str, Any]:
        if gv.legacy and gv.version is None:
            return discovery.api_versions(self.server_address)
        if gv.group is None:
            return discovery.api_group_list()
        if gv.version is None:
            return discovery.api_group(gv.group)
        return discovery.api_resource_list(gv.group, gv.version)
