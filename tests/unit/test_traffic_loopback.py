"""The traffic generator on loopback, no root: the built-in agnhost netexec as backend (the app a
pod runs), worker processes started by the real TrafficRun, and small socket servers made here
for each failure kind. Every request goes to 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import csv
import json
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from netemu.traffic.generator import Generator, Recorder
from netemu.traffic.run import Scope, TrafficRun
from netemu.traffic.spec import Job, LoadSpec, SpecError, Target

LOCAL = Scope.of([])


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def netexec():
    http, udp = free_port(), free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen([sys.executable, "-m", "netemu.testing.netexec", "backend-1",
                             f"--http-port={http}", f"--udp-port={udp}"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield {"http": http, "udp": udp}
    finally:
        proc.terminate()
        proc.wait(10)


def go(target: Target, spec: LoadSpec, **kw):
    return asyncio.run(TrafficRun(target, spec, scope=LOCAL, **kw).run())


def consistent(r) -> None:
    """The series adds up to the totals, whatever the run."""
    assert sum(s.ok for s in r.series) == r.ok
    assert sum(s.error_count for s in r.series) == r.error_count
    assert sum(sum(s.endpoints.values()) for s in r.series) == r.ok
    assert sum(s.connections for s in r.series) == r.connections
    assert r.latency["count"] == r.ok


def test_http_counts_latency_and_series(netexec):
    r = go(Target("127.0.0.1", netexec["http"]), LoadSpec(requests=400, concurrency=4),
           expected=["backend-1", "backend-2"])
    consistent(r)
    assert r.ok == 400 and r.errors == {} and r.connections == 400
    assert r.endpoints == {"backend-1": 400, "backend-2": 0} and r.unseen == ["backend-2"]
    assert r.chi_square["p_value"] < 1e-6            # a silent endpoint is the loudest deviation
    assert 0 < r.latency["p50"] <= r.latency["p90"] <= r.latency["p99"] <= r.latency["max"]
    assert r.connect["count"] == 400 and r.bytes_received > 400 * len("backend-1")
    assert r.stopped_by == "count" and r.throughput["requests_per_s"] > 0


def test_keepalive_reuses_connections(netexec):
    r = go(Target("127.0.0.1", netexec["http"]), LoadSpec(requests=300, concurrency=3, keepalive=True))
    consistent(r)
    assert r.ok == 300 and r.connections == 3
    r = go(Target("127.0.0.1", netexec["http"]),
           LoadSpec(connections=6, concurrency=2, keepalive=True, per_connection=5))
    assert r.ok == 30 and r.connections == 6


def test_warm_opens_every_connection_first_and_keeps_them(netexec):
    r = go(Target("127.0.0.1", netexec["http"]),
           LoadSpec(requests=200, rate=400, concurrency=4, keepalive=True, warm=True))
    consistent(r)
    assert r.ok == 200 and r.connections == 4 and r.series[0].connections == 4
    with pytest.raises(SpecError, match="--warm needs"):
        LoadSpec(requests=10, rate=10, warm=True).check()


def test_a_fixed_udp_source_port_is_kept_by_every_flow(netexec):
    port = free_port(socket.SOCK_DGRAM)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5)
    seen = []

    def answer():
        for _ in range(20):
            data, peer = server.recvfrom(100)
            seen.append(peer[1])
            server.sendto(b"srv", peer)
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    r = go(Target("127.0.0.1", server.getsockname()[1]),
           LoadSpec(proto="udp", requests=20, rate=200, concurrency=1, source_port=port))
    thread.join(5)
    server.close()
    assert r.ok == 20 and r.connections == 20 and r.endpoints == {"srv": 20} and set(seen) == {port}
    with pytest.raises(SpecError, match="--source-port needs"):
        LoadSpec(proto="udp", requests=10, rate=10, source_port=port).check()      # 256 slots
    with pytest.raises(SpecError, match="--source-port needs"):
        LoadSpec(requests=10, concurrency=1, source_port=port).check()             # http


def test_payload_is_sent_as_the_request_body(netexec):
    r = go(Target("127.0.0.1", netexec["http"]), LoadSpec(requests=20, payload=5000))
    assert r.ok == 20 and r.bytes_sent >= 20 * 5000 and r.endpoints == {"backend-1": 20}


def test_udp_hostname_echo_and_clientip(netexec):
    r = go(Target("127.0.0.1", netexec["udp"]), LoadSpec(proto="udp", requests=200, concurrency=4,
                                                          clientip_probes=2))
    consistent(r)
    assert r.ok == 200 and r.endpoints == {"backend-1": 200}
    assert r.clientips == {"backend-1": ["127.0.0.1"]}
    echo = go(Target("127.0.0.1", netexec["udp"]), LoadSpec(proto="udp", requests=50, payload=300,
                                                             keepalive=True, concurrency=2))
    assert echo.ok == 50 and echo.errors == {} and echo.endpoints == {"backend-1": 50}
    assert echo.connections == 2 and echo.connect["count"] == 2      # the flows' hostname exchange


def test_http_clientip_probes(netexec):
    r = go(Target("127.0.0.1", netexec["http"]), LoadSpec(requests=5, clientip_probes=3))
    assert r.clientips == {"backend-1": ["127.0.0.1"]} and r.ok == 5


def test_raw_tcp_without_a_greeting_is_unknown(netexec):
    r = go(Target("127.0.0.1", netexec["http"]), LoadSpec(proto="tcp", requests=30, concurrency=3))
    assert r.ok == 30 and r.endpoints == {"?": 30} and r.chi_square is None


def test_refused(netexec):
    r = go(Target("127.0.0.1", free_port()), LoadSpec(requests=20, concurrency=2))
    consistent(r)
    assert r.ok == 0 and r.errors == {"refused": 20}
    udp = go(Target("127.0.0.1", free_port(socket.SOCK_DGRAM)), LoadSpec(proto="udp", requests=5))
    assert udp.errors == {"refused": 5}                # ICMP port unreachable on a connected socket


class Server:
    """A TCP server on loopback that misbehaves on purpose: ``silent`` (accepts, never answers)
    or ``reset`` (accepts, reads, closes with RST)."""

    def __init__(self, how: str):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.how, self.held = how, []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.how == "reset":
                try:
                    conn.recv(4096)
                except OSError:
                    pass
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            else:
                self.held.append(conn)

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.mark.parametrize("how, kind", [("silent", "timeout"), ("reset", "reset")])
def test_error_kinds(how, kind):
    server = Server(how)
    try:
        r = go(Target("127.0.0.1", server.port), LoadSpec(requests=4, concurrency=4, timeout=0.5))
    finally:
        server.close()
    consistent(r)
    assert r.ok == 0 and r.errors == {kind: 4}


def test_rate_and_duration(netexec):
    r = go(Target("127.0.0.1", netexec["http"]), LoadSpec(duration=1.5, rate=100))
    consistent(r)
    # never more than the rate allows; fewer only on a starved machine (then counted late)
    assert r.stopped_by == "duration" and 0 < r.ok <= 152 and r.errors == {}
    assert r.elapsed >= 1.5
    poisson = go(Target("127.0.0.1", netexec["http"]), LoadSpec(requests=50, rate=200, arrival="poisson",
                                                                 keepalive=True, seed=3))
    assert poisson.ok == 50 and poisson.connections <= 50


def test_workers_add_up(netexec):
    r = go(Target("127.0.0.1", netexec["http"]), LoadSpec(requests=301, concurrency=4, workers=2))
    consistent(r)
    assert r.ok == 301 and r.endpoints == {"backend-1": 301}


def test_cancel_returns_what_was_measured(netexec):
    async def scenario():
        run = TrafficRun(Target("127.0.0.1", netexec["http"]), LoadSpec(duration=60, rate=50), scope=LOCAL)
        task = asyncio.ensure_future(run.run())
        await asyncio.sleep(1.0)
        run.cancel()
        return await asyncio.wait_for(task, 10)
    t0 = time.monotonic()
    r = asyncio.run(scenario())
    assert time.monotonic() - t0 < 30
    assert r.cancelled and r.stopped_by == "cancel" and 1 <= r.ok <= 200 and r.elapsed < 30


def test_outside_the_scope_is_refused_before_any_packet():
    with pytest.raises(SpecError, match="not an address of the emulation"):
        TrafficRun(Target("10.1.2.3", 80), LoadSpec(requests=1), scope=LOCAL)
    TrafficRun(Target("10.1.2.3", 80), LoadSpec(requests=1), scope=Scope.of(["10.1.2.3"]))  # in scope: accepted

    async def inside_the_worker():         # the worker checks again, next to the socket
        Generator(Job(Target("10.1.2.3", 80), LoadSpec(requests=1), ()), Recorder(lambda m: None))
    with pytest.raises(SpecError, match="not an address of the emulation"):
        asyncio.run(inside_the_worker())


def test_weights_must_name_known_endpoints(netexec):
    with pytest.raises(SpecError, match="does not have: zz"):
        TrafficRun(Target("127.0.0.1", 1), LoadSpec(requests=1), scope=LOCAL, expected=["a"], weights={"zz": 1})


def test_result_files(netexec, tmp_path):
    r = go(Target("127.0.0.1", netexec["http"], "loopback"), LoadSpec(requests=30), weights={"backend-1": 1})
    r.write(tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["ok"] == 30 and doc["endpoints"] == {"backend-1": 30} and doc["target"]["name"] == "loopback"
    assert sum(s["ok"] for s in doc["series"]) == 30 and doc["latency"]["p99"] > 0
    r.write(tmp_path / "r.csv")
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert sum(int(row["ok"]) for row in rows) == 30 and sum(int(row["endpoint:backend-1"]) for row in rows) == 30
