"""Traffic for the suite: requests sent from inside a cluster namespace through probe.py.

Upstream's tests curl/wget/``agnhost connect`` from exec pods; here one process per batch runs
probe.py in the pod's (or node's) network namespace and returns every outcome, so a check of
150 requests costs one process start. Only namespaces of the test's own cluster are ever used.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from tests.e2e import _cluster as c

PROBE = str(Path(__file__).with_name("probe.py"))
# probe.py needs the standard library only: -I -S skip the site machinery (site-packages, the
# venv's .pth files, PYTHON* variables): 10 ms instead of 60 per start on the host (measured), about
# ten times that in the lab VM, where a behaviour's waits start a probe every half second
PYTHON = (sys.executable, "-I", "-S")


@dataclass(frozen=True)
class Client:
    """Where requests come from: a pod's netns (its IP) or a node's netns (the node IP).
    ``pod``: a pod's own namespace, whose /etc/netns resolv.conf names the cluster DNS, so it
    may send to Service names (a node's resolver is the host's: never asked from here)."""

    netns: str
    ip: str
    node: str
    name: str = ""
    pod: bool = False


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def run(client: Client, requests: list[dict], interval: float = 0) -> list[dict]:
    """probe.py in ``client``'s namespace: one outcome per request (count expands). A request
    to a name is only sent from a pod (its resolver is the cluster DNS)."""
    names = [r["ip"] for r in requests if not _is_ip(str(r["ip"]))]
    if names and not client.pod:
        raise ValueError(f"{names}: names are resolved only from pods, not from {client.netns}")
    budget = sum(int(r.get("count", 1)) * (float(r.get("timeout", 2)) + interval) for r in requests)
    proc = subprocess.run(["ip", "netns", "exec", client.netns, *PYTHON, PROBE,
                           json.dumps({"requests": requests, "interval": interval})],
                          capture_output=True, text=True, timeout=30 + budget)
    if proc.returncode != 0:
        raise AssertionError(f"probe in {client.netns} failed: {proc.stderr[-500:]}")
    return json.loads(proc.stdout)


def request(proto: str, ip: str, port: int, **extra: Any) -> dict:
    return {"proto": proto, "ip": ip, "port": int(port), **extra}


def answers(client: Client, ip: str, port: int, count: int = 1, proto: str = "http",
            path: str = "/hostname", timeout: float = 1, **extra: Any) -> list[str | None]:
    """The bodies of ``count`` requests (None for each failure)."""
    req = request(proto, ip, port, count=count, timeout=timeout, **extra)
    if proto == "http":
        req["path"] = path
    return [o.get("ok") for o in run(client, [req])]


def outcome(client: Client, ip: str, port: int, proto: str = "http", timeout: float = 1, **extra: Any) -> dict:
    return run(client, [request(proto, ip, port, timeout=timeout, **extra)])[0]


def reached(client: Client, ip: str, port: int, proto: str = "http", **extra: Any) -> str | None:
    """One request's answer, or None."""
    return outcome(client, ip, port, proto, **extra).get("ok")


def wait_reachable(client: Client, ip: str, port: int, proto: str = "http", timeout: float = 30,
                   expect: str | None = None, **extra: Any) -> str:
    """Eventually an answer (``expect``: that exact answer), like upstream's TestReachable*."""
    def probe():
        body = reached(client, ip, port, proto, **extra)
        return body if body is not None and (expect is None or body == expect) else None
    return c.wait_until(f"{proto} {ip}:{port} answering{' ' + expect if expect else ''} from {client.netns}",
                        probe, timeout, 0.5)


def wait_unreachable(client: Client, ip: str, port: int, proto: str = "http", timeout: float = 30,
                     errors: Iterable[str] = ("refused", "timeout", "unreachable", "reset"), **extra: Any) -> str:
    """Eventually no answer, failing the way ``errors`` allow (upstream testNotReachable*)."""
    allowed = set(errors)

    def probe():
        got = outcome(client, ip, port, proto, timeout=1, **extra)
        return got.get("error") if got.get("error") in allowed else None
    return c.wait_until(f"{proto} {ip}:{port} failing with one of {sorted(allowed)} from {client.netns}",
                        probe, timeout, 0.5)


def exec_hostname_test(client: Client, ip: str, port: int, expect: str, within: float = 120) -> str:
    """upstream execHostnameTest (service.go, v1.32): retry every 2 s until a request is answered
    (curl --max-time 30 there: a SYN lost while the rules change is retransmitted, not a failure),
    then the answer must be ``expect`` (an empty answer is retried, as upstream's empty stdout)."""
    got = c.wait_until(f"an answer from {ip}:{port} in {client.netns}",
                       lambda: answers(client, ip, port, 1, timeout=5)[0], within, 2)
    assert got == expect, f"{ip}:{port} from {client.netns}: answered by {got!r}, wanted {expect!r}"
    return got


def never_answers(client: Client, ip: str, port: int, tries: int = 3, proto: str = "http", **extra: Any) -> list[dict]:
    """``tries`` requests, none answered (upstream: Expect(err).To(HaveOccurred()) in a loop)."""
    got = run(client, [request(proto, ip, port, count=tries, timeout=1, **extra)])
    assert all("error" in o for o in got), f"{ip}:{port} answered from {client.netns}: {got}"
    return got


def always_answers(client: Client, ip: str, port: int, expect: str, tries: int = 3, proto: str = "http",
                   **extra: Any) -> None:
    """upstream execHostnameTest repeated: every request answered by ``expect``."""
    got = answers(client, ip, port, tries, proto, **extra)
    assert got == [expect] * tries, f"{ip}:{port} from {client.netns}: {got} (wanted {expect!r} x{tries})"


def serve_hostname_up(clients: Iterable[Client], ip: str, port: int, pods: Iterable[str],
                      timeout: float = 30) -> None:
    """verifyServeHostnameServiceUp: from each client, 50 requests per pod reach every pod."""
    expected = set(pods)
    for client in clients:
        seen: Counter = Counter()

        def probe():
            seen.update(a for a in answers(client, ip, port, 50 * len(expected), timeout=1) if a)
            return expected <= set(seen)
        c.wait_until(f"{ip}:{port} reaching {sorted(expected)} from {client.netns} (seen {dict(seen)})",
                     probe, timeout, 0.5)


def serve_hostname_down(client: Client, ip: str, port: int, timeout: float = 30) -> None:
    """verifyServeHostnameServiceDown: the Service no longer answers at all."""
    c.wait_until(f"{ip}:{port} down from {client.netns}",
                 lambda: all(a is None for a in answers(client, ip, port, 3, timeout=1)), timeout, 0.5)


class Stream:
    """probe.py running in the background (upstream's client pods looping on curl / nc): every
    outcome as it happens, until ``stop()`` or ``seconds`` pass."""

    def __init__(self, client: Client, requests: list[dict], seconds: float, interval: float = 0.2):
        spec = {"requests": requests, "interval": interval, "for_seconds": seconds, "stream": True}
        self.outcomes: list[dict] = []
        self.proc = subprocess.Popen(["ip", "netns", "exec", client.netns, *PYTHON, PROBE, json.dumps(spec)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.outcomes.append(json.loads(line))

    def answered(self, body: str) -> bool:
        return any(o.get("ok") == body for o in list(self.outcomes))

    def since(self, t: float) -> list[dict]:
        return [o for o in list(self.outcomes) if o["t"] >= t]

    def stop(self) -> list[dict]:
        """End it (by PID, the process this Stream started) and return every outcome."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.reader.join(10)
        return list(self.outcomes)
