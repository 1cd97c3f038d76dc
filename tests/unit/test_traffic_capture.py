"""Capture summaries from a pcap made here with scapy: flows in the client's direction, answers
folded in, and the Service's DNAT paired (the same client address:port towards the ClusterIP,
then towards the pod)."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from netemu.traffic.capture import Capture, summarize


def test_summary_pairs_the_dnat(tmp_path):
    path = tmp_path / "c.pcap"
    wrpcap(str(path), [
        Ether() / IP(src="10.244.0.2", dst="10.96.0.50") / TCP(sport=40000, dport=80, flags="S"),
        Ether() / IP(src="10.244.0.2", dst="10.244.1.5") / TCP(sport=40000, dport=8080, flags="S"),
        Ether() / IP(src="10.244.1.5", dst="10.244.0.2") / TCP(sport=8080, dport=40000, flags="SA"),
        Ether() / IP(src="10.244.0.2", dst="10.244.1.5") / TCP(sport=40000, dport=8080, flags="A"),
        Ether() / IP(src="10.244.0.9", dst="10.96.0.10") / UDP(sport=5353, dport=53),
    ])
    s = summarize(path, {"10.96.0.50", "10.96.0.10"})
    assert s.packets == 5 and len(s.flows) == 3
    flow = next(f for f in s.flows if f.dst == "10.244.1.5:8080")
    assert flow.packets == 3 and flow.syn                     # the SYN-ACK answer folded into the flow
    assert [(b.dst, a.dst) for b, a in s.translations] == [("10.96.0.50:80", "10.244.1.5:8080")]
    assert "DNAT tcp 10.244.0.2:40000: 10.96.0.50:80 -> 10.244.1.5:8080" in s.render()
    assert [(b.dst, a.dst) for b, a in summarize(path).translations] == [("10.96.0.50:80", "10.244.1.5:8080")]


def test_capture_argv_stays_in_the_namespace():
    argv = Capture("/tmp/x.pcap", "nen-ab12-worker", bpf="tcp port 80", count=5).argv()
    assert argv[:4] == ["ip", "netns", "exec", "nen-ab12-worker"]
    assert argv[-3:] == ["tcp", "port", "80"] and "-c" in argv and "--immediate-mode" in argv
