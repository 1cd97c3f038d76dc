"""The ingress controller's routing table: Ingress objects to (host, path) -> backend (pure).

Semantics (networking.k8s.io/v1 and ingress-nginx's, v1.12):
- Which Ingresses: ``spec.ingressClassName`` naming an IngressClass whose ``spec.controller`` is
  this controller's ``--controller-class`` (or naming ``--ingress-class`` itself), or the legacy
  ``kubernetes.io/ingress.class`` annotation equal to ``--ingress-class``; an Ingress with no
  class only with ``--watch-ingress-without-class`` (the API server's DefaultIngressClass
  admission normally fills the default class in at creation).
- Hosts: an exact host beats a wildcard ``*.example.com``, which matches exactly one more label;
  a rule without host, and any unknown host, goes to the default server.
- Paths: the longest matching path wins; at equal length Exact beats Prefix. Prefix matches
  whole path elements (``/foo`` matches ``/foo`` and ``/foo/bar``, not ``/foobar``); a trailing
  ``/`` is ignored. ImplementationSpecific is treated as Prefix. The same host+path+type in two
  Ingresses: the older Ingress wins (ingress-nginx keeps the first one it sees, oldest first).
- A host with no matching path uses its Ingress's ``spec.defaultBackend`` if it has one; the
  default server (and a host without one) uses the catch-all's: the oldest Ingress that has a
  defaultBackend and no rules; else the controller answers 404 itself ("default backend - 404").
- TLS: ``spec.tls[].hosts`` get the certificate of ``secretName`` (type kubernetes.io/tls) for
  SNI; a TLS host's plain-HTTP requests are redirected to https (308), unless the Ingress says
  ``nginx.ingress.kubernetes.io/ssl-redirect: "false"`` (ingress-nginx's default is on).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

PATH_RANK = {"Exact": 1, "Prefix": 0, "ImplementationSpecific": 0}
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
SSL_REDIRECT = "nginx.ingress.kubernetes.io/ssl-redirect"
SERVICE_UPSTREAM = "nginx.ingress.kubernetes.io/service-upstream"
DEFAULT_SERVER = "_"


@dataclass(frozen=True)
class Backend:
    namespace: str
    service: str
    port: int | str                     # the Service port's number or name
    service_upstream: bool = False      # balance through the ClusterIP, not over endpoints
    ingress: str = ""                   # ns/name of the Ingress that set it (logs, metrics)

    @property
    def key(self) -> str:
        return f"{self.namespace}-{self.service}-{self.port}"


@dataclass(frozen=True)
class Route:
    path: str
    exact: bool
    backend: Backend


@dataclass
class Server:
    host: str
    routes: list[Route] = field(default_factory=list)
    default: Backend | None = None         # this host's Ingress spec.defaultBackend
    tls_secret: tuple[str, str] | None = None     # (namespace, name)
    ssl_redirect: bool = True


@dataclass
class Table:
    servers: dict[str, Server] = field(default_factory=dict)     # exact hosts and wildcards
    default: Backend | None = None                                # the catch-all's backend

    def server_for(self, host: str) -> Server | None:
        host = host.lower().rstrip(".")
        if host in self.servers:
            return self.servers[host]
        head, _, rest = host.partition(".")
        if rest and f"*.{rest}" in self.servers:
            return self.servers[f"*.{rest}"]
        return None

    def route(self, host: str, path: str) -> tuple[Backend | None, Server | None]:
        """The backend for a request (None: the default backend's 404) and the server matched:
        the host's server (else the default server), its longest matching path, else its
        root: its Ingress's defaultBackend, else the catch-all's."""
        server = self.server_for(host) or self.servers.get(DEFAULT_SERVER)
        if server is None:
            return self.default, None
        hit = match(server.routes, path)
        if hit is not None:
            return hit.backend, server
        return server.default or self.default, server


def match(routes: list[Route], path: str) -> Route | None:
    """The longest matching path; Exact before Prefix at equal length."""
    best, best_key = None, None
    for r in routes:
        if r.exact:
            ok = path == r.path
        else:
            ok = prefix_match(r.path, path)
        if ok:
            key = (len(r.path.rstrip("/") or "/"), r.exact)
            if best_key is None or key > best_key:
                best, best_key = r, key
    return best


def prefix_match(prefix: str, path: str) -> bool:
    """Element-wise prefix: ``/foo`` matches ``/foo``, ``/foo/`` and ``/foo/bar``, not ``/foobar``."""
    p = prefix.rstrip("/")
    if not p:
        return True
    return path == p or path.startswith(p + "/")


def creation_key(obj: dict) -> tuple:
    meta = obj.get("metadata") or {}
    return meta.get("creationTimestamp") or "", meta.get("namespace") or "", meta.get("name") or ""


def ours(ing: dict, classes: list[dict], controller: str, ingress_class: str, without_class: bool) -> bool:
    spec, meta = ing.get("spec") or {}, ing.get("metadata") or {}
    name = spec.get("ingressClassName")
    if name:
        if name == ingress_class:
            return True
        return any((c.get("metadata") or {}).get("name") == name and (c.get("spec") or {}).get("controller") == controller
                   for c in classes)
    annotation = (meta.get("annotations") or {}).get(CLASS_ANNOTATION)
    if annotation is not None:
        return annotation == ingress_class
    return without_class


def backend_of(ing: dict, spec: dict | None) -> Backend | None:
    svc = (spec or {}).get("service")
    if not svc or not svc.get("name"):
        return None
    port = svc.get("port") or {}
    meta = ing.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return Backend(meta.get("namespace") or "default", svc["name"],
                   port.get("number") if port.get("number") is not None else port.get("name", ""),
                   annotations.get(SERVICE_UPSTREAM, "").lower() == "true",
                   f"{meta.get('namespace')}/{meta.get('name')}")


def build(ingresses: list[dict]) -> Table:
    """The table of the Ingresses this controller serves (already filtered by class)."""
    table = Table()
    seen: set[tuple[str, str, bool]] = set()
    for ing in sorted(ingresses, key=creation_key):
        spec, meta = ing.get("spec") or {}, ing.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        default = backend_of(ing, spec.get("defaultBackend"))
        if default is not None and not spec.get("rules") and table.default is None:
            table.default = default
        redirect = (meta.get("annotations") or {}).get(SSL_REDIRECT, "true").lower() != "false"
        tls_hosts = {h.lower(): t.get("secretName") for t in spec.get("tls") or [] for h in t.get("hosts") or []}
        for rule in spec.get("rules") or []:
            host = (rule.get("host") or DEFAULT_SERVER).lower()
            server = table.servers.get(host)
            if server is None:
                server = table.servers[host] = Server(host, default=None if host == DEFAULT_SERVER else default)
            if host in tls_hosts and server.tls_secret is None and tls_hosts[host]:
                server.tls_secret = (ns, tls_hosts[host])
                server.ssl_redirect = redirect
            for p in (rule.get("http") or {}).get("paths") or []:
                backend = backend_of(ing, p.get("backend"))
                if backend is None:
                    continue
                path = p.get("path") or "/"
                exact = p.get("pathType") == "Exact"
                if (host, path, exact) in seen:
                    continue
                seen.add((host, path, exact))
                server.routes.append(Route(path, exact, backend))
    return table


def tls_pair(secret: dict | None) -> tuple[bytes, bytes] | None:
    """(certificate PEM, key PEM) of a kubernetes.io/tls Secret; None when it has not both."""
    if not secret or secret.get("type", "kubernetes.io/tls") not in ("kubernetes.io/tls", "Opaque"):
        return None
    data = secret.get("data") or {}
    try:
        cert, key = base64.b64decode(data.get("tls.crt") or ""), base64.b64decode(data.get("tls.key") or "")
    except ValueError:
        return None
    return (cert, key) if cert and key else None


def service_endpoints(svc: dict | None, slices: list[dict], port: int | str) -> tuple[list[tuple[str, int]], str | None]:
    """The ready (ip, targetPort) pairs behind a Service port, and the ClusterIP:port to use
    instead with service-upstream; ([], None) when the Service or its port does not exist."""
    if not svc:
        return [], None
    spec = svc.get("spec") or {}
    sport = next((p for p in spec.get("ports") or []
                  if (isinstance(port, int) and p.get("port") == port) or (isinstance(port, str) and p.get("name") == port)),
                 None)
    if sport is None:
        return [], None
    name = sport.get("name") or ""
    out = []
    for s in slices:
        if s.get("addressType") not in ("IPv4", None):
            continue
        target = next((p.get("port") for p in s.get("ports") or [] if (p.get("name") or "") == name), None)
        if target is None:
            continue
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            out += [(ip, int(target)) for ip in ep.get("addresses") or []]
    cip = spec.get("clusterIP")
    clusterip = f"{cip}:{sport.get('port')}" if cip and cip != "None" else None
    return sorted(set(out)), clusterip
