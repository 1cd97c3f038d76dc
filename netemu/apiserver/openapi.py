"""The OpenAPI v3 document of each group-version and the OpenAPI v2 document of all.

kubectl 1.32 reads them for ``kubectl explain`` (the schemas, found by their
x-kubernetes-group-version-kind), for client-side apply (the lists' patch metadata) and before
it validates a manifest: it asks whether each kind's PATCH accepts the ``fieldValidation``
query parameter (then the server validates, as ours does). So every resource gets its paths
with a GET and a PATCH naming its group-version-kind and that parameter, and the schemas of
its kinds (netemu/apiserver/openapi_schemas.py, from the official python client's models).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from netemu.api import kinds
from netemu.api.kinds import ResourceType
from netemu.apiserver.discovery import GIT_VERSION
from netemu.apiserver.openapi_schemas import custom_schemas, schemas_for

_PATCH_CONTENT = ("application/json-patch+json", "application/merge-patch+json")


def gv_path(group: str, version: str) -> str:
    """The index key of a group-version: ``api/v1`` or ``apis/apps/v1``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


DOC_VERSION = "2"        # bump when the documents' shape changes: kubectl caches them by this hash


def _hash(group: str, version: str) -> str:
    """The document's cache key for clients: fixed for built-in groups, and for a custom
    group it changes with its CRDs' schemas (kubectl re-reads it then)."""
    custom = [rt.custom.schema for rt in kinds.resources_in(group, version) if rt.custom is not None]
    extra = json.dumps(custom, sort_keys=True) if custom else ""
    return hashlib.sha256(f"{GIT_VERSION}/{DOC_VERSION}/{group}/{version}{extra}".encode()).hexdigest()[:32].upper()


def index() -> dict[str, Any]:
    paths = {}
    for group, versions in kinds.group_versions().items():
        for version in versions:
            key = gv_path(group, version)
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash(group, version)}"}
    return {"paths": paths}


def _operations(rt: ResourceType, schema: str | None = None) -> dict[str, Any]:
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    params = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
              {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
              {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}}]
    ok: dict[str, Any] = {"200": {"description": "OK"}}
    if schema:
        ok["200"]["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/" + schema}}}
    return {
        "get": {"operationId": f"read{rt.kind}", "x-kubernetes-action": "get",
                "x-kubernetes-group-version-kind": gvk, "responses": ok},
        "patch": {"operationId": f"patch{rt.kind}", "x-kubernetes-action": "patch",
                  "x-kubernetes-group-version-kind": gvk, "parameters": params,
                  "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in _PATCH_CONTENT},
                                  "required": True},
                  "responses": ok},
    }


def document(group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group-version (None when not served)."""
    if version not in kinds.group_versions().get(group, []):
        return None
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Any] = {}
    schemas = schemas_for(group, version)
    customs = [rt for rt in kinds.resources_in(group, version) if rt.custom is not None]
    if customs:
        schemas = {**schemas, **custom_schemas(customs)}
    by_kind = {s["x-kubernetes-group-version-kind"][0]["kind"]: name for name, s in schemas.items()
               if "x-kubernetes-group-version-kind" in s}
    for rt in kinds.resources_in(group, version):
        if "patch" not in rt.verbs:
            continue
        scope = f"{prefix}/namespaces/{{namespace}}/{rt.resource}" if rt.namespaced else f"{prefix}/{rt.resource}"
        paths[f"{scope}/{{name}}"] = _operations(rt, by_kind.get(rt.kind))
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (netemu)", "version": GIT_VERSION},
            "paths": paths, "components": {"schemas": schemas}}


def document_v2() -> dict[str, Any]:
    """/openapi/v2: every kind's definition (kubectl explain --output plaintext-openapiv2,
    older clients)."""
    return {"swagger": "2.0", "info": {"title": "Kubernetes (netemu)", "version": GIT_VERSION},
            "paths": {}, "definitions": {**schemas_for(None, "v1", v2=True),
                                         **custom_schemas(kinds.custom_resources(), v2=True)}}


def etag(doc: dict[str, Any]) -> str:
    return '"' + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32] + '"'
