"""Hostile input: thousands of malformed, oversized, unauthorised and random requests.

Each request goes on its own connection to an in-process API server with the default policy;
the suite demands no 5xx, no dropped connection (every request gets an HTTP answer) and, for
every refused request (4xx), a store whose revision did not move. Seeded, so a failure replays.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import aiohttp

from netemu.api import kinds
from netemu.testing.apiserver import api_server

SEED, ROUNDS = 15, 12           # ROUNDS x ~250 requests
CM = kinds.by_resource("", "v1", "configmaps")
SA = kinds.by_resource("", "v1", "serviceaccounts")
PATHS = ["/api/v1/namespaces/default/configmaps", "/api/v1/namespaces/default/configmaps/cfg",
         "/api/v1/namespaces/default/pods", "/api/v1/namespaces/default/services", "/apis/apps/v1/deployments",
         "/apis/apps/v1/namespaces/default/deployments/web/scale", "/api/v1/nodes", "/api/v1/namespaces/nope/pods",
         "/api/v1/namespaces/default/serviceaccounts/bot/token", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
         "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "/api/v1/namespaces/default/pods/p/log",
         "/api/v1/namespaces/default/pods/p/status", "/api/v1/namespaces/kube-system", "/openapi/v3/api/v1",
         "/api/v1/watch/namespaces/default/configmaps", "/apis/nope/v1/things", "/api/v9/pods", "/%00/..//",
         "/api/v1/namespaces/default/configmaps/" + "x" * 300]
CONTENT = ["application/json", "application/yaml", "application/merge-patch+json", "application/json-patch+json",
           "application/strategic-merge-patch+json", "application/apply-patch+yaml", "text/plain",
           "application/vnd.kubernetes.protobuf", "", "multipart/form-data; boundary=x"]
QUERIES = ["", "?limit=abc", "?limit=-1", "?labelSelector=a%20in%20(", "?fieldSelector=spec.nope=1",
           "?resourceVersion=xyz", "?watch=true&timeoutSeconds=abc", "?dryRun=Sometimes", "?fieldValidation=Loose",
           "?propagationPolicy=Sideways", "?continue=garbage", "?labelSelector=" + "a" * 5000,
           "?watch=1&resourceVersion=1&timeoutSeconds=1", "?gracePeriodSeconds=1e9"]


def random_value(rng: random.Random, depth: int = 0):
    choice = rng.randrange(8 if depth < 3 else 5)
    if choice == 0:
        return rng.randrange(-2**40, 2**40)
    if choice == 1:
        return "".join(rng.choice("ab-_./:{}[]\\\"\x00é") for _ in range(rng.randrange(12)))
    if choice == 2:
        return rng.choice([None, True, False, 1.5e308, -0.0])
    if choice == 3:
        return rng.choice(["", "metadata", "spec", "status", "kind", "apiVersion"])
    if choice == 4:
        return []
    if choice == 5:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["metadata", "spec", "data", "kind", "apiVersion", "name", "op", "path", "value", "from",
                        "finalizers", "labels", "ownerReferences", "ports", "selector", "x"]): random_value(rng, depth + 1)
            for _ in range(rng.randrange(5))}


def bodies(rng: random.Random, tokens: dict[str, str]):
    """(method, path, headers, body) of one hostile request."""
    method = rng.choice(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "BREW"])
    path = rng.choice(PATHS) + rng.choice(QUERIES)
    if "watch" in path:                     # a watch that is allowed streams: let it end at once
        path += ("&" if "?" in path else "?") + "timeoutSeconds=1"
    kind = rng.randrange(10)
    if kind == 0:
        body = b"{" * rng.randrange(1, 50000)                             # unbalanced, deep
    elif kind == 1:
        body = b"x" * (3 * 1024 * 1024 + rng.randrange(1, 1000))            # over the 3 MiB limit
    elif kind == 2:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))  # binary noise
    elif kind == 3:
        body = json.dumps([{"op": rng.choice(["add", "remove", "replace", "move", "copy", "test", "x"]),
                            "path": rng.choice(["/data/a", "/metadata/name", "", "/", "/spec/0", "/~2"]),
                            "from": rng.choice(["/data", "/x"]), "value": random_value(rng)}
                           for _ in range(rng.randrange(4))]).encode()
    elif kind == 4:
        body = "a: [\n  - &x {b: *x}\n".encode() + b": : :" * rng.randrange(20)   # broken YAML, aliases
    else:
        body = json.dumps(random_value(rng)).encode()
    who = rng.choice(["admin", "admin", "bot", "anonymous", "wrong", "expired", "tampered", "garbage"])
    headers = {"Content-Type": rng.choice(CONTENT)}
    if who != "anonymous":
        headers["Authorization"] = "Bearer " + tokens[who]
    if rng.random() < 0.05:
        headers["Impersonate-User"] = rng.choice(["system:admin", "bob", "system:serviceaccount:default:bot"])
        headers["Impersonate-Group"] = rng.choice(["system:masters", "x"])
    return method, path, headers, body


def test_hostile_requests_get_4xx_keep_the_connection_and_change_nothing(tmp_path):
    async def main():
        async with api_server(tmp_path, rbac_policy=True) as srv:
            c = srv.client
            await c.create(CM, {"metadata": {"name": "cfg", "namespace": "default"}, "data": {"a": "b"}})
            await c.create(SA, {"metadata": {"name": "bot", "namespace": "default"}}, "default")
            issuer = srv.security.issuer
            sa = await c.get(SA, "bot", "default")
            good, _ = issuer.issue("default", "bot", sa["metadata"]["uid"])
            expired, _ = issuer.issue("default", "bot", sa["metadata"]["uid"], expiration=600, now=time.time() - 900)
            head, body, sig = good.split(".")
            tokens = {"admin": srv.token, "bot": good, "expired": expired, "wrong": "not-a-token",
                      "tampered": f"{head}.{body[:-3]}AAA.{sig}", "garbage": "a.b.c"}
            rng = random.Random(SEED)
            counts: dict[int, int] = {}
            refused = 0
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)) as s:
                for _ in range(ROUNDS * 250):
                    method, path, headers, body = bodies(rng, tokens)
                    before = await srv.store.current_revision()
                    try:
                        async with s.request(method, srv.url + path, data=body, headers=headers,
                                             params=None, allow_redirects=False) as resp:
                            await resp.read()
                            code = resp.status
                    except aiohttp.ClientError as exc:
                        raise AssertionError(f"dropped: {method} {path} {headers} -> {exc!r}") from None
                    counts[code] = counts.get(code, 0) + 1
                    assert code < 500, f"{method} {path} {headers} {body[:200]!r} -> {code}"
                    if code >= 400:
                        refused += 1
                        assert await srv.store.current_revision() == before, f"refused but wrote: {method} {path}"
            print("answers by status:", dict(sorted(counts.items())))
            assert refused > ROUNDS * 150, counts                     # mostly refused, as it should be
            assert (await c.get(CM, "cfg", "default"))["metadata"]["name"] == "cfg"
    asyncio.run(asyncio.wait_for(main(), 280))
