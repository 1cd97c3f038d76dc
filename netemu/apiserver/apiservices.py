"""apiregistration.k8s.io/v1 APIServices: the served group-versions as the aggregator lists
them (``kubectl get apiservices``), read-only.

Upstream's kube-aggregator keeps one APIService per group-version: the API server's own
("Local", always available, with the group and version priorities of its
apiVersionPriorities table) and those an add-on registers (metrics-server's
v1beta1.metrics.k8s.io points at its Service). Here the resource metrics API is served by the
API server itself, so it is listed like metrics-server registers it (its priorities and
Service) and reported Available, because the API server answers it. ``apiservices`` is pure.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from netemu.api import errors, kinds
from netemu.api.meta import Obj
from netemu.apiserver import tables
from netemu.apiserver.handlers import json_response
from netemu.apiserver.routing import Target

GROUP_VERSION = "apiregistration.k8s.io/v1"
# kube-aggregator's apiVersionPriorities (group priority, version priority)
PRIORITIES = {"": (18000, 1), "apps": (17800, 15), "events.k8s.io": (17750, 15),
              "authentication.k8s.io": (17700, 15), "authorization.k8s.io": (17600, 15),
              "autoscaling": (17500, 15), "batch": (17400, 15), "certificates.k8s.io": (17300, 15),
              "networking.k8s.io": (17200, 15), "policy": (17100, 15), "rbac.authorization.k8s.io": (17000, 15),
              "storage.k8s.io": (16800, 15), "apiextensions.k8s.io": (16700, 15),
              "admissionregistration.k8s.io": (16700, 15), "scheduling.k8s.io": (16600, 15),
              "coordination.k8s.io": (16500, 15), "node.k8s.io": (16300, 15), "discovery.k8s.io": (16200, 15),
              "apiregistration.k8s.io": (18000, 15), "metrics.k8s.io": (100, 100)}
ADD_ON_SERVICES = {"metrics.k8s.io": ("kube-system", "metrics-server")}


def apiservices(created: str) -> list[Obj]:
    """One APIService per served group-version, named ``VERSION.GROUP`` (``v1.`` for core)."""
    out = []
    for group, versions in sorted(kinds.group_versions().items()):
        for version in versions:
            group_priority, version_priority = PRIORITIES.get(group, (1000, 15))
            spec: Obj = {"group": group, "version": version, "groupPriorityMinimum": group_priority,
                         "versionPriority": version_priority}
            md: Obj = {"name": f"{version}.{group}", "creationTimestamp": created}
            if group in ADD_ON_SERVICES:
                namespace, name = ADD_ON_SERVICES[group]
                spec["service"] = {"namespace": namespace, "name": name, "port": 443}
                spec["insecureSkipTLSVerify"] = True
                condition = {"reason": "Passed", "message": "all checks passed"}
            else:
                md["labels"] = {"kube-aggregator.kubernetes.io/automanaged": "onstart"}
                condition = {"reason": "Local", "message": "Local APIServices are always available"}
            out.append({"kind": "APIService", "apiVersion": GROUP_VERSION, "metadata": md, "spec": spec,
                        "status": {"conditions": [{"type": "Available", "status": "True",
                                                   "lastTransitionTime": created, **condition}]}})
    return out


async def serve(request: web.Request, target: Target, created: str) -> web.Response:
    if request.method != "GET" or target.subresource is not None or target.watch:
        raise errors.MethodNotAllowed("apiservices are read-only here: the API server registers them itself")
    items = apiservices(created)
    if target.name is not None:
        found = [i for i in items if i["metadata"]["name"] == target.name]
        if not found:
            raise errors.NotFound(f'apiservices.apiregistration.k8s.io "{target.name}" not found',
                                  details={"name": target.name, "group": "apiregistration.k8s.io",
                                           "kind": "apiservices"})
        items = found
    if tables.accepts_table(request.headers.get("Accept")):
        return json_response(tables.table("APIService", items, dt.datetime.now(dt.timezone.utc)))
    if target.name is not None:
        return json_response(items[0])
    return json_response({"kind": "APIServiceList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items})
