"""kube-proxy's service health server (upstream pkg/proxy/healthcheck/service_health.go): the
counts it serves come from the proxier's maps, and each port answers 200 with ready local
endpoints, 503 without (the listener itself is exercised on loopback only)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

from netemu.agent.proxy.healthcheck import ServiceHealthServer, health_check_ports, local_ready_endpoints, response
from netemu.agent.proxy.model import EndpointInfo, NodeInfo, ServiceName, ServicePortName, service_ports

NODE = NodeInfo("n1", ("172.18.0.2",), "10.244.0.0/16")
WEB = ServiceName("ns", "web")


def lb(name, hc=31000, etp="Local"):
    return {"metadata": {"namespace": "ns", "name": name},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9", "externalTrafficPolicy": etp,
                     "healthCheckNodePort": hc, "ports": [{"name": "a", "port": 80, "nodePort": 30080},
                                                          {"name": "b", "port": 81, "nodePort": 30081}]}}


def test_ports_only_for_local_load_balancers_and_counts_only_ready_local_endpoints():
    service_map = {**service_ports(lb("web"), NODE), **service_ports(lb("other", etp="Cluster"), NODE)}
    assert health_check_ports(service_map) == {WEB: 31000}
    ep = lambda ip, **kw: EndpointInfo(ip=ip, port=80, **kw)  # noqa: E731
    eps = {ServicePortName("ns", "web", "a", "TCP"): (ep("10.244.0.5", is_local=True), ep("10.244.1.5"),
                                                       ep("10.244.0.6", is_local=True, ready=False,
                                                          serving=True, terminating=True)),
           ServicePortName("ns", "web", "b", "TCP"): (ep("10.244.0.5", is_local=True),)}
    assert local_ready_endpoints(eps) == {WEB: 2}        # per port, as upstream sums them


def test_response_like_upstream():
    status, headers, body = response(WEB, 2, True)
    assert status == 200 and headers["X-Load-Balancing-Endpoint-Weight"] == "2"
    assert json.loads(body) == {"service": {"namespace": "ns", "name": "web"}, "localEndpoints": 2,
                                "serviceProxyHealthy": True}
    assert response(WEB, 0, True)[0] == 503 and response(WEB, 3, False)[0] == 503


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_listeners_follow_the_services_and_answer_the_counts():
    port = _free_port()
    hs = ServiceHealthServer("127.0.0.1")
    try:
        hs.sync_services({WEB: port})
        assert _get(port) == (503, {"service": {"namespace": "ns", "name": "web"}, "localEndpoints": 0,
                                    "serviceProxyHealthy": True})
        hs.sync_endpoints({WEB: 1})
        assert _get(port)[0] == 200
        hs.sync_services({})
        try:
            _get(port)
            raise AssertionError("the listener should be closed")
        except urllib.error.URLError:
            pass
    finally:
        hs.close()
