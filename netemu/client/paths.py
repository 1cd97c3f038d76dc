"""URLs of the Kubernetes REST API for a resource, a namespace, a name and a subresource.

Pure functions shared by the client and the API server's tests: one place knows that core lives
under ``/api/v1`` and groups under ``/apis/<group>/<version>``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from netemu.api.kinds import ResourceType


def group_version_path(rt: ResourceType) -> str:
    """``/api/v1`` for core, ``/apis/apps/v1`` for a group."""
    return f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"


def resource_path(rt: ResourceType, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """The path of a collection (no name) or one object, optionally of a subresource.

    A namespaced resource without a namespace addresses the cross-namespace collection
    (``/api/v1/pods``), as upstream does for list and watch.
    """
    parts = [group_version_path(rt)]
    if rt.namespaced and namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(rt.resource)
    if name:
        parts.append(name)
        if subresource:
            parts.append(subresource)
    elif subresource:
        raise ValueError("a subresource needs an object name")
    return "/".join(parts)


def query_string(params: dict[str, object]) -> str:
    """``?a=b&c=d`` from the non-empty params (bools as "true"/"false"), or ""."""
    clean: dict[str, str] = {}
    for key, value in params.items():
        if value is None or value == "":
            continue
        clean[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return "?" + urlencode(clean) if clean else ""
