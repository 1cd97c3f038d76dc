"""RBAC authorization (pure): who is bound to which rules, and whether a request is allowed.

Upstream's semantics (plugin/pkg/auth/authorizer/rbac/rbac.go and
pkg/apis/rbac/v1/evaluation_helpers.go at v1.32): a rule allows a request when its verbs,
apiGroups, resources (``pods``, ``pods/log``, ``*``, ``*/scale``) and resourceNames match, or for
a non-resource request its nonResourceURLs (exact or ending in ``*``). RoleBindings give their
rules in their own namespace, ClusterRoleBindings everywhere; subjects are Users, Groups and
ServiceAccounts (``system:serviceaccount:NS:NAME``). A ClusterRole with an ``aggregationRule``
has the union of the rules of the ClusterRoles its selectors match.

``RbacIndex`` holds the four kinds in memory (the API server feeds it from a store watch) and
caches each user's rules per namespace until the next RBAC change: the cost per request is a
dict lookup and a scan of that user's few rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from netemu.api import selectors

Obj = dict[str, Any]
SA_PREFIX = "system:serviceaccount:"
KINDS = ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")


@dataclass(frozen=True)
class User:
    """An authenticated user (upstream user.Info)."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def to_json(self) -> Obj:
        out: Obj = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra}
        return out


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do (upstream authorizer.Attributes)."""

    user: User
    verb: str
    resource_request: bool = True
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


def _has(values: Iterable[str] | None, wanted: str) -> bool:
    values = values or ()
    return "*" in values or wanted in values


def resource_matches(resources: Iterable[str] | None, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in resources or ():
        if r == "*" or r == combined:
            return True
        if subresource and r == "*/" + subresource:
            return True
    return False


def url_matches(urls: Iterable[str] | None, path: str) -> bool:
    for u in urls or ():
        if u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])):
            return True
    return False


def rule_allows(rule: Obj, a: Attributes) -> bool:
    if not _has(rule.get("verbs"), a.verb):
        return False
    if not a.resource_request:
        return url_matches(rule.get("nonResourceURLs"), a.path)
    if not _has(rule.get("apiGroups"), a.api_group):
        return False
    if not resource_matches(rule.get("resources"), a.resource, a.subresource):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def subject_applies(subject: Obj, user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return bool(ns) and user.name == f"{SA_PREFIX}{ns}:{name}"
    return False


@dataclass
class RbacIndex:
    """The RBAC objects of the cluster and each user's resolved rules."""

    cluster_roles: dict[str, Obj] = field(default_factory=dict)
    roles: dict[tuple[str, str], Obj] = field(default_factory=dict)
    cluster_bindings: dict[str, Obj] = field(default_factory=dict)
    bindings: dict[tuple[str, str], Obj] = field(default_factory=dict)
    revision: int = 0
    _cache: dict[tuple, tuple[tuple[Obj, ...], tuple[str, ...]]] = field(default_factory=dict)

    # -- keeping it current ------------------------------------------------------------------

    def _table(self, kind: str) -> dict:
        return {"ClusterRole": self.cluster_roles, "Role": self.roles,
                "ClusterRoleBinding": self.cluster_bindings, "RoleBinding": self.bindings}[kind]

    @staticmethod
    def _key(kind: str, obj: Obj) -> Any:
        md = obj.get("metadata") or {}
        return (md.get("namespace", ""), md.get("name", "")) if kind in ("Role", "RoleBinding") else md.get("name", "")

    def put(self, kind: str, obj: Obj) -> None:
        self._table(kind)[self._key(kind, obj)] = obj
        self._cache.clear()

    def remove(self, kind: str, obj: Obj) -> None:
        self._table(kind).pop(self._key(kind, obj), None)
        self._cache.clear()

    # -- resolution ---------------------------------------------------------------------------

    def cluster_role_rules(self, name: str, _seen: frozenset = frozenset()) -> list[Obj] | None:
        """A ClusterRole's rules, aggregated ones included; None when it does not exist."""
        role = self.cluster_roles.get(name)
        if role is None:
            return None
        rules = list(role.get("rules") or [])
        agg = role.get("aggregationRule") or {}
        for sel in agg.get("clusterRoleSelectors") or []:
            for other_name, other in self.cluster_roles.items():
                if other_name == name or other_name in _seen:
                    continue
                labels = (other.get("metadata") or {}).get("labels") or {}
                if selectors.label_selector_matches(sel, labels):
                    for rule in self.cluster_role_rules(other_name, _seen | {name}) or []:
                        if rule not in rules:
                            rules.append(rule)
        return rules

    def _ref_rules(self, ref: Obj, namespace: str) -> tuple[list[Obj], str]:
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind == "ClusterRole":
            rules = self.cluster_role_rules(name)
            missing = f'clusterrole.rbac.authorization.k8s.io "{name}" not found'
        else:
            role = self.roles.get((namespace, name))
            rules = None if role is None else list(role.get("rules") or [])
            missing = f'role.rbac.authorization.k8s.io "{name}" not found'
        return (rules, "") if rules is not None else ([], missing)

    def rules_for(self, user: User, namespace: str) -> tuple[tuple[Obj, ...], tuple[str, ...]]:
        """Every rule that applies to ``user`` in ``namespace`` ("" = cluster scope), and the
        errors met on the way (bindings to roles that do not exist)."""
        key = (user.name, user.groups, namespace)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        rules: list[Obj] = []
        errs: list[str] = []
        for b in self.cluster_bindings.values():
            if any(subject_applies(s, user, "") for s in b.get("subjects") or []):
                got, err = self._ref_rules(b.get("roleRef") or {}, "")
                rules += got
                errs += [err] if err else []
        if namespace:
            for (ns, _), b in self.bindings.items():
                if ns == namespace and any(subject_applies(s, user, ns) for s in b.get("subjects") or []):
                    got, err = self._ref_rules(b.get("roleRef") or {}, ns)
                    rules += got
                    errs += [err] if err else []
        out = (tuple(rules), tuple(errs))
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = out
        return out

    def authorize(self, a: Attributes) -> tuple[bool, str]:
        """(allowed, reason); the reason names missing roles the way upstream's does."""
        rules, errs = self.rules_for(a.user, a.namespace if a.resource_request else "")
        for rule in rules:
            if rule_allows(rule, a):
                return True, ""
        return False, ("RBAC: " + ", ".join(errs)) if errs else ""


def split_rules(rules: Iterable[Obj]) -> tuple[list[Obj], list[Obj]]:
    """(resourceRules, nonResourceRules) in SelfSubjectRulesReview's shape."""
    res, non = [], []
    for r in rules:
        if r.get("nonResourceURLs"):
            non.append({"verbs": list(r.get("verbs") or []), "nonResourceURLs": list(r["nonResourceURLs"])})
        if r.get("resources"):
            out = {"verbs": list(r.get("verbs") or []), "apiGroups": list(r.get("apiGroups") or []),
                   "resources": list(r["resources"])}
            if r.get("resourceNames"):
                out["resourceNames"] = list(r["resourceNames"])
            res.append(out)
    return res, non
