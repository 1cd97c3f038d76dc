"""List with selectors and limit/continue paging, consistent at one store revision.

Upstream's etcd3 storage pages in key order and keeps reading until ``limit`` objects *match*
(selectors filter after reading), and the continue token carries the revision the first page
was read at plus the last key returned, so every page is the same snapshot. A token older than
the store's history answers 410 Expired, and the client starts over.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Callable

from netemu.api import custom, errors, selectors
from netemu.api.kinds import ResourceType
from netemu.api.meta import Obj
from netemu.store.base import Store


# Field labels each kind supports beyond metadata.name / metadata.namespace (upstream GetAttrs).
FIELD_LABELS: dict[str, set[str]] = {
    "Pod": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"},
    "Event": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
              "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
              "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
    "Secret": {"type"},
    "Node": {"spec.unschedulable"},
    "Namespace": {"status.phase"},
    "ReplicaSet": {"status.replicas"},
    "Service": {"spec.clusterIP", "spec.type"},
}
SCAN_CHUNK = 500


def object_filter(rt: ResourceType, label_selector: str | None,
                  field_selector: str | None) -> Callable[[Obj], bool] | None:
    """A predicate for the selectors (None when both are empty); bad selectors are 400."""
    labels = selectors.parse(label_selector) if label_selector else None
    fields = selectors.parse_fields(field_selector) if field_selector else ()
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_LABELS.get(rt.kind, set())
    for req in fields:
        if req.path not in allowed:
            raise errors.BadRequest(f'field label not supported: {req.path}')
    if labels is None and not fields:
        return None

    def match(obj: Obj) -> bool:
        if labels is not None and not labels.matches_object(obj):
            return False
        return selectors.fields_match(fields, obj)
    return match


@dataclass(frozen=True)
class Page:
    items: list[Obj]
    revision: int
    continue_token: str = ""
    remaining: int | None = None


def encode_continue(revision: int, last_key: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str, prefix: str) -> tuple[int, str]:
    """(revision, last key) from a token; a token that is not ours is a 400."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
        revision, start = int(doc["rv"]), str(doc["start"])
    except (ValueError, KeyError, TypeError):
        raise errors.BadRequest("continue key is not valid: incorrect encoded start resourceVersion "
                                "(version meta.k8s.io/v1)") from None
    if revision <= 0 or not start.startswith(prefix):
        raise errors.BadRequest("continue key is not valid: the continue token does not match this list")
    return revision, start


def _expired() -> errors.Gone:
    return errors.Gone("The provided continue parameter is too old to display a consistent list "
                       "result. You can start a new list without the continue parameter.")


async def list_page(store: Store, rt: ResourceType, namespace: str | None, *,
                    match: Callable[[Obj], bool] | None = None, limit: int | None = None,
                    continue_token: str | None = None, exact_revision: int | None = None) -> Page:
    """One page of a list (the whole list when ``limit`` is None)."""
    prefix = rt.list_prefix(namespace)
    revision, start = exact_revision, None
    if continue_token:
        revision, start = decode_continue(continue_token, prefix)
    items: list[Obj] = []
    last_key = start
    while True:
        chunk = SCAN_CHUNK if limit else None
        try:
            result = await store.list(prefix, limit=chunk, start_after=last_key, revision=revision)
        except errors.Gone:
            raise (_expired() if continue_token else errors.Gone(
                f"too old resource version: {revision}")) from None
        revision = result.revision
        for obj in result.items:
            meta = obj.get("metadata") or {}
            last_key = rt.key(meta.get("namespace"), meta.get("name", ""))
            if match is None or match(obj):
                if rt.custom is not None:
                    custom.on_read(rt, obj)
                else:
                    obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
                items.append(obj)
                if limit and len(items) >= limit:
                    more = await _has_more(store, prefix, last_key, revision)
                    return Page(items, revision, encode_continue(revision, last_key) if more else "")
        if not result.more:
            return Page(items, revision)


async def _has_more(store: Store, prefix: str, after: str, revision: int) -> bool:
    """Whether any object follows ``after`` (like upstream, not whether it matches: a next page
    may come back empty without a token)."""
    return bool((await store.list(prefix, limit=1, start_after=after, revision=revision)).items)
