"""The registry of kinds the cluster serves: one row per resource, read by every layer.

The store derives its keys from it (upstream's etcd layout), the API server its routes and
discovery documents, kubectl its short names, the client its URLs. Adding a kind is one row here
plus its defaults and validation in the object model.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True),
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


def by_resource(group: str, version: str, resource: str) -> ResourceType | None:
    return _BY_GVR.get((group, version, resource))


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    """Look up by an object's ``apiVersion`` and ``kind`` (None when not served)."""
    group, _, version = api_version.rpartition("/")
    return _BY_GVK.get((group, version, kind))


def by_kind_name(kind: str) -> ResourceType | None:
    """Look up by kind alone ("Service"); kinds are unique across our groups."""
    for r in RESOURCES:
        if r.kind == kind:
            return r
    return None


def group_versions() -> dict[str, list[str]]:
    """Served versions per API group ("" is the core group)."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def resources_in(group: str, version: str) -> list[ResourceType]:
    return [r for r in RESOURCES if r.group == group and r.version == version]
