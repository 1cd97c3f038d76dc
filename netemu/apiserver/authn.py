"""Who is asking: X.509 client certificates, static bearer tokens, ServiceAccount JWTs, anonymous.

Upstream's authenticator union, in its order: a client certificate signed by the cluster CA
(CN = user, O = groups, as kubeadm's admin.conf and kubelet.conf), then the bearer token -- one
of the static tokens of the state dir (the admin's) or a ServiceAccount JWT we signed whose
ServiceAccount (and bound pod or secret) still exists with the same uid -- and without
credentials the anonymous user. A token that is presented but valid for nobody is 401.
Every authenticated user is also in ``system:authenticated``; ServiceAccounts in
``system:serviceaccounts`` and ``system:serviceaccounts:NS``.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import Any

from netemu.api import errors, kinds
from netemu.apiserver.rbac import SA_PREFIX, User
from netemu.apiserver.sa_token import InvalidToken, TokenIssuer
from netemu.store.base import Store

AUTHENTICATED, UNAUTHENTICATED = "system:authenticated", "system:unauthenticated"
ANONYMOUS = User("system:anonymous", (UNAUTHENTICATED,))
SA = kinds.by_resource("", "v1", "serviceaccounts")
PODS = kinds.by_resource("", "v1", "pods")
SECRETS = kinds.by_resource("", "v1", "secrets")


def with_authenticated(user: User) -> User:
    if AUTHENTICATED in user.groups or user.name == ANONYMOUS.name:
        return user
    return User(user.name, user.groups + (AUTHENTICATED,), user.uid, user.extra)


def service_account_user(namespace: str, name: str, uid: str = "",
                         extra: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> User:
    return User(f"{SA_PREFIX}{namespace}:{name}",
                ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED), uid, extra)


def user_from_cert(peercert: dict[str, Any] | None) -> User | None:
    """CN and O of a verified client certificate (ssl's getpeercert() form)."""
    if not peercert:
        return None
    cn, orgs = "", []
    for rdn in peercert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    return with_authenticated(User(cn, tuple(orgs))) if cn else None


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


@dataclass
class Authenticator:
    """``static``: token -> user (the admin token); ``issuer`` signs and checks SA tokens."""

    static: dict[str, User]
    issuer: TokenIssuer | None = None
    store: Store | None = None
    anonymous: bool = True
    _verified: dict[str, dict] = field(default_factory=dict)   # token -> claims whose signature was checked

    async def authenticate(self, authorization: str | None, peercert: dict | None) -> User:
        user = user_from_cert(peercert)
        if user is not None:
            return user
        token = bearer(authorization)
        if token is None:                  # no bearer token (upstream: the next authenticator)
            if not self.anonymous:
                raise errors.Unauthorized("Unauthorized")
            return ANONYMOUS
        for known, who in self.static.items():
            if hmac.compare_digest(token.encode(), known.encode()):
                return with_authenticated(who)
        if self.issuer is not None and token.count(".") == 2:
            try:
                return await self.token_user(token)
            except InvalidToken:
                pass
        raise errors.Unauthorized("Unauthorized")

    async def token_user(self, token: str, audiences: list[str] | None = None) -> User:
        """The ServiceAccount user of a valid JWT; InvalidToken otherwise (TokenReview's answer).
        The signature check (the costly part) is remembered until the token expires; that its
        ServiceAccount and bound objects still exist is checked on every request, as upstream."""
        claims = self._verified.get(token) if audiences is None else None
        if claims is None or time.time() >= claims["exp"]:
            claims = self.issuer.verify(token, audiences)
            if audiences is None:
                if len(self._verified) > 10000:
                    self._verified.clear()
                self._verified[token] = claims
        return await self._check_bound(claims)

    async def _get(self, rt, namespace: str, ref: dict) -> dict | None:
        try:
            obj = await self.store.get(rt.key(namespace, ref.get("name", "")))
        except errors.NotFound:
            return None
        return obj if (obj.get("metadata") or {}).get("uid") == ref.get("uid") else None

    async def _check_bound(self, claims: dict) -> User:
        """upstream's validator: the ServiceAccount, and the pod or secret the token is bound
        to, must still exist with the uid in the token."""
        k8s = claims["kubernetes.io"]
        ns, sa = k8s.get("namespace", ""), k8s["serviceaccount"]
        extra: list[tuple[str, tuple[str, ...]]] = []
        if self.store is not None:
            if await self._get(SA, ns, sa) is None:
                raise InvalidToken(f"service account {ns}/{sa.get('name')} has been deleted")
            for key, rt in (("pod", PODS), ("secret", SECRETS)):
                ref = k8s.get(key)
                if ref is None:
                    continue
                obj = await self._get(rt, ns, ref)
                if obj is None:
                    raise InvalidToken(f"{key} {ns}/{ref.get('name')} has been deleted")
                if key == "pod" and (obj.get("metadata") or {}).get("deletionTimestamp"):
                    raise InvalidToken(f"pod {ns}/{ref.get('name')} is being deleted")
        for key in ("pod", "node"):
            ref = k8s.get(key)
            if ref:
                extra += [(f"authentication.kubernetes.io/{key}-name", (ref.get("name", ""),)),
                          (f"authentication.kubernetes.io/{key}-uid", (ref.get("uid", ""),))]
        if claims.get("jti"):
            extra.append(("authentication.kubernetes.io/credential-id", (f"JTI={claims['jti']}",)))
        return service_account_user(ns, sa.get("name", ""), sa.get("uid", ""), tuple(extra))
