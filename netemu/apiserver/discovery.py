"""Discovery documents (pure): what kubectl reads to map "deploy" to apps/v1 deployments.

Built from ``netemu.api.kinds``; only the subresources this server serves are listed, so a
client never discovers a verb that would answer 404.
"""

from __future__ import annotations

from typing import Any

from netemu.api import kinds
from netemu.apiserver.routing import SERVED_SUBRESOURCES

GIT_VERSION = "v1.32.0-netemu"


def version_info() -> dict[str, Any]:
    import platform
    return {"major": "1", "minor": "32", "gitVersion": GIT_VERSION, "gitCommit": "netemu",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "python" + platform.python_version(), "compiler": "cpython",
            "platform": f"{platform.system().lower()}/{platform.machine()}"}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list() -> dict[str, Any]:
    groups = [_group(g, vs) for g, vs in kinds.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any]:
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, kinds.group_versions()[group])}


_SUB_SHAPES = {
    "status": lambda rt: {"kind": rt.kind, "verbs": ["get", "patch", "update"]},
    "scale": lambda rt: {"kind": "Scale", "group": "autoscaling", "version": "v1",
                         "verbs": ["get", "patch", "update"]},
    "binding": lambda rt: {"kind": "Binding", "verbs": ["create"]},
    "log": lambda rt: {"kind": "Pod", "verbs": ["get"]},
    "exec": lambda rt: {"kind": "PodExecOptions", "verbs": ["create", "get"]},
    "attach": lambda rt: {"kind": "PodAttachOptions", "verbs": ["create", "get"]},
    "portforward": lambda rt: {"kind": "PodPortForwardOptions", "verbs": ["create", "get"]},
    "finalize": lambda rt: {"kind": rt.kind, "verbs": ["update"]},
    "ephemeralcontainers": lambda rt: {"kind": "Pod", "verbs": ["get", "patch", "update"]},
    "token": lambda rt: {"kind": "TokenRequest", "group": "authentication.k8s.io", "version": "v1",
                         "verbs": ["create"]},
}


def api_resource_list(group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for rt in kinds.resources_in(group, version):
        entry: dict[str, Any] = {"name": rt.resource, "singularName": rt.singular or rt.kind.lower(),
                                 "namespaced": rt.namespaced, "kind": rt.kind, "verbs": list(rt.verbs)}
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            if sub in SERVED_SUBRESOURCES:
                resources.append({"name": f"{rt.resource}/{sub}", "singularName": "",
                                  "namespaced": rt.namespaced, **_SUB_SHAPES[sub](rt)})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
