"""Which resource, namespace, object and subresource a request path addresses (pure).

Upstream's URL grammar: ``/api/v1/...`` for the core group, ``/apis/<group>/<version>/...``
for the others, then ``[watch/][namespaces/<ns>/]<resource>[/<name>[/<subresource>]]``. The
namespaces resource itself is cluster-scoped, so ``/api/v1/namespaces/<name>[/status]`` is a
namespace and ``/api/v1/namespaces/<ns>/<resource>`` is a collection inside one.
"""

from __future__ import annotations

from dataclasses import dataclass

from netemu.api import errors, kinds
from netemu.api.kinds import ResourceType

# Subresources this server implements (discovery lists only these).
SERVED_SUBRESOURCES = {"status", "scale", "binding", "log", "exec", "attach", "portforward", "finalize", "token",
                       "ephemeralcontainers"}


@dataclass(frozen=True)
class Target:
    """A request's object address, after the group/version prefix."""

    rt: ResourceType
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    watch: bool = False            # the legacy /watch/ path prefix


@dataclass(frozen=True)
class GroupVersion:
    """A discovery path: /api, /apis, /apis/<group>, /api/v1, /apis/<group>/<version>."""

    group: str | None = None
    version: str | None = None
    legacy: bool = False           # under /api rather than /apis


def _not_found(path: str) -> errors.NotFound:
    return errors.NotFound("the server could not find the requested resource",
                           details={"causes": [{"reason": "UnexpectedServerResponse",
                                                "message": f"404 page not found: {path}"}]})


def parse(path: str) -> Target | GroupVersion:
    """Parse an API path; raises NotFound for paths or resources the server does not serve."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        raise _not_found(path)
    if parts[0] == "api":
        if len(parts) == 1:
            return GroupVersion(legacy=True)
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) == 1:
            return GroupVersion()
        if len(parts) == 2:
            if parts[1] not in kinds.group_versions():
                raise _not_found(path)
            return GroupVersion(group=parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    if version not in kinds.group_versions().get(group, []):
        raise _not_found(path)
    if not rest:
        return GroupVersion(group=group, version=version, legacy=(parts[0] == "api"))
    return _parse_resource(path, group, version, rest)


def _parse_resource(path: str, group: str, version: str, rest: list[str]) -> Target:
    watch = False
    if rest[0] == "watch":
        watch, rest = True, rest[1:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and not (group == "" and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise _not_found(path)
    rt = kinds.by_resource(group, version, rest[0])
    if rt is None:
        raise _not_found(path)
    if namespace is not None and not rt.namespaced:
        raise _not_found(path)
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and (sub not in rt.subresources or sub not in SERVED_SUBRESOURCES):
        raise _not_found(path)
    return Target(rt, namespace, name, sub, watch)
