"""ServiceAccount controller: every active namespace has a ``default`` ServiceAccount, and each
account a token Secret (type kubernetes.io/service-account-token, the pre-1.24 behaviour that
lab exercises still show; the token is random, not a signed JWT)."""

from __future__ import annotations

import base64
import secrets

from netemu.api import errors
from netemu.controllers.kube import Obj, is_deleting, name_of, ns_of, uid_of
from netemu.controllers.runtime import Controller, rt

TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"


def default_account(namespace: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}


def token_secret(sa: Obj, ca_pem: str = "", token: str | None = None) -> Obj:
    token = token or secrets.token_urlsafe(32)
    data = {"token": token, "namespace": ns_of(sa)}
    if ca_pem:
        data["ca.crt"] = ca_pem
    return {"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
            "metadata": {"name": f"{name_of(sa)}-token", "namespace": ns_of(sa),
                         "annotations": {SA_NAME_ANNOTATION: name_of(sa), SA_UID_ANNOTATION: uid_of(sa)}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def needs_token(sa: Obj, secrets_in_ns: list[Obj]) -> bool:
    return not any(s.get("type") == TOKEN_TYPE
                   and ((s.get("metadata") or {}).get("annotations") or {}).get(SA_NAME_ANNOTATION) == name_of(sa)
                   for s in secrets_in_ns)


class ServiceAccountController(Controller):
    name = "serviceaccount"
    service_account = "service-account-controller"
    kinds = ("Namespace", "ServiceAccount", "Secret")

    def setup(self) -> None:
        self.cache("Namespace").add_handler(lambda n: self.queue.add(name_of(n)),
                                            lambda o, n: self.queue.add(name_of(n)))
        self.cache("ServiceAccount").add_handler(lambda s: self.queue.add(ns_of(s)),
                                                 lambda o, n: None, lambda s: self.queue.add(ns_of(s)))
        self.cache("Secret").add_handler(on_delete=lambda s: self.queue.add(ns_of(s)))

    async def resync_all(self) -> None:
        for ns in self.cache("Namespace").list():
            self.queue.add(name_of(ns))

    async def sync(self, key: str) -> None:
        ns = self.cache("Namespace").get(key)
        if ns is None or is_deleting(ns) or (ns.get("status") or {}).get("phase") == "Terminating":
            return
        if self.cache("ServiceAccount").get("default", key) is None:
            try:
                await self.client.create(rt("ServiceAccount"), default_account(key), key)
            except errors.AlreadyExists:
                pass
            return  # the add event brings us back for the token
        for sa in self.cache("ServiceAccount").list(key):
            if needs_token(sa, self.cache("Secret").list(key)):
                try:
                    # upstream's token controller runs as the controller manager itself
                    await self.manager_client.create(rt("Secret"), token_secret(sa), key)
                except errors.AlreadyExists:
                    pass
