"""Questions the API server answers and never stores: access and rules reviews, token reviews,
``whoami``, and ServiceAccount TokenRequests (``kubectl auth can-i``, ``auth can-i --list``,
``auth whoami``, ``create token``).

Shapes and messages are upstream's (pkg/registry/authorization/*, pkg/registry/authentication/*,
pkg/registry/core/serviceaccount/storage/token.go). Each function takes the decoded request
object and returns the object to send back with its ``status`` filled in.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from netemu.api import errors, field, kinds
from netemu.apiserver.rbac import Attributes, User, split_rules
from netemu.apiserver.sa_token import MIN_EXPIRATION, InvalidToken

if TYPE_CHECKING:
    from netemu.apiserver.security import Security

Obj = dict[str, Any]
SA = kinds.by_resource("", "v1", "serviceaccounts")
BOUND_KINDS = {"Pod": kinds.by_resource("", "v1", "pods"), "Secret": kinds.by_resource("", "v1", "secrets"),
               "Node": kinds.by_resource("", "v1", "nodes")}
MAX_EXPIRATION = 1 << 32
# upstream's --service-account-extend-token-expiration (on by default): a pod-bound token asked
# for the kubelet's 3607 s is valid for a year, with a warnafter claim at the asked time, so
# clients that read their token file once keep working while the kubelet renews it
KUBELET_EXPIRATION, EXTENDED_EXPIRATION = 3607, 365 * 24 * 3600


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise errors.BadRequest("spec must be an object")
    return spec


def _answer(obj: Obj, status: Obj) -> Obj:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return {**obj, "metadata": {**meta, "creationTimestamp": None}, "status": status}


def attributes_from(user: User, spec: Obj, kind: str) -> Attributes:
    """spec.resourceAttributes / spec.nonResourceAttributes -> Attributes (exactly one)."""
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(res) == bool(non):
        raise errors.invalid(kind, "", [field.invalid(
            "spec.resourceAttributes", res, "exactly one of nonResourceAttributes or resourceAttributes must be specified")],
            group="authorization.k8s.io")
    if non:
        if not isinstance(non, dict):
            raise errors.BadRequest("spec.nonResourceAttributes must be an object")
        return Attributes(user, str(non.get("verb") or ""), resource_request=False, path=str(non.get("path") or ""))
    if not isinstance(res, dict):
        raise errors.BadRequest("spec.resourceAttributes must be an object")
    s = lambda k: str(res.get(k) or "")  # noqa: E731
    return Attributes(user, s("verb"), namespace=s("namespace"), api_group=s("group"), api_version=s("version"),
                      resource=s("resource"), subresource=s("subresource"), name=s("name"))


def subject_user(spec: Obj) -> User:
    name, groups = spec.get("user") or "", spec.get("groups") or []
    if not name and not groups:
        raise errors.invalid("SubjectAccessReview", "", [field.invalid(
            "spec.user", name, "at least one of user or group must be specified")], group="authorization.k8s.io")
    extra = spec.get("extra") or {}
    return User(str(name), tuple(str(g) for g in groups), str(spec.get("uid") or ""),
                tuple((str(k), tuple(map(str, v or []))) for k, v in extra.items()) if isinstance(extra, dict) else ())


async def access_review(sec: "Security", obj: Obj, user: User, kind: str, namespace: str | None) -> Obj:
    spec = _spec(obj)
    subject = user if kind == "SelfSubjectAccessReview" else subject_user(spec)
    a = attributes_from(subject, spec, kind)
    if kind == "LocalSubjectAccessReview" and a.resource_request and a.namespace != namespace:
        raise errors.invalid(kind, "", [field.invalid("spec.resourceAttributes.namespace", a.namespace,
                                                      "must match metadata.namespace")],
                             group="authorization.k8s.io")
    allowed, reason = await sec.authorizer.authorize(a)
    status: Obj = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return _answer(obj, status)


async def rules_review(sec: "Security", obj: Obj, user: User) -> Obj:
    namespace = str(_spec(obj).get("namespace") or "")
    rules, errs = sec.index.rules_for(user, namespace)
    extra = sec.extra_rules(user)
    resource, non_resource = split_rules(list(rules) + extra)
    status: Obj = {"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": bool(extra)}
    if errs:
        status["evaluationError"] = ", ".join(errs)
    return _answer(obj, status)


async def token_review(sec: "Security", obj: Obj) -> Obj:
    spec = _spec(obj)
    token, audiences = str(spec.get("token") or ""), list(spec.get("audiences") or [])
    try:
        who = await sec.authn.authenticate(f"Bearer {token}", None) if not audiences else \
            await sec.authn.token_user(token, audiences)
    except (errors.Unauthorized, InvalidToken) as exc:
        return _answer(obj, {"authenticated": False, "user": {},
                             "error": str(exc) if isinstance(exc, InvalidToken) else "invalid bearer token"})
    return _answer(obj, {"authenticated": True, "user": who.to_json(),
                         "audiences": audiences or list(sec.issuer.audiences)})


def self_subject_review(obj: Obj, user: User) -> Obj:
    return _answer(obj, {"userInfo": user.to_json()})


async def token_request(sec: "Security", obj: Obj, namespace: str, sa_name: str) -> Obj:
    """serviceaccounts/NAME/token: a JWT for the account, bound to a pod, secret or node."""
    spec = _spec(obj)
    expiration = spec.get("expirationSeconds", 3600)
    if not isinstance(expiration, int) or isinstance(expiration, bool):
        raise errors.BadRequest("spec.expirationSeconds must be an integer")
    if expiration < MIN_EXPIRATION or expiration > MAX_EXPIRATION:
        detail = ("may not specify a duration less than 10 minutes" if expiration < MIN_EXPIRATION
                  else "may not specify a duration larger than 2^32 seconds")
        raise errors.invalid("TokenRequest", sa_name, [field.invalid("spec.expirationSeconds", expiration, detail)],
                             group="authentication.k8s.io")
    sa = await sec.registry.get(SA, namespace, sa_name)
    bound: dict[str, tuple[str, str]] = {}
    ref = spec.get("boundObjectRef")
    if ref:
        if not isinstance(ref, dict) or ref.get("kind") not in BOUND_KINDS:
            raise errors.invalid("TokenRequest", sa_name, [field.not_supported(
                "spec.boundObjectRef.kind", (ref or {}).get("kind") if isinstance(ref, dict) else ref,
                ["Pod", "Secret", "Node"])], group="authentication.k8s.io")
        rt = BOUND_KINDS[ref["kind"]]
        target = await sec.registry.get(rt, namespace if rt.namespaced else None, str(ref.get("name") or ""))
        uid = (target.get("metadata") or {}).get("uid", "")
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.Conflict(f"the UID in the bound object reference ({ref['uid']}) does not match the UID "
                                  "in record. The object might have been deleted and then recreated")
        bound[ref["kind"].lower()] = (target["metadata"]["name"], uid)
        if ref["kind"] == "Pod":
            node = (target.get("spec") or {}).get("nodeName")
            if node:
                try:
                    n = await sec.registry.get(BOUND_KINDS["Node"], None, node)
                    bound["node"] = (node, (n.get("metadata") or {}).get("uid", ""))
                except errors.NotFound:
                    pass
            if (target.get("spec") or {}).get("serviceAccountName", "default") != sa_name:
                raise errors.BadRequest(f'cannot bind token for serviceaccount "{sa_name}" to pod running with '
                                        f'different serviceaccount name.')
    audiences = [str(a) for a in spec.get("audiences") or []] or list(sec.issuer.audiences)
    extended = expiration == KUBELET_EXPIRATION and "pod" in bound and audiences == list(sec.issuer.audiences)
    token, exp = sec.issuer.issue(namespace, sa_name, (sa.get("metadata") or {}).get("uid", ""),
                                  audiences=audiences, expiration=EXTENDED_EXPIRATION if extended else expiration,
                                  pod=bound.get("pod"), secret=bound.get("secret"), node=bound.get("node"),
                                  warn_after=expiration if extended else None)
    if extended:
        exp = int(exp - EXTENDED_EXPIRATION + expiration)       # the answer shows the asked expiry
    out_spec: Obj = {"audiences": audiences, "expirationSeconds": expiration,
                     "boundObjectRef": ref if ref else None}
    stamp = dt.datetime.fromtimestamp(exp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": sa_name, "namespace": namespace, "creationTimestamp": None},
            "spec": out_spec, "status": {"token": token, "expirationTimestamp": stamp}}
