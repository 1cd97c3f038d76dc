"""The registry of kinds the cluster serves: one row per resource, read by every layer.

The store derives its keys from it (upstream's etcd layout), the API server its routes and
discovery documents, kubectl its short names, the client its URLs. Adding a kind is one row here
plus its defaults and validation in the object model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    """One served resource (metav1.APIResource plus where it lives in etcd)."""

    group: str                 # "" for core
    version: str
    kind: str
    resource: str              # plural, lower case, as in URLs
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    singular: str = ""
    categories: tuple[str, ...] = ()
    # upstream etcd key prefix under /registry (services are "services/specs", nodes "minions")
    etcd_prefix: str = ""
    verbs: tuple[str, ...] = field(
        default=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"))
    # a custom resource's definition (netemu.api.custom.CustomInfo); None for built-in kinds
    custom: Any = field(default=None, compare=False, hash=False, repr=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def key_prefix(self) -> str:
        """``/registry/<prefix>/`` under which every object of this resource is stored."""
        return f"/registry/{self.etcd_prefix or self.resource}/"

    def key(self, namespace: str | None, name: str) -> str:
        """The store key of one object: upstream's ``/registry/<resource>/<ns>/<name>``."""
        if self.namespaced:
            return f"{self.key_prefix}{namespace}/{name}"
        return f"{self.key_prefix}{name}"

    def list_prefix(self, namespace: str | None = None) -> str:
        """Key prefix that lists all objects, or those of one namespace."""
        if self.namespaced and namespace:
            return f"{self.key_prefix}{namespace}/"
        return self.key_prefix


_ALL = "all"

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "Namespace", "namespaces", False, ("ns",), ("status", "finalize")),
    ResourceType("", "v1", "Node", "nodes", False, ("no",), ("status", "proxy"), etcd_prefix="minions"),
    ResourceType("", "v1", "Pod", "pods", True, ("po",),
                 ("status", "binding", "log", "eviction", "exec", "attach", "portforward", "ephemeralcontainers"),
                 categories=(_ALL,)),
    ResourceType("", "v1", "Service", "services", True, ("svc",), ("status", "proxy"),
                 categories=(_ALL,), etcd_prefix="services/specs"),
    ResourceType("", "v1", "Endpoints", "endpoints", True, ("ep",), etcd_prefix="services/endpoints"),
    ResourceType("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    ResourceType("", "v1", "Secret", "secrets", True),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), ("token",)),
    ResourceType("", "v1", "Event", "events", True, ("ev",)),
    ResourceType("", "v1", "Binding", "bindings", True, verbs=("create",)),
    ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    ResourceType("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status", "scale"),
                 categories=(_ALL,)),
    ResourceType("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale"),
                 categories=(_ALL,)),
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), ("status", "scale"),
                 categories=(_ALL,)),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("status",), categories=(_ALL,)),
    ResourceType("batch", "v1", "Job", "jobs", True, (), ("status",), categories=(_ALL,)),
    ResourceType("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True),
    ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
                 ("crd", "crds"), ("status",), categories=("api-extensions",),
                 etcd_prefix="apiextensions.k8s.io/customresourcedefinitions"),
    ResourceType("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), ("status",)),
    ResourceType("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    # reviews: create-only questions to the API server, answered and never stored
    ResourceType("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
                 verbs=("create",)),
    ResourceType("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False,
                 verbs=("create",)),
    ResourceType("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False,
                 verbs=("create",)),
    ResourceType("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", True,
                 verbs=("create",)),
    ResourceType("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False, verbs=("create",)),
    ResourceType("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False,
                 verbs=("create",)),
    # the aggregator's registrations of the group-versions above: generated, never stored
    ResourceType("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, verbs=("get", "list"),
                 etcd_prefix="apiregistration.k8s.io/apiservices"),
    # the resource metrics API (metrics-server's): measured by the kubelets, never stored
    ResourceType("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", False, verbs=("get", "list"),
                 etcd_prefix="metrics.k8s.io/nodes"),
    ResourceType("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", True, verbs=("get", "list"),
                 etcd_prefix="metrics.k8s.io/pods"),
)
METRICS_KINDS = frozenset({"NodeMetrics", "PodMetrics"})
REVIEW_KINDS = frozenset({"SelfSubjectAccessReview", "SelfSubjectRulesReview", "SubjectAccessReview",
                          "LocalSubjectAccessReview", "TokenReview", "SelfSubjectReview"})

_BY_GVR = {(r.group, r.version, r.resource): r for r in RESOURCES}
_BY_GVK = {(r.group, r.version, r.kind): r for r in RESOURCES}
# the resources of the CustomResourceDefinitions the API server holds, by the CRD's name; kept
# by netemu.apiserver.crds in step with the stored CRDs (one API server per process)
_CUSTOM: dict[str, tuple[ResourceType, ...]] = {}
_CUSTOM_GVR: dict[tuple[str, str, str], ResourceType] = {}
_CUSTOM_GVK: dict[tuple[str, str, str], ResourceType] = {}


def register_custom(crd_name: str, served: tuple[ResourceType, ...]) -> None:
    """Serve (or re-serve, after an update) the versions of one CRD; ``()`` stops serving it."""
    _CUSTOM.pop(crd_name, None)
    if served:
        _CUSTOM[crd_name] = served
    _CUSTOM_GVR.clear()
    _CUSTOM_GVK.clear()
    for rts in _CUSTOM.values():
        for r in rts:
            _CUSTOM_GVR.setdefault((r.group, r.version, r.resource), r)
            _CUSTOM_GVK.setdefault((r.group, r.version, r.kind), r)


def clear_custom() -> None:
    """Serve no CRD (an API server starting over a store registers the CRDs it holds)."""
    for name in list(_CUSTOM):
        register_custom(name, ())


def custom_resources() -> list[ResourceType]:
    return [r for rts in _CUSTOM.values() for r in rts]


def all_resources() -> list[ResourceType]:
    """Built-in resources, then the served versions of every CRD."""
    return [*RESOURCES, *custom_resources()]


def by_resource(group: str, version: str, resource: str) -> ResourceType | None:
    return _BY_GVR.get((group, version, resource)) or _CUSTOM_GVR.get((group, version, resource))


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    """Look up by an object's ``apiVersion`` and ``kind`` (None when not served)."""
    group, _, version = api_version.rpartition("/")
    return _BY_GVK.get((group, version, kind)) or _CUSTOM_GVK.get((group, version, kind))


def by_kind_name(kind: str) -> ResourceType | None:
    """Look up by kind alone ("Service"); kinds are unique across our groups."""
    for r in all_resources():
        if r.kind == kind:
            return r
    return None


_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple:
    """upstream's CompareKubeAwareVersionStrings as a sort key: GA before beta before alpha,
    higher numbers first, then versions that are not Kubernetes-like, alphabetically."""
    m = _VERSION.match(version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -major, -minor, "")


def group_versions() -> dict[str, list[str]]:
    """Served versions per API group ("" is the core group), the preferred version first."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    custom: dict[str, set[str]] = {}
    for r in custom_resources():
        if r.group not in out:
            custom.setdefault(r.group, set()).add(r.version)
    for group in sorted(custom):
        out[group] = sorted(custom[group], key=version_priority)
    return out


def resources_in(group: str, version: str) -> list[ResourceType]:
    return [r for r in all_resources() if r.group == group and r.version == version]
