"""kube-proxy's metrics under upstream's names (pkg/proxy/metrics/metrics.go), Prometheus text.

Each proxy gets its own registry (several proxies live in one test process; a global registry
would mix their numbers) and can serve it on ``/metrics`` like upstream's --metrics-bind-address
(default 127.0.0.1:10249). Buckets are upstream's, so dashboards built for a real node read ours.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

DEFAULT_BIND_ADDRESS = "127.0.0.1:10249"


def _exponential(start: float, factor: float, count: int) -> list[float]:
    return [start * factor ** i for i in range(count)]


def _linear(start: float, width: float, count: int) -> list[float]:
    return [start + width * i for i in range(count)]


# upstream: metrics.ExponentialBuckets(0.001, 2, 15)
SYNC_BUCKETS = _exponential(0.001, 2, 15)
# upstream: merge(LinearBuckets(0.25, 0.25, 2), LinearBuckets(1, 1, 59),
#                 LinearBuckets(60, 5, 12), LinearBuckets(120, 30, 7))
PROGRAMMING_BUCKETS = sorted(set(_linear(0.25, 0.25, 2) + _linear(1, 1, 59)
                                 + _linear(60, 5, 12) + _linear(120, 30, 7)))


class ProxyMetrics:
    """The metric objects one proxier updates, in its own CollectorRegistry: the ones every mode
    exports, plus those upstream's RegisterMetrics registers for ``mode`` alone (iptables: the
    restore failures and rule counts; nftables: its sync and cleanup failure counters; ipvs: the
    iptables restore failures, and not the full/partial sync latencies, which it does not split)."""

    def __init__(self, mode: str = "iptables") -> None:
        self.mode = mode
        r = self.registry = CollectorRegistry()
        split = r if mode != "ipvs" else None       # an unregistered metric works, unexposed
        self.sync_duration = Histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds", buckets=SYNC_BUCKETS, registry=r)
        self.sync_full_duration = Histogram(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs", buckets=SYNC_BUCKETS, registry=split)
        self.sync_partial_duration = Histogram(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs", buckets=SYNC_BUCKETS, registry=split)
        self.network_programming = Histogram(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds", buckets=PROGRAMMING_BUCKETS, registry=r)
        self.last_timestamp = Gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced", registry=r)
        self.no_local_endpoints = Gauge(
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
            "Number of services with a Local traffic policy and no endpoints", ["traffic_policy"], registry=r)
        self.endpoint_changes = Counter(
            "kubeproxy_sync_proxy_rules_endpoint_changes",
            "Cumulative proxy rules EndpointSlice changes", registry=r)
        self.service_changes = Counter(
            "kubeproxy_sync_proxy_rules_service_changes",
            "Cumulative proxy rules Service changes", registry=r)
        self.endpoint_changes_pending = Gauge(
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
            "Pending proxy rules EndpointSlice changes", registry=r)
        self.service_changes_pending = Gauge(
            "kubeproxy_sync_proxy_rules_service_changes_pending",
            "Pending proxy rules Service changes", registry=r)
        self.last_queued_timestamp = Gauge(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued", registry=r)
        if mode == "nftables":
            self.nftables_sync_failures = Counter(
                "kubeproxy_sync_proxy_rules_nftables_sync_failures",
                "Total number of syncProxyRules failures in nftables mode", registry=r)
            self.nftables_cleanup_failures = Counter(
                "kubeproxy_sync_proxy_rules_nftables_cleanup_failures",
                "Total number of cleanup failures in nftables mode", registry=r)
            return
        self.restore_failures = Counter(
            "kubeproxy_sync_proxy_rules_iptables_restore_failures",
            "Cumulative proxy iptables restore failures", registry=r)
        if mode == "ipvs":
            return
        self.rules_total = Gauge(
            "kubeproxy_sync_proxy_rules_iptables_total",
            "Total number of iptables rules owned by kube-proxy", ["table"], registry=r)
        self.partial_restore_failures = Counter(
            "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures",
            "Cumulative proxy iptables partial restore failures", registry=r)
        self.rules_last = Gauge(
            "kubeproxy_sync_proxy_rules_iptables_last",
            "Number of iptables rules written by kube-proxy in last sync", ["table"], registry=r)

    def observe_failure(self, full: bool) -> None:
        """A failed sync, counted under the mode's own name for it."""
        if self.mode == "nftables":
            self.nftables_sync_failures.inc()
            return
        self.restore_failures.inc()
        if not full and self.mode != "ipvs":
            self.partial_restore_failures.inc()

    def observe_sync(self, seconds: float, full: bool) -> None:
        self.sync_duration.observe(seconds)
        (self.sync_full_duration if full else self.sync_partial_duration).observe(seconds)

    def observe_programming(self, trigger_times: dict, now: float | None = None) -> None:
        """Network programming latency: from each EndpointSlice's trigger time to now (a sync
        that put it in the kernel), as upstream does after a successful sync."""
        now = time.time() if now is None else now
        for times in trigger_times.values():
            for t in times:
                if now >= t:
                    self.network_programming.observe(now - t)

    def text(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)


def parse_bind_address(value: str) -> tuple[str, int]:
    """"HOST:PORT" (or "[v6]:PORT") -> (host, port), with a clear error for anything else."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"metrics bind address {value!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


class MetricsServer:
    """``/metrics`` (and ``/healthz``) over HTTP from a daemon thread; ``close()`` stops it."""

    def __init__(self, metrics: ProxyMetrics, bind_address: str = DEFAULT_BIND_ADDRESS):
        host, port = parse_bind_address(bind_address)
        handler = _handler_for(metrics)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


def _handler_for(metrics: ProxyMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, ctype, code = metrics.text(), CONTENT_TYPE_LATEST, 200
            elif path == "/healthz":
                body, ctype, code = b"ok\n", "text/plain", 200
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            log.debug("metrics: " + fmt, *args)

    return Handler
