"""One HTTP request through the ingress controller: route, pick an endpoint, forward, answer.

What a client sees is ingress-nginx's: a routed request is proxied with ``Host`` kept and
``X-Request-ID``, ``X-Real-IP``, ``X-Forwarded-For/-Host/-Port/-Proto/-Scheme`` set; a TLS
host's plain-HTTP request is redirected (308); no route is nginx's 404 page, a backend Service
without ready endpoints (or missing) 503 at once, endpoints that refuse 502, a backend that does
not answer in time 504. Each request is logged in ingress-nginx's ``upstreaminfo`` format.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from ..httpserve import Request, Response
from .routes import Backend, Table
from .upstream import TRIES, Pool, RoundRobin, UpstreamError

REQUEST_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                         "upgrade", "host", "content-length", "x-forwarded-for", "x-real-ip",
                         "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto", "x-forwarded-scheme",
                         "x-scheme", "x-request-id"})


def request_host(value: str) -> str:
    """The Host header without its port (``[v6]`` kept whole)."""
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def nginx_page(status: int, reason: str) -> Response:
    body = (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    return Response(status, body.encode(), headers={"Content-Type": "text/html"}, reason=reason)


@dataclass
class Stats:
    """nginx_ingress_controller_requests: (ingress, namespace, service, status) -> count."""

    requests: dict = field(default_factory=dict)

    def count(self, backend: Backend | None, status: int) -> None:
        key = (backend.ingress.rpartition("/")[2] if backend else "", backend.namespace if backend else "",
               backend.service if backend else "", str(status))
        self.requests[key] = self.requests.get(key, 0) + 1


class Proxy:
    """``table()`` gives the current routing table, ``endpoints(backend)`` its (ip, port) list."""

    def __init__(self, table, endpoints, pool: Pool, log=None):
        self.table, self.endpoints, self.pool, self.log = table, endpoints, pool, log
        self.balancer = RoundRobin()
        self.stats = Stats()

    def handler(self, scheme: str, port: int):
        return lambda req: self.handle(req, scheme, port)

    async def handle(self, req: Request, scheme: str, port: int) -> Response:
        start = time.monotonic()
        host = request_host(req.headers.get("host", ""))
        table: Table = self.table()
        backend, server = table.route(host, req.path)
        upstream, answer_status = "-", 0
        if scheme == "http" and server is not None and server.tls_secret and server.ssl_redirect:
            resp = nginx_page(308, "Permanent Redirect")
            resp.headers["Location"] = f"https://{host}{req.target}"
        elif backend is None:
            resp = nginx_page(404, "Not Found")
        else:
            targets = self.endpoints(backend)
            if not targets:
                resp = nginx_page(503, "Service Temporarily Unavailable")
            else:
                resp, upstream, answer_status = await self._forward(req, backend, targets, host, scheme, port)
        self.stats.count(backend, resp.status)
        if self.log is not None:
            self._access_log(req, resp, backend, upstream, answer_status, time.monotonic() - start)
        return resp

    async def _forward(self, req: Request, backend: Backend, targets: list, host: str, scheme: str, port: int):
        request_id = uuid.uuid4().hex
        client = req.peer[0] if req.peer else ""
        lines = [f"{req.method} {req.target} HTTP/1.1", f"Host: {req.headers.get('host', host)}",
                 f"X-Request-ID: {request_id}", f"X-Real-IP: {client}", f"X-Forwarded-For: {client}",
                 f"X-Forwarded-Host: {host}", f"X-Forwarded-Port: {port}", f"X-Forwarded-Proto: {scheme}",
                 f"X-Forwarded-Scheme: {scheme}", f"X-Scheme: {scheme}"]
        lines += [f"{k}: {v}" for k, v in req.headers.items() if k not in REQUEST_HOP]
        if req.body or req.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(req.body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        last = UpstreamError(502, "no endpoint tried")
        tried = []
        for ip, tport in self.balancer.order(backend.key, targets)[:TRIES]:
            tried.append(f"{ip}:{tport}")
            try:
                answer = await self.pool.request(ip, tport, head, req.body, req.method)
            except UpstreamError as exc:
                last = exc
                if exc.status == 504 and "reading" in str(exc):
                    break                  # the request may have been served: not retried
                continue
            return (Response(answer.status, answer.body, raw_headers=answer.headers, reason=answer.reason),
                    ", ".join(tried), answer.status)
        if self.log is not None:
            self.log(f"[error] {last} (request_id {request_id})")
        status = last.status
        return nginx_page(status, "Bad Gateway" if status == 502 else "Gateway Time-out"), ", ".join(tried), status

    def _access_log(self, req: Request, resp: Response, backend: Backend | None, upstream: str,
                    upstream_status: int, took: float) -> None:
        name = f"{backend.namespace}-{backend.service}-{backend.port}" if backend else "upstream-default-backend"
        self.log(f'{req.peer[0] if req.peer else "-"} - - "{req.method} {req.target} {req.version}" {resp.status} '
                 f'{len(resp.body)} "{req.headers.get("referer", "-")}" "{req.headers.get("user-agent", "-")}" '
                 f'{len(req.body)} {took:.3f} [{name}] [] {upstream} {len(resp.body)} {took:.3f} '
                 f'{upstream_status or "-"}')
