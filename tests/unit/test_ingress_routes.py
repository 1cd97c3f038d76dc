"""The built-in ingress controller's routing (netemu/agent/runtime/ingress/routes.py): class
selection, host and path precedence as networking.k8s.io/v1 and ingress-nginx define them,
default backends, TLS hosts, endpoints; and the DefaultIngressClass admission."""

import asyncio
import base64

import pytest

from netemu.agent.runtime.ingress.routes import build, match, ours, service_endpoints, tls_pair, Route
from netemu.apiserver.ingressclass import DefaultIngressClass, default_class

CLASSES = [{"metadata": {"name": "netemu"}, "spec": {"controller": "k8s.io/ingress-nginx"}},
           {"metadata": {"name": "other"}, "spec": {"controller": "example.com/lb"}}]


def ing(name, rules=(), default=None, tls=(), created="2024-01-01T00:00:00Z", annotations=None, cls="netemu"):
    spec = {"rules": list(rules)}
    if cls:
        spec["ingressClassName"] = cls
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    if tls:
        spec["tls"] = list(tls)
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": created,
                         "annotations": annotations or {}}, "spec": spec}


def rule(host, *paths):
    r = {"http": {"paths": [{"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"number": 80}}}}
                            for p, t, s in paths]}}
    if host:
        r["host"] = host
    return r


def svc_of(table, host, path):
    backend, _ = table.route(host, path)
    return backend.service if backend else None


def test_class_selection():
    assert ours(ing("a"), CLASSES, "k8s.io/ingress-nginx", "netemu", False)
    assert not ours(ing("a", cls="other"), CLASSES, "k8s.io/ingress-nginx", "netemu", False)
    assert ours(ing("a", cls=None, annotations={"kubernetes.io/ingress.class": "netemu"}), CLASSES,
                "k8s.io/ingress-nginx", "netemu", False)
    assert not ours(ing("a", cls=None), CLASSES, "k8s.io/ingress-nginx", "netemu", False)
    assert ours(ing("a", cls=None), CLASSES, "k8s.io/ingress-nginx", "netemu", True)


def test_longest_path_wins_and_exact_beats_prefix_at_equal_length():
    routes = [Route("/", False, "root"), Route("/foo", False, "foo"), Route("/foo/bar", False, "foobar"),
              Route("/foo", True, "exact")]
    pick = lambda p: (match(routes, p) or Route("", False, None)).backend  # noqa: E731
    assert pick("/foo") == "exact"
    assert pick("/foo/") == "foo"                        # a trailing slash: not the Exact one
    assert pick("/foo/bar/baz") == "foobar"
    assert pick("/foobar") == "root"                     # Prefix matches whole elements only
    assert pick("/other") == "root"


def test_hosts_exact_before_wildcard_and_one_label_only():
    table = build([ing("a", [rule("*.example.com", ("/", "Prefix", "wild")), rule("a.example.com", ("/", "Prefix", "a"))])])
    assert svc_of(table, "a.example.com", "/") == "a"
    assert svc_of(table, "B.example.com:8080".split(":")[0], "/") == "wild"
    assert svc_of(table, "x.b.example.com", "/") is None
    assert svc_of(table, "example.com", "/") is None


def test_default_backends_host_rules_and_catch_all():
    table = build([ing("catch", default="fallback", created="2024-01-02T00:00:00Z"),
                   ing("shop", [rule("shop.example.com", ("/cart", "Prefix", "cart"))], default="shop-home"),
                   ing("anyhost", [rule(None, ("/status", "Exact", "status"))])])
    assert svc_of(table, "shop.example.com", "/cart/1") == "cart"
    assert svc_of(table, "shop.example.com", "/") == "shop-home"        # the Ingress's own defaultBackend
    assert svc_of(table, "unknown", "/status") == "status"               # a host-less rule
    assert svc_of(table, "unknown", "/x") == "fallback"                  # the catch-all
    assert svc_of(build([ing("x", [rule("a", ("/", "Prefix", "a"))])]), "b", "/") is None   # 404


def test_the_older_ingress_wins_a_duplicate_path():
    table = build([ing("new", [rule("h", ("/p", "Prefix", "new"))], created="2024-02-01T00:00:00Z"),
                   ing("old", [rule("h", ("/p", "Prefix", "old"))], created="2024-01-01T00:00:00Z")])
    assert svc_of(table, "h", "/p") == "old"


def test_tls_hosts_and_redirect_annotation():
    tls = [{"hosts": ["a.example.com"], "secretName": "a-tls"}]
    table = build([ing("a", [rule("a.example.com", ("/", "Prefix", "a")), rule("b.example.com", ("/", "Prefix", "b"))],
                       tls=tls)])
    assert table.servers["a.example.com"].tls_secret == ("default", "a-tls")
    assert table.servers["a.example.com"].ssl_redirect and table.servers["b.example.com"].tls_secret is None
    off = build([ing("a", [rule("a.example.com", ("/", "Prefix", "a"))], tls=tls,
                     annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "false"})])
    assert not off.servers["a.example.com"].ssl_redirect
    secret = {"type": "kubernetes.io/tls", "data": {"tls.crt": base64.b64encode(b"C").decode(),
                                                    "tls.key": base64.b64encode(b"K").decode()}}
    assert tls_pair(secret) == (b"C", b"K") and tls_pair({"type": "kubernetes.io/tls", "data": {}}) is None


def test_service_endpoints_ready_only_by_port_name_or_number():
    svc = {"spec": {"clusterIP": "10.96.0.9", "ports": [{"name": "http", "port": 80}, {"name": "admin", "port": 9000}]}}
    slices = [{"addressType": "IPv4", "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9001}],
               "endpoints": [{"addresses": ["10.244.1.2"], "conditions": {"ready": True}},
                             {"addresses": ["10.244.1.3"], "conditions": {"ready": False}}]}]
    assert service_endpoints(svc, slices, 80) == ([("10.244.1.2", 8080)], "10.96.0.9:80")
    assert service_endpoints(svc, slices, "admin") == ([("10.244.1.2", 9001)], "10.96.0.9:9000")
    assert service_endpoints(svc, slices, 81) == ([], None)
    assert service_endpoints(None, slices, 80) == ([], None)


class FakeStore:
    def __init__(self, items):
        self.items = items

    async def list(self, prefix):
        return type("L", (), {"items": self.items})()


def test_default_ingress_class_admission_fills_in_the_newest_default():
    default = lambda name, ts: {"metadata": {"name": name, "creationTimestamp": ts, "annotations":  # noqa: E731
                                             {"ingressclass.kubernetes.io/is-default-class": "true"}}}
    classes = [default("old", "2024-01-01T00:00:00Z"), default("new", "2024-03-01T00:00:00Z"),
               {"metadata": {"name": "plain", "creationTimestamp": "2025-01-01T00:00:00Z"}}]
    assert default_class(classes) == "new" and default_class(classes[2:]) is None
    hooks = DefaultIngressClass(FakeStore(classes))
    bare = ing("a", cls=None)
    asyncio.run(hooks.on_create(None, bare))
    assert bare["spec"]["ingressClassName"] == "new"
    legacy = ing("b", cls=None, annotations={"kubernetes.io/ingress.class": "x"})
    asyncio.run(hooks.on_create(None, legacy))
    assert "ingressClassName" not in legacy["spec"]


@pytest.mark.parametrize("mutate, field_, words", [
    (lambda p: p.update(pathType=None), "spec.rules[0].http.paths[0].pathType", "Required value: pathType must be specified"),
    (lambda p: p.update(path="x"), "spec.rules[0].http.paths[0].path", 'Invalid value: "x": must be an absolute path'),
    (lambda p: p.update(path="/a//b"), "spec.rules[0].http.paths[0].path", "must not contain '//'"),
    (lambda p: p.update(path="/a/.."), "spec.rules[0].http.paths[0].path", "cannot end with '/..'"),
    (lambda p: p["backend"]["service"].update(port={}), "spec.rules[0].http.paths[0].backend",
     "Required value: port name or number is required"),
    (lambda p: p["backend"]["service"].update(port={"name": "http", "number": 80}), "spec.rules[0].http.paths[0].backend",
     'Invalid value: "": cannot set both port name & port number'),
    (lambda p: p.update(backend={}), "spec.rules[0].http.paths[0].backend",
     'Invalid value: "": resource or service backend is required'),
])
def test_bad_ingresses_get_upstreams_words(mutate, field_, words):
    from netemu.api import kinds, strategy
    obj = ing("bad", [rule("a.example.com", ("/", "Prefix", "web"))])
    mutate(obj["spec"]["rules"][0]["http"]["paths"][0])
    got = {(c["field"], c["message"]) for c in strategy.validate(kinds.by_kind_name("Ingress"), obj)}
    assert any(f == field_ and words in m for f, m in got), got


def test_ingress_class_controller_is_a_domain_prefixed_path_and_immutable():
    from netemu.api import kinds, strategy
    rt = kinds.by_kind_name("IngressClass")
    bad = {"metadata": {"name": "c"}, "spec": {"controller": "nginx"}}
    assert [c["field"] for c in strategy.validate(rt, bad)] == ["spec.controller"]
    old = {"metadata": {"name": "c"}, "spec": {"controller": "k8s.io/a"}}
    new = {"metadata": {"name": "c"}, "spec": {"controller": "k8s.io/b"}}
    assert ("spec.controller", 'Invalid value: "k8s.io/b": field is immutable') in \
        {(c["field"], c["message"]) for c in strategy.validate_update(rt, old, new)}
