"""HTTP handlers: decode a request, call the registry, render the answer.

Every verb of the Kubernetes REST API for every resource in ``netemu.api.kinds``, addressed by
``routing.Target``. No storage logic lives here (that is ``registry``), only what HTTP brings:
query parameters, bodies, content types, status codes and Table negotiation.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

from aiohttp import web

from netemu.api import custom, errors, kinds
from netemu.api.meta import Obj
from netemu.apiserver import body, fieldcheck, listing, scale, tables, watch
from netemu.apiserver.fieldmanager import FieldManager, manager_name
from netemu.apiserver.patching import apply_patch
from netemu.apiserver.registry import PODS, Registry
from netemu.apiserver.routing import Target


_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def go_json(data: Any) -> str:
    """JSON as Go's encoding/json writes it (and so kube-apiserver): compact, UTF-8, with <, >, &
    and U+2028/9 escaped (they can only occur inside strings, so replacing them is safe). A
    client that compares raw bytes (kubectl rollout undo comparing a ControllerRevision's data
    with its own patch) sees what it would from a real server."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_ESCAPES:
        if char in text:
            text = text.replace(char, escaped)
    return text


def json_response(data: Obj, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.json_response(data, status=status, dumps=go_json)
    for text in warnings or ():                      # kubectl prints these as "Warning: ..."
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        resp.headers.add("Warning", f'299 - "{escaped}"')
    return resp


def _field_check(request: web.Request, target: Target, obj: Obj) -> list[str]:
    unknown = None
    if target.rt.custom is not None:       # a custom resource's unknown fields: what pruning drops
        unknown = fieldcheck.unknown_metadata(obj) + custom.normalize(target.rt, copy.deepcopy(obj))
    return fieldcheck.check(target.rt.kind, target.rt.api_version, obj, request.query.get("fieldValidation"),
                            unknown=unknown)


def _list_kind(target: Target) -> str:
    return target.rt.custom.list_kind if target.rt.custom is not None else f"{target.rt.kind}List"


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.BadRequest(f"{name} must be an integer, not {value!r}") from None


def _dry_run(request: web.Request) -> bool:
    """``?dryRun=All``: validate, default and allocate as usual, store nothing (kubectl diff,
    apply --dry-run=server). Unknown values are refused, as upstream does."""
    values = request.query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise errors.BadRequest(f'unsupported dryRun value "{value}": only "All" is supported')
    return bool(values)


def _check_verb(target: Target, verb: str) -> None:
    if verb not in target.rt.verbs:
        raise errors.MethodNotAllowed(f"{verb} is not supported on resources of kind "
                                      f'"{target.rt.resource}"', details={"kind": target.rt.resource})


def _check_type(target: Target, obj: Obj, expected: tuple[str, str] | None = None) -> None:
    """The body's apiVersion/kind must be the URL's (filled in when missing, as upstream's
    decoder defaults them from the endpoint)."""
    api_version, kind = expected or (target.rt.api_version, target.rt.kind)
    got_av, got_kind = obj.get("apiVersion"), obj.get("kind")
    if got_kind and got_kind != kind:
        raise errors.BadRequest(f"the kind in the request body ({got_kind}) does not match the "
                                f"kind of the URL ({kind})")
    if got_av and got_av != api_version:
        raise errors.BadRequest(f"the API version in the data ({got_av}) does not match the "
                                f"expected API version ({api_version})")
    obj["apiVersion"], obj["kind"] = api_version, kind


def _field_manager(request: web.Request, target: Target, *, apply: bool = False) -> FieldManager:
    """The request's field manager (``?fieldManager=``, else the User-Agent's product)."""
    name = manager_name(request.query.get("fieldManager"), request.headers.get("User-Agent"), apply=apply)
    return FieldManager(target.rt, name, subresource=target.subresource)


def _precondition(doc: object) -> int | None:
    """A resourceVersion in a patch or applied configuration: the write's precondition."""
    md = doc.get("metadata") if isinstance(doc, dict) else None
    rv = md.get("resourceVersion") if isinstance(md, dict) else None
    return int(rv) if isinstance(rv, str) and rv.isdigit() else None


def _and_named(match, name: str | None):
    """A watch filter that also keeps only the object called ``name`` (when given)."""
    if name is None:
        return match
    return lambda obj: (obj.get("metadata") or {}).get("name") == name and (match is None or match(obj))


class Handlers:
    """The request handlers of one API server (one registry, one store)."""

    def __init__(self, registry: Registry, *, bookmark_interval: float = 60.0):
        self.registry = registry
        self.bookmark_interval = bookmark_interval
        self.active_watches: set = set()

    async def _read(self, request: web.Request) -> bytes:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise errors.RequestEntityTooLarge(
                f"the request body is larger than the limit of {body.MAX_BODY_BYTES} bytes") from None
        body.check_size(raw)
        return raw

    def _render(self, request: web.Request, target: Target, obj: Obj, status: int = 200,
                warnings: list[str] | None = None) -> web.Response:
        if tables.accepts_table(request.headers.get("Accept")) and obj.get("kind") == target.rt.kind:
            now = dt.datetime.now(dt.timezone.utc)
            rv = (obj.get("metadata") or {}).get("resourceVersion", "")
            return json_response(tables.table(target.rt.kind, [obj], now, resource_version=rv,
                                              include=request.query.get("includeObject", "Metadata"),
                                              custom=target.rt.custom),
                                 status, warnings)
        return json_response(obj, status, warnings)

    # -- dispatch ----------------------------------------------------------------------------

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        if target.name is None:
            if method == "GET":
                if target.watch or _bool(request.query.get("watch")):
                    _check_verb(target, "watch")
                    return await self.watch(request, target)
                _check_verb(target, "list")
                return await self.list(request, target)
            if method == "POST":
                _check_verb(target, "create")
                return await self.create(request, target)
            if method == "DELETE":
                _check_verb(target, "deletecollection")
                return await self.delete_collection(request, target)
        else:
            if target.watch and target.subresource is None and method == "GET":
                _check_verb(target, "watch")            # legacy /watch/.../NAME: one object
                return await self.watch(request, target)
            if target.watch:
                raise errors.MethodNotAllowed("only GET is allowed on a watch path")
            if target.subresource == "binding":
                if method == "POST":
                    return await self.bind(request, target)
            elif target.subresource == "scale":
                return await self.scale(request, target)
            elif target.subresource == "finalize":
                if method == "PUT":
                    return await self.update(request, target)
            elif method == "GET":
                _check_verb(target, "get")
                obj = await self.registry.get(target.rt, target.namespace, target.name)
                return self._render(request, target, obj)
            elif method == "PUT":
                _check_verb(target, "update")
                return await self.update(request, target)
            elif method == "PATCH":
                _check_verb(target, "patch")
                return await self.patch(request, target)
            elif method == "DELETE" and target.subresource is None:
                _check_verb(target, "delete")
                return await self.delete(request, target)
        raise errors.MethodNotAllowed(f"the server does not allow this method ({method}) on the "
                                      "requested resource")

    # -- collections -------------------------------------------------------------------------

    async def list(self, request: web.Request, target: Target) -> web.Response:
        q = request.query
        match = listing.object_filter(target.rt, q.get("labelSelector"), q.get("fieldSelector"))
        exact = None
        if q.get("resourceVersionMatch") == "Exact" and q.get("resourceVersion"):
            exact = _int(request, "resourceVersion")
        limit = _int(request, "limit")
        page = await listing.list_page(self.registry.store, target.rt, target.namespace, match=match,
                                       limit=limit if limit and limit > 0 else None,
                                       continue_token=q.get("continue") or None, exact_revision=exact)
        rv = str(page.revision)
        if tables.accepts_table(request.headers.get("Accept")):
            return json_response(tables.table(target.rt.kind, page.items, dt.datetime.now(dt.timezone.utc),
                                              resource_version=rv, continue_token=page.continue_token,
                                              include=q.get("includeObject", "Metadata"), custom=target.rt.custom))
        meta: Obj = {"resourceVersion": rv}
        if page.continue_token:
            meta["continue"] = page.continue_token
        return json_response({"kind": _list_kind(target), "apiVersion": target.rt.api_version,
                              "metadata": meta, "items": page.items})

    async def watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        q = request.query
        timeout = _int(request, "timeoutSeconds")
        params = watch.WatchParams(
            resource_version=q.get("resourceVersion", ""),
            timeout=float(timeout) if timeout and timeout > 0 else 1800.0,
            bookmarks=_bool(q.get("allowWatchBookmarks")),
            bookmark_interval=self.bookmark_interval,
            match=_and_named(listing.object_filter(target.rt, q.get("labelSelector"), q.get("fieldSelector")),
                             target.name),
            as_table=tables.accepts_table(request.headers.get("Accept")),
            include=q.get("includeObject", "Metadata"),
            queue_size=watch.WATCH_QUEUE, slow_timeout=watch.SLOW_WATCHER_TIMEOUT)
        return await watch.serve(request, self.registry.store, target.rt, target.namespace, params,
                                 self.active_watches)

    async def create(self, request: web.Request, target: Target) -> web.Response:
        obj = body.decode_object(await self._read(request), request.content_type)
        if target.rt.kind == "Binding":
            _check_type(target, obj)
            name = (obj.get("metadata") or {}).get("name")
            if not name:
                raise errors.BadRequest("a Binding needs metadata.name (the pod's name)")
            return await self._bind(target.namespace, name, obj)
        _check_type(target, obj)
        warnings = _field_check(request, target, obj)
        created = await self.registry.create(target.rt, target.namespace, obj, dry_run=_dry_run(request),
                                             fields=_field_manager(request, target).record)
        return self._render(request, target, created, 201, warnings)

    async def delete_collection(self, request: web.Request, target: Target) -> web.Response:
        q = request.query
        match = listing.object_filter(target.rt, q.get("labelSelector"), q.get("fieldSelector"))
        options = await self._delete_options(request)
        dry_run = _dry_run(request)
        page = await listing.list_page(self.registry.store, target.rt, target.namespace, match=match)
        deleted = []
        for obj in page.items:
            meta = obj.get("metadata") or {}
            try:
                last, _ = await self.registry.delete(target.rt, meta.get("namespace"), meta["name"], options,
                                                     dry_run=dry_run)
                deleted.append(last)
            except errors.NotFound:
                continue
        return json_response({"kind": f"{target.rt.kind}List", "apiVersion": target.rt.api_version,
                              "metadata": {"resourceVersion": str(page.revision)}, "items": deleted})

    # -- objects -----------------------------------------------------------------------------

    async def update(self, request: web.Request, target: Target) -> web.Response:
        obj = body.decode_object(await self._read(request), request.content_type)
        _check_type(target, obj)
        warnings = _field_check(request, target, obj)
        updated = await self.registry.update(target.rt, target.namespace, target.name, obj,
                                             subresource=target.subresource, dry_run=_dry_run(request),
                                             fields=_field_manager(request, target).record)
        return self._render(request, target, updated, warnings=warnings)

    async def patch(self, request: web.Request, target: Target) -> web.Response:
        content_type = body.media_type(request.headers.get("Content-Type"))
        if content_type == body.APPLY_PATCH:
            return await self.apply(request, target)
        accepted = body.PATCH_TYPES if target.rt.custom is None else (body.JSON_PATCH, body.MERGE_PATCH)
        if content_type not in accepted:
            raise errors.UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(accepted + (body.APPLY_PATCH,))}")
        if "force" in request.query:
            raise errors.Invalid('PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be '
                                 "specified for non-apply patch",
                                 details={"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                                     errors.field_cause("force", "Forbidden: may not be specified for "
                                                        "non-apply patch", "FieldValueForbidden")]})
        patch_doc = body.decode(await self._read(request), content_type)
        rt = target.rt
        fields = _field_manager(request, target)
        warnings: list[str] = []

        def transform(old: Obj) -> Obj:
            new = apply_patch(content_type, old, patch_doc, rt.kind)
            if not isinstance(new, dict):
                raise errors.BadRequest("the patch did not produce an object")
            _check_type(target, new)
            warnings[:] = _field_check(request, target, new)
            return new
        updated = await self.registry.guaranteed_update(rt, target.namespace, target.name, transform,
                                                        subresource=target.subresource,
                                                        precondition=_precondition(patch_doc),
                                                        dry_run=_dry_run(request), fields=fields.record)
        return self._render(request, target, updated, warnings=warnings)

    async def apply(self, request: web.Request, target: Target) -> web.Response:
        """Server-side apply (PATCH application/apply-patch+yaml): merge the configuration into
        the object, or create it; fields other managers own are a 409 unless ``?force=true``."""
        if target.subresource not in (None, "status"):
            raise errors.UnsupportedMediaType(f"apply is not supported on the {target.subresource} subresource")
        config = body.decode_object(await self._read(request), body.APPLY_PATCH)
        self._check_applied(target, config)
        fm = _field_manager(request, target, apply=True)
        force, dry_run = _bool(request.query.get("force")), _dry_run(request)
        warnings: list[str] = []

        def applied(old: Obj | None) -> Obj:
            merged = fm.apply(old, config, force)
            _check_type(target, merged)
            warnings[:] = _field_check(request, target, merged)
            return merged
        rt, ns, name = target.rt, target.namespace, target.name
        for _ in range(5):
            try:
                await self.registry.get(rt, ns, name)
            except errors.NotFound:
                if target.subresource is not None:
                    raise
                try:
                    created = await self.registry.create(rt, ns, applied(None), dry_run=dry_run, fields=fm.record)
                except errors.AlreadyExists:
                    continue
                return self._render(request, target, created, 201, warnings)
            try:
                updated = await self.registry.guaranteed_update(
                    rt, ns, name, applied, subresource=target.subresource, precondition=_precondition(config),
                    dry_run=dry_run, fields=fm.record)
            except errors.NotFound:
                continue
            return self._render(request, target, updated, warnings=warnings)
        raise errors.Conflict(f'Operation cannot be fulfilled on {rt.resource} "{name}": the object was '
                              "created and deleted while it was applied; please try again")

    async def _apply_scale(self, request: web.Request, target: Target) -> web.Response:
        """Server-side apply of an autoscaling/v1 Scale (client-go's ApplyScale): the replicas
        land in the parent, their ownership as upstream's ScaleHandler keeps it."""
        config = body.decode_object(await self._read(request), body.APPLY_PATCH)
        if (config.get("apiVersion"), config.get("kind")) != ("autoscaling/v1", "Scale"):
            raise errors.BadRequest(f"Incorrect version specified in apply patch. Specified patch version: "
                                    f"{config.get('apiVersion')}, expected: autoscaling/v1 (kind Scale)")
        fm = _field_manager(request, target, apply=True)
        force = _bool(request.query.get("force"))
        paths = target.rt.custom.scale if target.rt.custom is not None else None

        def transform(old: Obj) -> Obj:
            merged = fm.apply_scale(old, scale.to_scale(old, paths), config, force)
            new = scale.apply_scale(old, merged, paths)
            new.get("metadata", {}).pop("resourceVersion", None)
            return new
        self._check_applied(target, {**config, "apiVersion": target.rt.api_version})
        updated = await self.registry.guaranteed_update(target.rt, target.namespace, target.name, transform,
                                                        precondition=_precondition(config),
                                                        dry_run=_dry_run(request), fields=fm.record)
        return json_response(scale.to_scale(updated, paths))

    @staticmethod
    def _check_applied(target: Target, config: Obj) -> None:
        """An applied configuration names its type, and its object is the URL's."""
        if not config.get("apiVersion") or not config.get("kind"):
            raise errors.BadRequest("an apply configuration must set apiVersion and kind")
        if config["apiVersion"] != target.rt.api_version:
            raise errors.BadRequest(f"Incorrect version specified in apply patch. Specified patch version: "
                                    f"{config['apiVersion']}, expected: {target.rt.api_version}")
        md = config.setdefault("metadata", {})
        if md.get("name") not in (None, target.name):
            raise errors.BadRequest(f"the name of the object ({md['name']}) does not match the name on the "
                                    f"URL ({target.name})")
        if target.rt.namespaced and md.get("namespace") not in (None, target.namespace):
            raise errors.BadRequest("the namespace of the provided object does not match the namespace sent "
                                    "on the request")
        md["name"] = target.name

    async def _delete_options(self, request: web.Request) -> Obj:
        raw = await self._read(request) if request.can_read_body else b""
        options: Obj = body.decode_object(raw, "application/json") if raw.strip() else {}
        q = request.query
        if q.get("gracePeriodSeconds"):
            options["gracePeriodSeconds"] = _int(request, "gracePeriodSeconds")
        if q.get("propagationPolicy"):
            options["propagationPolicy"] = q["propagationPolicy"]
        if q.get("orphanDependents"):
            options["orphanDependents"] = _bool(q["orphanDependents"])
        return options

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        options = await self._delete_options(request)
        obj, removed = await self.registry.delete(target.rt, target.namespace, target.name, options,
                                                  dry_run=_dry_run(request))
        status = 202 if not removed and options.get("propagationPolicy") == "Foreground" else 200
        return json_response(obj, status)

    async def _bind(self, namespace: str | None, pod_name: str, binding: Obj) -> web.Response:
        await self.registry.bind(namespace or "default", pod_name, binding)
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                              "code": 201}, 201)

    async def bind(self, request: web.Request, target: Target) -> web.Response:
        obj = body.decode_object(await self._read(request), request.content_type)
        _check_type(target, obj, ("v1", "Binding"))
        name = (obj.get("metadata") or {}).get("name") or target.name
        if name != target.name:
            raise errors.BadRequest("the name of the Binding does not match the pod on the URL")
        return await self._bind(target.namespace, target.name, obj)

    async def scale(self, request: web.Request, target: Target) -> web.Response:
        """The Scale view of a deployment/replicaset; PUT, PATCH and apply write spec.replicas.

        A PATCH is applied to the Scale view of the current object inside the retry loop, so
        a concurrent write cannot be lost; a resourceVersion in the body is a precondition."""
        rt, ns, name = target.rt, target.namespace, target.name
        paths = rt.custom.scale if rt.custom is not None else None
        if request.method == "GET":
            return json_response(scale.to_scale(await self.registry.get(rt, ns, name), paths))
        if request.method == "PUT":
            doc = body.decode_object(await self._read(request), request.content_type)
            _check_type(target, doc, ("autoscaling/v1", "Scale"))

            def desired(old: Obj) -> Obj:
                return doc
        elif request.method == "PATCH":
            content_type = body.media_type(request.headers.get("Content-Type"))
            if content_type == body.APPLY_PATCH:
                return await self._apply_scale(request, target)
            if content_type not in body.PATCH_TYPES:
                raise errors.UnsupportedMediaType(f"unsupported patch type {content_type!r} for scale")
            doc = body.decode(await self._read(request), content_type)

            def desired(old: Obj) -> Obj:
                patched = apply_patch(content_type, scale.to_scale(old, paths), doc, "Scale")
                if not isinstance(patched, dict):
                    raise errors.BadRequest("the patch did not produce a Scale object")
                return patched
        else:
            raise errors.MethodNotAllowed(f"{request.method} is not supported on the scale subresource")
        rv = ((doc.get("metadata") or {}) if isinstance(doc, dict) else {}).get("resourceVersion")
        precondition = int(rv) if isinstance(rv, str) and rv.isdigit() else None

        def transform(old: Obj) -> Obj:
            new = scale.apply_scale(old, desired(old), paths)
            new.get("metadata", {}).pop("resourceVersion", None)
            return new
        updated = await self.registry.guaranteed_update(rt, ns, name, transform, precondition=precondition,
                                                        dry_run=_dry_run(request),
                                                        fields=_field_manager(request, target).record)
        return json_response(scale.to_scale(updated, paths))


__all__ = ["Handlers", "kinds"]
