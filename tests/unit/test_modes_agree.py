"""The same Services rendered in every selectable proxy mode (iptables, nftables, ipvs) reach the
same endpoints: each mode's ``netemu proxy render`` output is traced by that mode's own tracer
(through the registry's hooks, as ``netemu trace --mode M -f render.txt`` does), and for every
packet the endpoints and their shares must be the same in all modes.

Why: the modes differ in how they program the kernel (rule chains, an nftables table, IPVS
virtual servers plus a few fixed chains), not in where a Service sends a connection. A mode that
drops an ETP Local NodePort's remote endpoint, forgets a source range, or spreads unevenly shows
up here as the one mode that disagrees.
"""

from __future__ import annotations

import contextlib
import io

import pytest

from netemu.agent.proxy import modes
from netemu.agent.proxy.tracing import Packet
from netemu.cli.main import main

NODE, NODE_IP = "worker", "172.18.0.3"

SERVICES = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  externalIPs: [192.0.2.50]
  ports: [{name: http, port: 80, protocol: TCP, nodePort: 30010}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: [10.244.1.5], nodeName: worker}
- {addresses: [10.244.2.7], nodeName: worker2}
- {addresses: [10.244.2.8], nodeName: worker2}
- {addresses: [10.244.1.9], nodeName: worker, conditions: {ready: false, serving: true, terminating: true}}
---
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.20
  externalTrafficPolicy: Local
  loadBalancerSourceRanges: [203.0.113.0/24]
  healthCheckNodePort: 32000
  ports: [{name: http, port: 80, protocol: TCP, nodePort: 30020}]
status: {loadBalancer: {ingress: [{ip: 172.18.255.200}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: lb-1, namespace: default, labels: {kubernetes.io/service-name: lb}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: [10.244.1.20], nodeName: worker}
- {addresses: [10.244.2.20], nodeName: worker2}
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: kube-system}
spec:
  clusterIP: 10.96.0.53
  sessionAffinity: ClientIP
  ports: [{name: dns, port: 53, protocol: UDP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: dns-1, namespace: kube-system, labels: {kubernetes.io/service-name: dns}}
addressType: IPv4
ports: [{name: dns, port: 5353, protocol: UDP}]
endpoints:
- {addresses: [10.244.1.30], nodeName: worker}
- {addresses: [10.244.2.30], nodeName: worker2}
---
apiVersion: v1
kind: Service
metadata: {name: draining, namespace: default}
spec:
  clusterIP: 10.96.0.30
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: draining-1, namespace: default, labels: {kubernetes.io/service-name: draining}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: [10.244.2.40], nodeName: worker2, conditions: {ready: false, serving: true, terminating: true}}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  clusterIP: 10.96.0.40
  ports: [{name: http, port: 80, protocol: TCP}]
"""

THIRD = pytest.approx(1 / 3)
# (source, destination, port, protocol, origin) -> where every mode must send it
PACKETS = {
    "a pod to the ClusterIP: ready endpoints only, the terminating one left out":
        (("10.244.2.9", "10.96.0.10", 80, "tcp", "pod"),
         {"10.244.1.5:8080": THIRD, "10.244.2.7:8080": THIRD, "10.244.2.8:8080": THIRD}),
    "a client to the NodePort (Cluster policy)":
        (("192.0.2.7", NODE_IP, 30010, "tcp", "external"),
         {"10.244.1.5:8080": THIRD, "10.244.2.7:8080": THIRD, "10.244.2.8:8080": THIRD}),
    "a client to the external IP":
        (("192.0.2.7", "192.0.2.50", 80, "tcp", "external"),
         {"10.244.1.5:8080": THIRD, "10.244.2.7:8080": THIRD, "10.244.2.8:8080": THIRD}),
    "a client in the source ranges to the ETP Local LoadBalancer IP: the local endpoint":
        (("203.0.113.9", "172.18.255.200", 80, "tcp", "external"), {"10.244.1.20:8080": 1.0}),
    "a client outside the source ranges: nowhere":
        (("192.0.2.7", "172.18.255.200", 80, "tcp", "external"), {}),
    "a client to the ETP Local NodePort: the local endpoint":
        (("192.0.2.7", NODE_IP, 30020, "tcp", "external"), {"10.244.1.20:8080": 1.0}),
    "a pod to the ETP Local Service's ClusterIP: every endpoint":
        (("10.244.2.9", "10.96.0.20", 80, "tcp", "pod"), {"10.244.1.20:8080": 0.5, "10.244.2.20:8080": 0.5}),
    "a pod to a ClientIP-affinity UDP Service":
        (("10.244.2.9", "10.96.0.53", 53, "udp", "pod"), {"10.244.1.30:5353": 0.5, "10.244.2.30:5353": 0.5}),
    "a pod to a Service whose only endpoint is terminating but serving: that one":
        (("10.244.2.9", "10.96.0.30", 80, "tcp", "pod"), {"10.244.2.40:8080": 1.0}),
    "a pod to a Service without endpoints: nowhere":
        (("10.244.2.9", "10.96.0.40", 80, "tcp", "pod"), {}),
}

MODES = [m.name for m in modes.known() if m.implemented and m.renderer and m.tracer]


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    path = tmp_path_factory.mktemp("agree") / "services.yaml"
    path.write_text(SERVICES)
    out = {}
    for mode in MODES:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
            code = main(["proxy", "render", "--mode", mode, "--node", NODE, "--node-ip", NODE_IP,
                         "--cluster-cidr", "10.244.0.0/16", "-f", str(path)])
        assert code == 0, mode
        out[mode] = buffer.getvalue()
    return out


def test_every_mode_is_compared():
    assert {"iptables", "ipvs"} <= set(MODES)


@pytest.mark.parametrize("case", list(PACKETS))
def test_every_mode_sends_the_packet_to_the_same_endpoints(renders, case):
    (src, dst, dport, proto, origin), expected = PACKETS[case]
    packet = Packet(src, dst, dport, proto)
    reached = {}
    for mode in MODES:
        tracer = modes.get(mode).hook("tracer")
        result = tracer(renders[mode], packet, exec_=None, node_ips=[NODE_IP], origin=origin)
        reached[mode] = result.endpoints()
        if not expected:
            assert {o.verdict for o in result.outcomes} <= {"DROP", "REJECT"}, (mode, result.render())
    for mode, endpoints in reached.items():
        assert endpoints == expected, (mode, reached)
