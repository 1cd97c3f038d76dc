"""The iptables kernel tracer's pure parts: the TRACE rule, the parse of ``xtables-monitor
--trace`` output (as recorded on this machine's kernel, nft backend) and the comparison with the
offline tracer's outcomes."""

from __future__ import annotations

from netemu.agent.proxy.iptables.ktrace import parse_monitor, trace_rule
from netemu.agent.proxy.kernel_trace import KernelPath, compare
from netemu.agent.proxy.tracing import Outcome, Packet, TraceResult

# a pod's SYN to a ClusterIP, DNATed to a pod on another node: the trace id changes when the
# packet is routed out of eth0; then a retransmitted SYN (a second packet, ignored)
MONITOR = """\
PACKET: 2 be2b604a IN=cni0 MACSRC=d2:3b MACDST=2:c7 MACPROTO=0800 SRC=10.244.0.2 DST=10.99.243.226 LEN=60 SPORT=41868 DPORT=80 SYN
 TRACE: 2 be2b604a raw:PREROUTING:rule:0x2:CONTINUE  -4 -t raw -A PREROUTING -j TRACE
 TRACE: 2 be2b604a raw:PREROUTING:policy:ACCEPT
PACKET: 2 be2b604a IN=cni0 MACSRC=d2:3b MACDST=2:c7 MACPROTO=0800 SRC=10.244.0.2 DST=10.99.243.226 LEN=60 SPORT=41868 DPORT=80 SYN
 TRACE: 2 be2b604a nat:PREROUTING:rule:0x15:JUMP:KUBE-SERVICES  -4 -t nat -A PREROUTING -j KUBE-SERVICES
 TRACE: 2 be2b604a nat:KUBE-SERVICES:rule:0x23:JUMP:KUBE-SVC-AAA  -4 -t nat -A KUBE-SERVICES -j KUBE-SVC-AAA
 TRACE: 2 be2b604a nat:KUBE-SVC-AAA:rule:0x28:JUMP:KUBE-SEP-BBB  -4 -t nat -A KUBE-SVC-AAA -j KUBE-SEP-BBB
 TRACE: 2 be2b604a nat:KUBE-SEP-BBB:rule:0x2c:ACCEPT  -4 -t nat -A KUBE-SEP-BBB -p tcp -j DNAT --to-destination 10.244.2.2:8080
PACKET: 2 0e7232c3 IN=cni0 OUT=eth0 MACSRC=d2:3b SRC=10.244.0.2 DST=10.244.2.2 LEN=60 SPORT=41868 DPORT=8080 SYN
 TRACE: 2 0e7232c3 filter:FORWARD:rule:0x17:JUMP:KUBE-PROXY-FIREWALL  -4 -t filter -A FORWARD -j KUBE-PROXY-FIREWALL
 TRACE: 2 0e7232c3 filter:FORWARD:rule:0x14:JUMP:KUBE-FORWARD  -4 -t filter -A FORWARD -j KUBE-FORWARD
 TRACE: 2 0e7232c3 filter:FORWARD:policy:ACCEPT
PACKET: 2 0e7232c3 OUT=eth0 SRC=10.244.0.2 DST=10.244.2.2 LEN=60 SPORT=41868 DPORT=8080 SYN
 TRACE: 2 0e7232c3 nat:POSTROUTING:rule:0x17:JUMP:KUBE-POSTROUTING  -4 -t nat -A POSTROUTING -j KUBE-POSTROUTING
 TRACE: 2 0e7232c3 nat:KUBE-POSTROUTING:rule:0x8:0xfffffffb  -4 -t nat -A KUBE-POSTROUTING -j RETURN
 TRACE: 2 0e7232c3 nat:POSTROUTING:policy:ACCEPT
PACKET: 2 11111111 IN=cni0 SRC=10.244.0.2 DST=10.99.243.226 LEN=60 SPORT=41868 DPORT=80 SYN
 TRACE: 2 11111111 raw:PREROUTING:rule:0x2:CONTINUE  -4 -t raw -A PREROUTING -j TRACE
 TRACE: 2 11111111 nat:KUBE-SVC-AAA:rule:0x29:JUMP:KUBE-SEP-CCC
"""
PATH = ["nat:PREROUTING", "nat:KUBE-SERVICES", "nat:KUBE-SVC-AAA", "nat:KUBE-SEP-BBB", "filter:FORWARD",
        "filter:KUBE-PROXY-FIREWALL", "filter:KUBE-FORWARD", "nat:POSTROUTING", "nat:KUBE-POSTROUTING"]


def test_trace_rule_matches_exactly_the_packet():
    rule = trace_rule(Packet("10.244.0.2", "10.96.0.10", 80, "tcp"), "pod")
    assert rule[:9] == ["PREROUTING", "-p", "tcp", "-s", "10.244.0.2", "-d", "10.96.0.10", "--dport", "80"]
    assert "--syn" in rule and rule[-2:] == ["-j", "TRACE"]
    udp = trace_rule(Packet("172.31.1.3", "10.96.0.10", 53, "udp"), "node")
    assert udp[0] == "OUTPUT" and "--syn" not in udp


def test_parse_follows_the_packet_across_trace_ids_and_stops_at_the_next():
    path = parse_monitor(MONITOR)
    assert path.chains == PATH
    assert path.destination == "10.244.2.2:8080"
    assert path.verdict == "ACCEPT"
    assert not any("KUBE-SEP-CCC" in line for line in path.lines)
    assert parse_monitor("").chains == []


def outcome(sep, dest):
    chains = [c if c != "nat:KUBE-SEP-BBB" else f"nat:{sep}" for c in PATH]
    return Outcome(0.5, "ACCEPT", dest, sep, False, False, "forward", None, chains)


def prediction(*outcomes):
    return TraceResult(Packet("10.244.0.2", "10.99.243.226", 80), "pod", "PREROUTING", [], list(outcomes))


def test_compare_agrees_and_names_the_outcome():
    got = compare(parse_monitor(MONITOR), prediction(outcome("KUBE-SEP-CCC", "10.244.1.2:8080"),
                                                     outcome("KUBE-SEP-BBB", "10.244.2.2:8080")))
    assert got.ok and got.matched_outcome == 1 and "agree" in got.render()


def test_compare_reports_mismatches():
    other = compare(parse_monitor(MONITOR), prediction(outcome("KUBE-SEP-CCC", "10.244.1.2:8080")))
    assert not other.ok and other.matched_outcome is None
    assert any("KUBE-SEP-BBB" in m for m in other.mismatches) and "MISMATCH" in other.render()
    assert any("translated to 10.244.2.2:8080" in m for m in other.mismatches)
    nothing = compare(KernelPath([], None), prediction(outcome("KUBE-SEP-BBB", "10.244.2.2:8080")))
    assert nothing.mismatches == ["the kernel traced no packet (was it sent? did it reach this node?)"]
    shorter = KernelPath([c for c in PATH if c != "filter:KUBE-PROXY-FIREWALL"], "10.244.2.2:8080")
    diff = compare(shorter, prediction(outcome("KUBE-SEP-BBB", "10.244.2.2:8080")))
    assert diff.mismatches and "whole path differs" in diff.mismatches[0]
