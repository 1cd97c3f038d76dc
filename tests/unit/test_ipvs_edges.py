"""The IPVS mode's edges that run on any host: the netlink messages (packed and parsed the way the
kernel does), the tracer over a render, and the start on a kernel without ip_vs -- one line naming
the module and the lab VM, nothing changed."""

from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
import sys

import pytest

from netemu.agent.proxy.ipvs import netlink as N
from netemu.agent.proxy.ipvs.state import FLAG_PERSISTENT, RealServer, VirtualServer, VSKey
from netemu.agent.proxy.tracing import Packet
from netemu.cli.main import main


def payload(message: bytes) -> bytes:
    [(_kind, _flags, _seq, body)] = list(N.messages(message))
    return body


@pytest.mark.parametrize("key", [VSKey("TCP", "10.96.0.10", 80), VSKey("SCTP", "fd00::10", 9)])
def test_a_new_service_request_reads_back_as_the_kernel_would_dump_it(key):
    vs = VirtualServer(key, "wrr", FLAG_PERSISTENT | 0x2, 300)
    msg = N.encode_ipvs("NEW_SERVICE", 42, 7, vs)
    kind, flags, seq, _ = next(N.messages(msg))
    assert (kind, flags, seq) == (42, N.NLM_F_REQUEST | N.NLM_F_ACK, 7)
    assert N.parse_service(payload(msg)) == VirtualServer(key, "wrr", FLAG_PERSISTENT, 300)   # hashed flag off


def test_a_delete_carries_only_the_key_and_a_dump_asks_for_all():
    body = payload(N.encode_ipvs("DEL_SERVICE", 42, 1, VSKey("UDP", "10.96.0.10", 53)))
    service = N.attributes(N.attributes(body[4:])[N.CMD["IPVS_CMD_ATTR_SERVICE"]])
    assert set(service) == {N.SVC[f"IPVS_SVC_ATTR_{a}"] for a in ("AF", "PROTOCOL", "ADDR", "PORT")}
    dump = N.encode_ipvs("GET_SERVICE", 42, 2, None, dump=True)
    assert next(N.messages(dump))[1] == N.NLM_F_REQUEST | N.NLM_F_DUMP and len(payload(dump)) == 4


def test_a_real_server_as_the_kernel_dumps_it():
    key = VSKey("TCP", "10.96.0.10", 80)
    sent = payload(N.encode_ipvs("NEW_DEST", 42, 3, VirtualServer(key), RealServer("10.244.1.5", 8080, 3)))
    dest = N.attributes(N.attributes(sent[4:])[N.CMD["IPVS_CMD_ATTR_DEST"]])
    assert struct.unpack("=I", dest[N.DEST["IPVS_DEST_ATTR_FWD_METHOD"]])[0] == N.IP_VS_CONN_F_MASQ
    # the kernel's answer adds the connection counters
    answer = b"".join(N._nla(k, v) for k, v in dest.items())
    answer += N._nla(N.DEST["IPVS_DEST_ATTR_ACTIVE_CONNS"], struct.pack("=I", 4))
    answer += N._nla(N.DEST["IPVS_DEST_ATTR_INACT_CONNS"], struct.pack("=I", 1))
    dumped = sent[:4] + N._nla(N.CMD["IPVS_CMD_ATTR_DEST"] | N.NLA_F_NESTED, answer)
    assert N.parse_dest(dumped) == RealServer("10.244.1.5", 8080, 3, 4, 1)


@pytest.mark.parametrize("address", ["10.96.0.10", "fd00::a"])
def test_an_address_request_reads_back(address):
    msg = N.encode_addr(True, 9, 5, address)
    assert next(N.messages(msg))[:2] == (N.RTM_NEWADDR, N.NLM_F_REQUEST | N.NLM_F_ACK | N.NLM_F_CREATE | N.NLM_F_EXCL)
    assert N.parse_addr(payload(msg)) == (5, address)
    assert next(N.messages(N.encode_addr(False, 9, 5, address)))[:2] == (N.RTM_DELADDR, N.NLM_F_REQUEST | N.NLM_F_ACK)


def test_several_messages_in_one_datagram_and_their_acks():
    data = N.encode_addr(True, 1, 2, "10.0.0.1") + N.encode_addr(True, 2, 2, "10.0.0.2")
    assert [seq for _, _, seq, _ in N.messages(data)] == [1, 2]
    error = N.NetlinkError([("add 10.0.0.1", errno.EEXIST), ("x", errno.ENOENT)])
    assert "add 10.0.0.1: File exists" in str(error)


def test_a_kernel_without_ip_vs_is_recognised_without_changing_anything():
    sock = N._Socket(N.NETLINK_GENERIC, None)
    try:
        family = N.ipvs_family(sock)
    finally:
        sock.close()
    if family is not None:
        pytest.skip("this kernel has ip_vs")
    assert family is None


def test_proxy_run_and_agent_refuse_ipvs_on_this_kernel_with_one_line(tmp_path, capsys):
    sock = N._Socket(N.NETLINK_GENERIC, None)
    has_ipvs = N.ipvs_family(sock) is not None
    sock.close()
    if has_ipvs:
        pytest.skip("this kernel has ip_vs: the lab VM's tests cover it")
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                          "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
                          "current-context: x\n")
    assert main(["proxy", "run", "--proxy-mode", "ipvs", "--kubeconfig", str(kubeconfig),
                 "--hostname-override", "n1", "--metrics-bind-address", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ip_vs" in err[0] and "lab VM" in err[0]
    agent = subprocess.run([sys.executable, "-m", "netemu", "agent", "--node", "n1", "--node-ip", "172.31.250.2",
                            "--kubeconfig", str(kubeconfig), "--proxy-mode", "ipvs",
                            "--state-dir", str(tmp_path / "state"), "--metrics-bind-address", ""],
                           capture_output=True, text=True, timeout=60)
    assert agent.returncode == 2, agent.stderr
    lines = agent.stderr.strip().splitlines()
    assert len(lines) == 1 and "ip_vs" in lines[0] and "lab VM" in lines[0]
    assert not os.path.exists(tmp_path / "state")


# ---- the tracer over a render ---------------------------------------------------------------------

RENDER = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.50
  externalTrafficPolicy: Local
  loadBalancerSourceRanges: [203.0.113.0/24]
  healthCheckNodePort: 32000
  ports: [{name: http, port: 80, protocol: TCP, nodePort: 30080}]
status: {loadBalancer: {ingress: [{ip: 172.18.255.200}]}}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec: {clusterIP: 10.96.0.60, ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [10.244.1.5], nodeName: worker}, {addresses: [10.244.2.7], nodeName: worker2}]
"""


@pytest.fixture
def dump(tmp_path, capsys):
    path = tmp_path / "svc.yaml"
    path.write_text(RENDER)
    assert main(["proxy", "render", "--mode", "ipvs", "--node", "worker", "--node-ip", "172.18.0.3",
                 "--cluster-cidr", "10.244.0.0/16", "--ipvs-scheduler", "wrr", "-f", str(path)]) == 0
    return capsys.readouterr().out


def trace(dump, src, dst, dport, origin):
    from netemu.agent.proxy.ipvs.trace import trace as ipvs_trace
    return ipvs_trace(dump, Packet(src, dst, dport), exec_=None, node_ips=["172.18.0.3"], origin=origin)


def test_trace_a_pod_to_the_cluster_ip_spreads_over_both_endpoints_without_masquerade(dump):
    result = trace(dump, "10.244.2.9", "10.96.0.50", 80, "pod")
    assert result.endpoints() == {"10.244.1.5:8080": 0.5, "10.244.2.7:8080": 0.5}
    assert all(not o.masquerade and "ipvs:10.96.0.50:80/TCP (wrr)" in o.chains for o in result.outcomes)


def test_trace_a_node_port_with_local_policy_keeps_the_client_ip_and_the_local_endpoint(dump):
    result = trace(dump, "192.0.2.7", "172.18.0.3", 30080, "external")
    assert result.endpoints() == {"10.244.1.5:8080": 1.0}
    assert [o.masquerade for o in result.outcomes] == [False]


def test_trace_a_load_balancer_ip_is_dropped_for_sources_outside_the_ranges(dump):
    outside = trace(dump, "192.0.2.7", "172.18.255.200", 80, "external")
    assert [o.verdict for o in outside.outcomes] == ["DROP"]
    assert "KUBE-SOURCE-RANGES-FIREWALL" in outside.outcomes[0].verdict_by
    inside = trace(dump, "203.0.113.9", "172.18.255.200", 80, "external")
    assert inside.endpoints() == {"10.244.1.5:8080": 1.0}


def test_trace_a_virtual_server_without_real_servers_is_refused(dump):
    result = trace(dump, "10.244.2.9", "10.96.0.60", 80, "pod")
    assert [o.verdict for o in result.outcomes] == ["REJECT"]
    assert "no real server of weight > 0" in result.outcomes[0].verdict_by


def test_trace_cli_for_an_ipvs_dump(dump, tmp_path, capsys):
    path = tmp_path / "dump.txt"
    path.write_text(dump)
    assert main(["trace", "--mode", "ipvs", "-f", str(path), "--src", "10.244.2.9", "--dst", "10.96.0.50",
                 "--dport", "80", "--from", "pod", "--node-ip", "172.18.0.3"]) == 0
    out = capsys.readouterr().out
    assert "50.00%  DNAT -> 10.244.1.5:8080" in out and "ipvs:10.96.0.50:80/TCP (wrr)" in out


class _AckingSocket:
    """A netlink socket that acknowledges every request of the last send (errno per request)."""

    def __init__(self, refuse: dict[int, int] | None = None):
        self.sends: list[int] = []
        self.acks = b""
        self.refuse = refuse or {}

    def send(self, data: bytes) -> None:
        found = list(N.messages(data))
        self.sends.append(len(found))
        for _kind, _flags, seq, _payload in found:
            body = struct.pack("=i", -self.refuse.get(seq, 0)) + struct.pack("=IHHII", 16, 0, 0, seq, 0)
            self.acks += struct.pack("=IHHII", 16 + len(body), N.NLMSG_ERROR, 0, seq, 0) + body

    def recv(self, _size: int) -> bytes:
        data, self.acks = self.acks, b""
        return data


def test_a_big_batch_goes_in_chunks_the_receive_buffer_can_acknowledge():
    """5000 addresses in one sendmsg overflowed the acknowledgements' queue (ENOBUFS in the lab
    VM): a batch is cut into chunks of at most _CHUNK_MESSAGES requests, each acknowledged before
    the next is sent, and the refused ones are named."""
    sock = N._Socket.__new__(N._Socket)
    sock.sock, sock.seq = _AckingSocket(refuse={1004: errno.EINVAL}), 0
    addresses = [f"10.96.{i // 250}.{i % 250}" for i in range(5000)]
    requests = [N.Request(f"add {a}", N.encode_addr(True, 1000 + i, 5, a)) for i, a in enumerate(addresses)]
    with pytest.raises(N.NetlinkError, match=r"add 10.96.0.4: Invalid argument$"):
        sock.batch(requests)
    assert sum(sock.sock.sends) == 5000 and max(sock.sock.sends) <= N._CHUNK_MESSAGES
