"""kube-proxy's health server (upstream pkg/proxy/healthcheck/proxier_health.go): ``/healthz``
and ``/livez`` on --healthz-bind-address (default 0.0.0.0:10256), separate from /metrics.

Healthy, as upstream: the proxier has not been asked for a sync that it failed to do in time,
i.e. no sync was queued after the last successful one, or the last success is younger than
the health timeout (2 x the sync period, upstream's default with a 30 s period: 60 s). Before
the first sync (informers not yet listed) a queued sync counts as pending: a kube-proxy that
never manages to program its node turns unhealthy after the timeout, like upstream's.
The answer is upstream's JSON (lastUpdated, currentTime, nodeHealthy), 200 or 503.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from netemu.agent.proxy.metrics import parse_bind_address

log = logging.getLogger(__name__)
DEFAULT_BIND_ADDRESS = "0.0.0.0:10256"


def healthy(last_queued: float, last_synced: float, started: float, now: float, timeout: float) -> bool:
    """Pure: upstream's rule. Times are epoch seconds (0 = never)."""
    if last_queued <= last_synced:
        return True
    return now - max(last_synced, started, last_queued) < timeout


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %z") if t else ""


class HealthzServer:
    """Serves ``state()`` -> (last queued, last synced) epoch seconds from a daemon thread."""

    def __init__(self, state: Callable[[], tuple[float, float]], node_name: str, timeout: float,
                 bind_address: str = DEFAULT_BIND_ADDRESS):
        host, port = parse_bind_address(bind_address)
        self.state, self.node_name, self.timeout = state, node_name, timeout
        self.started = time.time()
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="healthz", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def answer(self) -> tuple[int, bytes]:
        queued, synced = self.state()
        now = time.time()
        ok = healthy(queued, synced, self.started, now, self.timeout)
        body = {"lastUpdated": _rfc3339(synced), "currentTime": _rfc3339(now), "nodeName": self.node_name,
                "nodeHealthy": ok, "nodeEligible": True}
        return (200 if ok else 503), json.dumps(body).encode()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?", 1)[0] in ("/healthz", "/livez"):
                    code, body = server.answer()
                    ctype = "application/json"
                else:
                    code, body, ctype = 404, b"404 page not found\n", "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args) -> None:
                log.debug("healthz: " + fmt, *args)

        return Handler
