"""kube-proxy's metrics on every node, sampled while an experiment runs: rule syncs as events.

Each node's agent serves upstream's kube-proxy metrics on 127.0.0.1:10249 inside the node's
network namespace. A ``NodeScraper`` is a thread that enters that namespace (setns applies to
the calling thread only, so nothing else of this process moves) and reads /metrics a few times a
second. From consecutive samples it derives what the experiment records: each rule sync (when
``..._last_timestamp_seconds`` moves: its time, how many syncs and their mean duration), the
pending changes (0 on every node = the rules show the API's state: the ``wait: true`` barrier),
and the rule count. A node whose agent is down reads as ``up: False``.

Parsing (``sample_of``) and the deltas (``sync_events``) are pure.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

METRICS_URL = "http://127.0.0.1:10249/metrics"
CLONE_NEWNET = 0x40000000
PERIOD = 0.25


@dataclass
class Sample:
    t: float                          # wall clock (time.time()) of the read
    up: bool
    syncs: float = 0.0                # kubeproxy_sync_proxy_rules_duration_seconds_count
    sync_seconds: float = 0.0         # ..._sum
    last_sync: float = 0.0            # kubeproxy_sync_proxy_rules_last_timestamp_seconds
    pending: float = 0.0              # endpoint + service changes not yet in the kernel
    rules: float = 0.0                # kubeproxy_sync_proxy_rules_iptables_total, all tables
    programming_count: float = 0.0
    programming_sum: float = 0.0


def sample_of(text: str, t: float) -> Sample:
    """One /metrics page -> Sample (missing metrics read as 0)."""
    s = Sample(t, True)
    for family in text_string_to_metric_families(text):
        for m in family.samples:
            name, value = m.name, m.value
            if name == "kubeproxy_sync_proxy_rules_duration_seconds_count":
                s.syncs = value
            elif name == "kubeproxy_sync_proxy_rules_duration_seconds_sum":
                s.sync_seconds = value
            elif name == "kubeproxy_sync_proxy_rules_last_timestamp_seconds":
                s.last_sync = value
            elif name in ("kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                          "kubeproxy_sync_proxy_rules_service_changes_pending"):
                s.pending += value
            elif name == "kubeproxy_sync_proxy_rules_iptables_total":
                s.rules += value
            elif name == "kubeproxy_network_programming_duration_seconds_count":
                s.programming_count = value
            elif name == "kubeproxy_network_programming_duration_seconds_sum":
                s.programming_sum = value
    return s


def sync_events(node: str, samples: list[Sample]) -> list[dict]:
    """A rule-sync event for each sample whose last-sync time moved: when (wall clock), how
    many syncs since the previous sample, their mean duration, the rule count after."""
    out, prev = [], None
    for s in samples:
        if not s.up:
            continue
        if prev is not None and s.last_sync > prev.last_sync and s.syncs >= prev.syncs:
            n = s.syncs - prev.syncs
            out.append({"node": node, "time": s.last_sync, "syncs": int(n),
                        "duration": (s.sync_seconds - prev.sync_seconds) / n if n else None,
                        "rules": int(s.rules),
                        "programming_mean": ((s.programming_sum - prev.programming_sum)
                                             / (s.programming_count - prev.programming_count))
                        if s.programming_count > prev.programming_count else None})
        prev = s
    return out


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


class NodeScraper(threading.Thread):
    """Samples one node's kube-proxy metrics until ``stop()``; ``samples`` grows as it reads."""

    def __init__(self, node: str, netns: str, period: float = PERIOD):
        super().__init__(name=f"scrape-{node}", daemon=True)
        self.node, self.netns, self.period = node, netns, period
        self.samples: list[Sample] = []
        self.error: str | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            _setns(f"/run/netns/{self.netns}")
        except OSError as exc:
            self.error = str(exc)
            return
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never a proxy
        while not self._halt.is_set():
            t = time.time()
            try:
                with opener.open(METRICS_URL, timeout=2) as answer:
                    sample = sample_of(answer.read().decode(), t)
            except (OSError, ValueError):
                sample = Sample(t, False)
            with self._lock:
                self.samples.append(sample)
            self._halt.wait(self.period)

    def latest(self) -> Sample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    def stop(self) -> None:
        self._halt.set()


@dataclass
class Scrapers:
    """One scraper per worker node (a cluster.json ``nodes`` map)."""

    nodes: dict[str, str]                       # node -> netns
    threads: dict[str, NodeScraper] = field(default_factory=dict)

    def start(self) -> Scrapers:
        for node, netns in self.nodes.items():
            self.threads[node] = NodeScraper(node, netns)
            self.threads[node].start()
        return self

    def stop(self) -> None:
        for t in self.threads.values():
            t.stop()
        for t in self.threads.values():
            t.join(5)

    def nothing_pending(self, since: float) -> bool:
        """Every node whose agent answers has, in a sample read after ``since``, no change
        waiting to be synced (and has synced at least once)."""
        for t in self.threads.values():
            s = t.latest()
            if s is None or s.t < since or (s.up and (s.pending or not s.last_sync)):
                return False
        return True

    def events(self) -> list[dict]:
        out = []
        for node, t in self.threads.items():
            with t._lock:
                samples = list(t.samples)
            out += sync_events(node, samples)
        return sorted(out, key=lambda e: e["time"])

    def availability(self) -> dict[str, list[tuple[float, bool]]]:
        """Per node, when its metrics answered (to mark an agent down in the report)."""
        out = {}
        for node, t in self.threads.items():
            with t._lock:
                out[node] = [(s.t, s.up) for s in t.samples]
        return out
