"""`netemu proxy run` against a real `netemu apiserver`: list+watch -> rules in a node netns.

The API server listens on a free loopback port; the proxy runs as its own process (started and
ended by PID) programming a node namespace of a Lab; traffic goes client pod -> ClusterIP.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from netemu.testing.netnslab import Lab, requests

pytestmark = [pytest.mark.root, pytest.mark.slow]

CLUSTER_IP = "10.96.0.30"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(argv: list[str], ready: str, timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "netemu", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if ready in line:
            return proc, line
    _stop(proc)
    raise AssertionError(f"{argv[0]} did not start: {''.join(seen)}")


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _eventually(fn, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


async def _api(kubeconfig: str, verb: str, kind: tuple[str, str], obj: dict) -> None:
    from netemu.api.kinds import by_kind
    from netemu.client import ApiClient

    async with ApiClient.from_kubeconfig(kubeconfig) as api:
        rt = by_kind(*kind)
        if verb == "create":
            await api.create(rt, obj)
        else:
            current = await api.get(rt, obj["metadata"]["name"], obj["metadata"]["namespace"])
            obj = {**obj, "metadata": {**obj["metadata"],
                                       "resourceVersion": current["metadata"]["resourceVersion"]}}
            await api.update(rt, obj)


def _slice(pods) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [p.ip], "conditions": {"ready": True}, "nodeName": "n1"}
                          for p in pods]}


def test_proxy_run_follows_the_api_server(tmp_path):
    api, line = _start(["apiserver", "--listen", f"127.0.0.1:{_free_port()}", "--state-dir",
                        str(tmp_path), "--no-controllers"], "kubeconfig:")
    kubeconfig = line.split("kubeconfig:", 1)[1].strip()
    proxy = None
    try:
        with Lab() as lab:
            node = lab.node("n1")
            pods = [lab.pod(node, f"p{i}") for i in range(3)]
            client = lab.pod(node, "cl")
            for p in pods:
                lab.echo_server(p)
            service = {"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "web", "namespace": "default"},
                       "spec": {"clusterIP": CLUSTER_IP, "clusterIPs": [CLUSTER_IP], "type": "ClusterIP",
                                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}
            asyncio.run(_api(kubeconfig, "create", ("v1", "Service"), service))
            asyncio.run(_api(kubeconfig, "create", ("discovery.k8s.io/v1", "EndpointSlice"), _slice(pods)))
            proxy, banner = _start(["proxy", "run", "--kubeconfig", kubeconfig, "--hostname-override", "n1",
                                    "--node-ip", "172.18.0.2", "--cluster-cidr", "10.244.0.0/16",
                                    "--netns", node.netns, "--iptables-backend", "legacy",
                                    "--metrics-bind-address", "127.0.0.1:0", "--min-sync-period", "0.2"],
                                   "metrics on")
            metrics_url = re.search(r"(http://\S+/metrics)", banner).group(1)

            def answered_by():
                return {a.split()[0] for a in requests(client.netns, CLUSTER_IP, 80, count=30, timeout=1) if a}

            assert _eventually(lambda: answered_by() == {"p0", "p1", "p2"}), answered_by()
            asyncio.run(_api(kubeconfig, "update", ("discovery.k8s.io/v1", "EndpointSlice"), _slice(pods[1:])))
            assert _eventually(lambda: answered_by() == {"p1", "p2"}), answered_by()
            text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
            assert "kubeproxy_sync_partial_proxy_rules_duration_seconds_count" in text
            assert re.search(r"kubeproxy_sync_full_proxy_rules_duration_seconds_count [1-9]", text), text
            assert _stop(proxy) == 0
    finally:
        if proxy is not None:
            _stop(proxy)
        _stop(api)
