"""kube-proxy's service health server (kubernetes v1.32 pkg/proxy/healthcheck/service_health.go).

A LoadBalancer Service with externalTrafficPolicy Local gets a healthCheckNodePort; on every node
kube-proxy answers HTTP there with how many *ready local* endpoints the Service has: 200 when
some, 503 when none, so a cloud load balancer sends traffic only to nodes that can serve it
without a second hop. Upstream's e2e "should only target nodes with endpoints" and "should fail
health check node port if there are only terminating endpoints" query exactly this.

The proxier feeds it after each successful sync (as upstream's syncProxyRules does):
``sync_services`` with the ports of the current Service map, ``sync_endpoints`` with the
local-ready counts. Each port gets one small threaded HTTP listener while its Service needs it;
a port that cannot be bound is logged and tried again on the next sync.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping

from netemu.agent.proxy.model import ServiceName

log = logging.getLogger(__name__)


def health_check_ports(service_map: Mapping) -> dict[ServiceName, int]:
    """``ServicePortMap.HealthCheckNodePorts``: Service -> its health-check node port."""
    out: dict[ServiceName, int] = {}
    for spn, info in service_map.items():
        if info.health_check_node_port:
            out[ServiceName(spn.namespace, spn.name)] = info.health_check_node_port
    return out


def local_ready_endpoints(endpoints_map: Mapping) -> dict[ServiceName, int]:
    """``EndpointsMap.LocalReadyEndpoints``: ready endpoints on this node, summed over ports."""
    out: dict[ServiceName, int] = {}
    for spn, endpoints in endpoints_map.items():
        count = sum(1 for ep in endpoints if ep.is_local and ep.ready)
        if count:
            name = ServiceName(spn.namespace, spn.name)
            out[name] = out.get(name, 0) + count
    return out


def response(name: ServiceName, count: int, healthy: bool) -> tuple[int, dict[str, str], bytes]:
    """Upstream hcHandler.ServeHTTP: status, headers and the JSON body."""
    body = json.dumps({"service": {"namespace": name.namespace, "name": name.name},
                       "localEndpoints": count, "serviceProxyHealthy": healthy}, indent="\t")
    headers = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff",
               "X-Load-Balancing-Endpoint-Weight": str(count)}
    return (200 if count and healthy else 503), headers, body.encode()


class ServiceHealthServer:
    """One listener per health-check node port, answering from the latest counts."""

    def __init__(self, address: str = "0.0.0.0", healthy: Callable[[], bool] = lambda: True):
        self.address, self.healthy = address, healthy
        self._lock = threading.Lock()
        self._ports: dict[ServiceName, int] = {}
        self._counts: dict[ServiceName, int] = {}
        self._servers: dict[int, ThreadingHTTPServer] = {}

    def sync_services(self, ports: Mapping[ServiceName, int]) -> None:
        with self._lock:
            self._ports = dict(ports)
            wanted = set(self._ports.values())
            for port in [p for p in self._servers if p not in wanted]:
                self._close(port)
            for name, port in self._ports.items():
                if port not in self._servers:
                    self._open(name, port)

    def sync_endpoints(self, counts: Mapping[ServiceName, int]) -> None:
        with self._lock:
            self._counts = dict(counts)

    def answer(self, port: int) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            name = next((n for n, p in self._ports.items() if p == port), None)
            count = self._counts.get(name, 0) if name else 0
        if name is None:      # a request racing the listener's close (upstream: 500)
            return 500, {}, b""
        return response(name, count, self.healthy())

    def close(self) -> None:
        with self._lock:
            for port in list(self._servers):
                self._close(port)

    def _open(self, name: ServiceName, port: int) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                status, headers, body = owner.answer(port)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        try:
            server = ThreadingHTTPServer((self.address, port), Handler)
        except OSError as exc:   # upstream: an event, and another try on the next sync
            log.warning("health check for %s on port %d not served: %s", name, port, exc)
            return
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name=f"healthcheck-{port}", daemon=True).start()
        self._servers[port] = server
        log.info("serving health check for %s on port %d", name, port)

    def _close(self, port: int) -> None:
        server = self._servers.pop(port)
        server.shutdown()
        server.server_close()
