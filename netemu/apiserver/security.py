"""The API server's front door: authenticate, impersonate, authorize, admit (upstream's filter
chain WithAuthentication -> WithImpersonation -> WithAuthorization, and the NodeRestriction
admission plugin for node identities).

``Security.build`` wires it to a registry: the RBAC index fed by the registry's hooks, the
Node authorizer, the ServiceAccount token issuer. The admin's static token is the user
``kubernetes-admin`` in ``kubeadm:cluster-admins`` (bound to cluster-admin, as kubeadm's
admin.conf since 1.29). ``mode`` "AlwaysAllow" turns authorization off (upstream's flag of that
name), for comparison runs.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from aiohttp import web

from netemu.api import errors
from netemu.apiserver import routing
from netemu.apiserver.authn import ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, Authenticator, service_account_user
from netemu.apiserver.authz import RBAC_MODE, Authorizer, attributes, forbidden, rbac_hooks
from netemu.apiserver.nodeauth import NODE_RULES, NodeAuthorizer, NodeRestriction, node_name
from netemu.apiserver.policy import ADMIN_GROUP
from netemu.apiserver.rbac import SA_PREFIX, Attributes, RbacIndex, User
from netemu.apiserver.sa_token import TokenIssuer

ADMIN_USER = User("kubernetes-admin", (ADMIN_GROUP,))
USER_KEY: web.RequestKey[User] = web.RequestKey("netemu.user", User)
ATTRS_KEY: web.RequestKey[Attributes] = web.RequestKey("netemu.attributes", Attributes)


@dataclass
class Security:
    authn: Authenticator
    authorizer: Authorizer
    index: RbacIndex
    issuer: TokenIssuer
    registry: Any

    @classmethod
    def build(cls, registry, tokens: Mapping[str, User] | Iterable[str], issuer: TokenIssuer, *,
              mode: str = RBAC_MODE, anonymous: bool = True) -> "Security":
        """``tokens``: static bearer tokens (a plain iterable makes each the admin's)."""
        static = dict(tokens) if isinstance(tokens, Mapping) else {t: ADMIN_USER for t in tokens}
        index = RbacIndex()
        registry.hooks.update(rbac_hooks(registry.store, index))
        authn = Authenticator(static, issuer, registry.store, anonymous)
        authorizer = Authorizer(index, mode, NodeAuthorizer(registry.store))
        return cls(authn, authorizer, index, issuer, registry)

    # -- the filter chain ---------------------------------------------------------------------

    async def user_of(self, request: web.Request) -> User:
        """Authenticate, then apply Impersonate-* headers (each one authorized)."""
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        user = await self.authn.authenticate(request.headers.get("Authorization"), peercert)
        return await self.impersonate(user, request.headers)

    async def check(self, request: web.Request) -> tuple[User, Attributes]:
        user = await self.user_of(request)
        try:
            target = routing.parse(request.path)
        except errors.NotFound:
            target = None
        a = attributes(user, request.method, request.path, request.query, target)
        await self.authorizer.check(a)
        request[USER_KEY], request[ATTRS_KEY] = user, a
        return user, a

    def extra_rules(self, user: User) -> list[dict]:
        """Rules an authorizer other than RBAC grants (the Node authorizer's), for rules reviews."""
        return list(NODE_RULES) if node_name(user) else []

    async def admit(self, request: web.Request, target: routing.Target, obj: Any = None) -> None:
        """NodeRestriction for node identities (the body of a create, a store read for updates
        and deletes); nothing to do for anyone else."""
        a = request[ATTRS_KEY]
        if node_name(a.user) is None or a.verb in ("get", "list", "watch"):
            return
        if obj is None and a.verb == "create" and request.can_read_body:
            from netemu.apiserver import body
            raw = await request.read()
            obj = body.decode(raw, request.content_type) if raw.strip() else None
        current = None
        if target.name:
            try:
                current = await self.registry.get(target.rt, target.namespace, target.name)
            except errors.NotFound:
                current = None
        NodeRestriction.admit(a, obj if isinstance(obj, dict) else None, current)

    # -- impersonation ------------------------------------------------------------------------

    async def impersonate(self, user: User, headers: Mapping[str, str]) -> User:
        name = headers.get("Impersonate-User")
        groups = headers.getall("Impersonate-Group", []) if hasattr(headers, "getall") else []
        uid = headers.get("Impersonate-Uid")
        extra: dict[str, list[str]] = {}
        for key, value in headers.items():
            if key.lower().startswith("impersonate-extra-"):
                extra.setdefault(urllib.parse.unquote(key[len("impersonate-extra-"):]).lower(), []).append(value)
        if name is None:
            if groups or uid or extra:
                raise errors.BadRequest("requested impersonation of groups, uid or extra without impersonating a user")
            return user
        checks = [self._user_check(user, name)]
        checks += [Attributes(user, "impersonate", resource="groups", name=g) for g in groups]
        if uid:
            checks.append(Attributes(user, "impersonate", api_group="authentication.k8s.io", resource="uids", name=uid))
        for key, values in extra.items():
            checks += [Attributes(user, "impersonate", api_group="authentication.k8s.io", resource="userextras",
                                  subresource=key, name=v) for v in values]
        for a in checks:
            allowed, reason = await self.authorizer.authorize(a)
            if not allowed:
                raise forbidden(a, reason)
        if name.startswith(SA_PREFIX) and not groups:
            ns, _, sa = name[len(SA_PREFIX):].partition(":")
            return service_account_user(ns, sa, uid or "", _extra(extra))
        if name == ANONYMOUS.name:
            return User(name, tuple(groups) + (UNAUTHENTICATED,), uid or "", _extra(extra))
        return User(name, tuple(groups) + ((AUTHENTICATED,) if AUTHENTICATED not in groups else ()),
                    uid or "", _extra(extra))

    @staticmethod
    def _user_check(user: User, name: str) -> Attributes:
        if name.startswith(SA_PREFIX) and name.count(":") == 3:
            ns, _, sa = name[len(SA_PREFIX):].partition(":")
            return Attributes(user, "impersonate", namespace=ns, resource="serviceaccounts", name=sa)
        return Attributes(user, "impersonate", resource="users", name=name)


def _extra(extra: dict[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((k, tuple(v)) for k, v in sorted(extra.items()))
