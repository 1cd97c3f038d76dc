"""A minimal OpenAPI v3 document per group-version: enough for kubectl, nothing more.

kubectl 1.32 validates manifests before sending them: it asks the server's OpenAPI v3 whether
each kind's PATCH accepts the ``fieldValidation`` query parameter (then the server validates,
as ours does) and otherwise wants to download the full schema, failing with "failed to download
openapi". So every resource gets its paths with a PATCH operation naming its
group-version-kind and the ``fieldValidation`` parameter. No schemas are published: kubectl then
builds strategic merge patches from its built-in types, as for any server without schemas.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from netemu.api import kinds
from netemu.api.kinds import ResourceType
from netemu.apiserver.discovery import GIT_VERSION

_PATCH_CONTENT = ("application/json-patch+json", "application/merge-patch+json")


def gv_path(group: str, version: str) -> str:
    """The index key of a group-version: ``api/v1`` or ``apis/apps/v1``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _hash(group: str, version: str) -> str:
    return hashlib.sha256(f"{GIT_VERSION}/{group}/{version}".encode()).hexdigest()[:32].upper()


def index() -> dict[str, Any]:
    paths = {}
    for group, versions in kinds.group_versions().items():
        for version in versions:
            key = gv_path(group, version)
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash(group, version)}"}
    return {"paths": paths}


def _operations(rt: ResourceType) -> dict[str, Any]:
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    params = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
              {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
              {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}}]
    ok = {"200": {"description": "OK"}}
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
    for rt in kinds.resources_in(group, version):
        if "patch" not in rt.verbs:
            continue
        scope = f"{prefix}/namespaces/{{namespace}}/{rt.resource}" if rt.namespaced else f"{prefix}/{rt.resource}"
        paths[f"{scope}/{{name}}"] = _operations(rt)
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (netemu)", "version": GIT_VERSION},
            "paths": paths, "components": {"schemas": {}}}


def etag(doc: dict[str, Any]) -> str:
    return '"' + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32] + '"'
