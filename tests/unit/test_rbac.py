"""RBAC, ServiceAccount tokens, reviews, impersonation and node identities, against an in-process
API server with the default policy. Rule semantics follow upstream's
pkg/apis/rbac/v1/evaluation_helpers.go and plugin/pkg/auth/authorizer/rbac at v1.32; the 403
texts its responsewriters.Forbidden and the NodeRestriction admission plugin."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from netemu.api import errors, kinds
from netemu.apiserver import rbac
from netemu.apiserver.rbac import Attributes, RbacIndex, User
from netemu.apiserver.sa_token import InvalidToken
from netemu.testing.apiserver import api_server

R = "rbac.authorization.k8s.io"
PODS = kinds.by_resource("", "v1", "pods")
CM = kinds.by_resource("", "v1", "configmaps")
SA = kinds.by_resource("", "v1", "serviceaccounts")
SVC = kinds.by_resource("", "v1", "services")
NODES = kinds.by_resource("", "v1", "nodes")
LEASES = kinds.by_resource("coordination.k8s.io", "v1", "leases")
ROLES = kinds.by_resource(R, "v1", "roles")
BINDINGS = kinds.by_resource(R, "v1", "rolebindings")
CRB = kinds.by_resource(R, "v1", "clusterrolebindings")
CR = kinds.by_resource(R, "v1", "clusterroles")


# -- pure rule semantics -------------------------------------------------------------------------

def test_rules_match_verbs_groups_resources_subresources_names_and_urls():
    u = User("jane")
    rule = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "pods/log"], "resourceNames": ["web"]}
    assert rbac.rule_allows(rule, Attributes(u, "get", resource="pods", name="web"))
    assert not rbac.rule_allows(rule, Attributes(u, "get", resource="pods", name="db"))
    assert not rbac.rule_allows(rule, Attributes(u, "list", resource="pods"))
    assert rbac.rule_allows(rule, Attributes(u, "get", resource="pods", subresource="log", name="web"))
    assert not rbac.rule_allows(rule, Attributes(u, "get", resource="pods", subresource="exec", name="web"))
    assert not rbac.rule_allows(rule, Attributes(u, "get", api_group="apps", resource="pods", name="web"))
    scale = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/scale"]}
    assert rbac.rule_allows(scale, Attributes(u, "update", api_group="apps", resource="deployments", subresource="scale"))
    assert not rbac.rule_allows(scale, Attributes(u, "update", api_group="apps", resource="deployments"))
    urls = {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}
    assert rbac.rule_allows(urls, Attributes(u, "get", resource_request=False, path="/apis/apps/v1"))
    assert not rbac.rule_allows(urls, Attributes(u, "get", resource_request=False, path="/api"))
    assert not rbac.rule_allows(urls, Attributes(u, "get", resource="pods"))       # URL rules are not resource rules


def test_bindings_subjects_and_aggregation():
    idx = RbacIndex()
    idx.put("ClusterRole", {"metadata": {"name": "agg"}, "aggregationRule": {
        "clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}})
    idx.put("ClusterRole", {"metadata": {"name": "part", "labels": {"x": "y"}},
                            "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["secrets"]}]})
    idx.put("RoleBinding", {"metadata": {"name": "b", "namespace": "team"}, "roleRef": {"kind": "ClusterRole", "name": "agg"},
                            "subjects": [{"kind": "ServiceAccount", "name": "bot"}, {"kind": "Group", "name": "devs"}]})
    bot = User("system:serviceaccount:team:bot")
    assert idx.authorize(Attributes(bot, "list", namespace="team", resource="secrets"))[0]
    assert not idx.authorize(Attributes(bot, "list", namespace="other", resource="secrets"))[0]
    assert idx.authorize(Attributes(User("x", ("devs",)), "list", namespace="team", resource="secrets"))[0]
    idx.put("ClusterRoleBinding", {"metadata": {"name": "gone"}, "roleRef": {"kind": "ClusterRole", "name": "nope"},
                                   "subjects": [{"kind": "User", "name": "jane"}]})
    assert idx.authorize(Attributes(User("jane"), "get", resource="pods")) == (
        False, 'RBAC: clusterrole.rbac.authorization.k8s.io "nope" not found')


# -- in-process API server with the default policy ------------------------------------------------

OPENED: list = []          # clients made by _as, closed after each scenario


def run(tmp_path, scenario):
    async def main():
        async with api_server(tmp_path, rbac_policy=True) as srv:
            try:
                await scenario(srv)
            finally:
                while OPENED:
                    await OPENED.pop().close()
    asyncio.run(asyncio.wait_for(main(), 60))


async def sa_client(srv, ns: str, name: str, **spec):
    await srv.client.create(SA, {"metadata": {"name": name, "namespace": ns}}, ns)
    out = await srv.client.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
                                   body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                         "spec": spec})
    client = srv.client.with_token(out["status"]["token"])
    OPENED.append(client)
    return client, out


def test_service_account_token_forbidden_until_a_rolebinding(tmp_path):
    async def scenario(srv):
        c = srv.client
        bot, answer = await sa_client(srv, "default", "bot")
        claims = jwt.decode(answer["status"]["token"], options={"verify_signature": False})
        assert claims["sub"] == "system:serviceaccount:default:bot" and claims["exp"] - claims["iat"] == 3600
        assert jwt.get_unverified_header(answer["status"]["token"])["alg"] == "RS256"
        with pytest.raises(errors.Forbidden) as exc:
            await bot.list(PODS, "default")
        assert exc.value.message == ('pods is forbidden: User "system:serviceaccount:default:bot" cannot list '
                                     'resource "pods" in API group "" in the namespace "default"')
        rev = await srv.store.current_revision()
        with pytest.raises(errors.Forbidden):
            await bot.create(CM, {"metadata": {"name": "x"}}, "default")
        assert await srv.store.current_revision() == rev                   # a refused write changes nothing
        await c.create(BINDINGS, {"metadata": {"name": "bot-view", "namespace": "default"},
                                  "roleRef": {"apiGroup": R, "kind": "ClusterRole", "name": "view"},
                                  "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "default"}]})
        assert (await bot.list(PODS, "default")).items == []               # the very next request
        with pytest.raises(errors.Forbidden):
            await bot.list(PODS, "kube-system")
        with pytest.raises(errors.Forbidden):
            await bot.create(CM, {"metadata": {"name": "x"}}, "default")   # view cannot write
        await c.delete(SA, "bot", "default")
        with pytest.raises(errors.Unauthorized):                           # its tokens die with it
            await bot.list(PODS, "default")
        await bot.close()
    run(tmp_path, scenario)


def test_tokens_expired_tampered_foreign_audience_and_bound_pod(tmp_path):
    async def scenario(srv):
        c, issuer = srv.client, srv.security.issuer
        sa = await c.create(SA, {"metadata": {"name": "app", "namespace": "default"}}, "default")
        uid = sa["metadata"]["uid"]
        old, _ = issuer.issue("default", "app", uid, expiration=600, now=time.time() - 700)
        with pytest.raises(InvalidToken, match="expired"):
            issuer.verify(old)
        good, _ = issuer.issue("default", "app", uid)
        head, body, sig = good.split(".")
        tampered = ".".join([head, body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB"), sig])
        other_aud, _ = issuer.issue("default", "app", uid, audiences=["vault"])
        for token in (old, tampered, other_aud, "a.b.c", good + "x"):
            with pytest.raises(errors.Unauthorized):
                client = c.with_token(token)
                OPENED.append(client)
                await client.list(PODS, "default")
        review = await c.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body={
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": good}})
        assert review["status"]["authenticated"] and review["status"]["user"]["username"] == \
            "system:serviceaccount:default:app"
        assert set(review["status"]["user"]["groups"]) == {"system:serviceaccounts", "system:serviceaccounts:default",
                                                           "system:authenticated"}
        review = await c.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body={
            "kind": "TokenReview", "spec": {"token": other_aud, "audiences": ["vault"]}})
        assert review["status"]["authenticated"] and review["status"]["audiences"] == ["vault"]
        bad = await c.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body={
            "kind": "TokenReview", "spec": {"token": tampered}})
        assert bad["status"]["authenticated"] is False
        pod = await c.create(PODS, {"metadata": {"name": "p", "namespace": "default"}, "spec": {
            "serviceAccountName": "app", "containers": [{"name": "c", "image": "busybox"}]}})
        bound = await c.request("POST", "/api/v1/namespaces/default/serviceaccounts/app/token", body={
            "kind": "TokenRequest", "spec": {"expirationSeconds": 600, "boundObjectRef": {
                "kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod["metadata"]["uid"]}}})
        claims = jwt.decode(bound["status"]["token"], options={"verify_signature": False})
        assert claims["kubernetes.io"]["pod"] == {"name": "p", "uid": pod["metadata"]["uid"]}
        as_pod = c.with_token(bound["status"]["token"])
        OPENED.append(as_pod)
        who = await as_pod.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                   body={"kind": "SelfSubjectReview"})
        assert who["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
        await c.delete(PODS, "p", "default")
        with pytest.raises(errors.Unauthorized):                           # bound to a pod that is gone
            await as_pod.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                 body={"kind": "SelfSubjectReview"})
        with pytest.raises(errors.Invalid, match="less than 10 minutes"):
            await c.request("POST", "/api/v1/namespaces/default/serviceaccounts/app/token",
                            body={"kind": "TokenRequest", "spec": {"expirationSeconds": 10}})
        with pytest.raises(errors.NotFound):
            await c.request("POST", "/api/v1/namespaces/default/serviceaccounts/ghost/token",
                            body={"kind": "TokenRequest", "spec": {}})
        for t in (as_pod,):
            await t.close()
    run(tmp_path, scenario)


def test_access_and_rules_reviews_and_impersonation(tmp_path):
    async def scenario(srv):
        c = srv.client
        await c.create(BINDINGS, {"metadata": {"name": "jane-edit", "namespace": "default"},
                                  "roleRef": {"apiGroup": R, "kind": "ClusterRole", "name": "edit"},
                                  "subjects": [{"kind": "User", "apiGroup": R, "name": "jane"}]})

        async def sar(user, verb, resource, ns="default", group=""):
            out = await c.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body={
                "kind": "SubjectAccessReview", "spec": {"user": user, "resourceAttributes": {
                    "verb": verb, "resource": resource, "namespace": ns, "group": group}}})
            return out["status"]["allowed"]
        assert await sar("jane", "create", "deployments", group="apps")
        assert not await sar("jane", "create", "rolebindings", group=R)          # edit is not admin
        assert not await sar("jane", "list", "pods", ns="kube-system")
        assert not await sar("bob", "get", "pods")
        jane = _as(c, "jane")
        assert (await jane.list(PODS, "default")).items == []
        rules = await jane.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", body={
            "kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}})
        assert any("deployments" in r["resources"] and "create" in r["verbs"] for r in rules["status"]["resourceRules"])
        assert {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]} in \
            rules["status"]["nonResourceRules"]
        bot, _ = await sa_client(srv, "default", "bot")
        await c.create(BINDINGS, {"metadata": {"name": "bot-edit", "namespace": "default"},
                                  "roleRef": {"apiGroup": R, "kind": "ClusterRole", "name": "edit"},
                                  "subjects": [{"kind": "ServiceAccount", "name": "bot"}]})
        with pytest.raises(errors.Forbidden) as exc:
            await _as(bot, "bob").list(PODS, "default")
        assert exc.value.message == ('users "bob" is forbidden: User "system:serviceaccount:default:bot" cannot '
                                     'impersonate resource "users" in API group "" at the cluster scope')
        await c.create(SA, {"metadata": {"name": "helper", "namespace": "default"}}, "default")
        with pytest.raises(errors.Forbidden) as exc:                       # edit may impersonate SAs
            await _as(bot, "system:serviceaccount:default:helper").list(PODS, "default")
        assert 'User "system:serviceaccount:default:helper" cannot list' in exc.value.message
        await bot.close()
        ssar = await jane.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body={
            "kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": {
                "verb": "delete", "resource": "secrets", "namespace": "default"}}})
        assert ssar["status"]["allowed"] is True and ssar["metadata"]["creationTimestamp"] is None
        await jane.close()
    run(tmp_path, scenario)


def _as(client, user):
    """A client impersonating ``user`` (the admin may; others need the impersonate verb)."""
    other = client.with_token(client.token)
    other._headers["Impersonate-User"] = user
    OPENED.append(other)
    return other


def test_node_identity_may_touch_only_its_own_objects(tmp_path):
    async def scenario(srv):
        c = srv.client
        for n in ("n1", "n2"):
            await c.create(NODES, {"metadata": {"name": n}})
        await c.create(PODS, {"metadata": {"name": "mine", "namespace": "default"}, "spec": {
            "nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                                               "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}]}})
        await c.create(PODS, {"metadata": {"name": "theirs", "namespace": "default"}, "spec": {
            "nodeName": "n2", "containers": [{"name": "c", "image": "busybox"}]}})
        await c.create(CM, {"metadata": {"name": "cfg", "namespace": "default"}, "data": {"k": "v"}})
        await c.create(CM, {"metadata": {"name": "other", "namespace": "default"}, "data": {"k": "v"}})
        node = _as(c, "system:node:n1")
        node._headers["Impersonate-Group"] = "system:nodes"
        await node.patch(NODES, "n1", {"metadata": {"labels": {"a": "b"}}})
        await node.patch(PODS, "mine", {"status": {"phase": "Running"}}, "default", subresource="status")
        assert (await node.get(CM, "cfg", "default"))["data"] == {"k": "v"}
        rev = await srv.store.current_revision()
        refusals = [
            (node.patch(NODES, "n2", {"metadata": {"labels": {"a": "b"}}}),
             'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'),
            (node.patch(PODS, "theirs", {"status": {"phase": "Failed"}}, "default", subresource="status"),
             'pods "theirs" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself'),
            (node.delete(PODS, "theirs", "default"),
             'pods "theirs" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself'),
            (node.create(LEASES, {"metadata": {"name": "n2"}}, "kube-node-lease"),
             'leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node'),
            (node.patch(SVC, "kubernetes", {"metadata": {"labels": {"a": "b"}}}, "default"),
             'services "kubernetes" is forbidden: User "system:node:n1" cannot patch resource "services" in API group "" in the namespace "default"'),
            (node.get(CM, "other", "default"),
             'configmaps "other" is forbidden: User "system:node:n1" cannot get resource "configmaps" in API group "" in the namespace "default": no relationship found between node \'n1\' and this object'),
        ]
        for call, message in refusals:
            with pytest.raises(errors.Forbidden) as exc:
                await call
            assert exc.value.message == message
        assert await srv.store.current_revision() == rev
        await node.create(LEASES, {"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}}, "kube-node-lease")
        await node.close()
    run(tmp_path, scenario)
