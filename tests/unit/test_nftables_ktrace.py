"""The nftables kernel tracer's pure half: nft monitor trace lines -> the kernel's path."""

from __future__ import annotations

from netemu.agent.proxy.nftables.ktrace import parse_monitor, trace_table
from netemu.agent.proxy.tracing import Packet

PKT = "ip saddr 10.244.1.13 ip daddr {dst} ip dscp cs0 ip ttl 64 tcp sport {sport} tcp dport {dport} tcp flags == syn"
MONITOR = "\n".join([
    "trace id aa ip netemu-trace trace packet: iif \"cni0\" " + PKT.format(dst="10.96.0.20", sport=40001, dport=80),
    'trace id aa ip netemu-trace trace rule ip saddr 10.244.1.13 meta nftrace set 1 comment "x" (verdict continue)',
    "trace id aa ip kube-proxy filter-prerouting packet: iif \"cni0\" " + PKT.format(dst="10.96.0.20", sport=40001, dport=80),
    "trace id aa ip kube-proxy filter-prerouting rule ct state new jump firewall-check (verdict jump firewall-check)",
    "trace id aa ip kube-proxy filter-prerouting policy accept",
    "trace id aa ip kube-proxy nat-prerouting rule jump services (verdict jump services)",
    "trace id aa ip kube-proxy services rule ip daddr . meta l4proto . th dport vmap @service-ips (verdict goto service-X-default/web/tcp/p)",
    "trace id aa ip kube-proxy service-X-default/web/tcp/p rule numgen random mod 3 vmap { 0 : goto endpoint-A, 1 : goto endpoint-B, 2 : goto endpoint-C } (verdict goto endpoint-B)",
    "trace id aa ip kube-proxy endpoint-B rule meta l4proto tcp dnat to 10.244.1.11:8080 (verdict accept)",
    "trace id bb ip kube-proxy filter-forward packet: iif \"cni0\" oif \"cni0\" " + PKT.format(dst="10.244.1.11", sport=40001, dport=8080),
    "trace id bb ip kube-proxy filter-forward rule ct state new jump service-endpoints-check (verdict jump service-endpoints-check)",
    "trace id bb ip kube-proxy filter-forward rule ct state new jump cluster-ips-check (verdict jump cluster-ips-check)",
    "trace id bb ip kube-proxy nat-postrouting rule jump masquerading (verdict jump masquerading)",
    "trace id bb ip kube-proxy masquerading rule meta mark & 0x00004000 == 0x00000000 return (verdict return)",
    # a retransmission: its second pass through our rule ends the first packet's path
    'trace id cc ip netemu-trace trace rule ip saddr 10.244.1.13 meta nftrace set 1 comment "x" (verdict continue)',
    "trace id cc ip kube-proxy endpoint-C rule meta l4proto tcp dnat to 10.244.1.12:8080 (verdict accept)",
])


def test_the_first_packets_chains_destination_and_verdict():
    path = parse_monitor(MONITOR)
    assert path.chains == ["filter-prerouting", "firewall-check", "nat-prerouting", "services",
                           "service-X-default/web/tcp/p", "endpoint-B", "filter-forward", "service-endpoints-check",
                           "cluster-ips-check", "nat-postrouting", "masquerading"]
    assert path.destination == "10.244.1.11:8080"
    assert path.verdict == "ACCEPT"


def test_other_packets_and_tables_are_left_out():
    other = MONITOR.replace("sport 40001", "sport 40001", 1) + "\n" + \
        "trace id dd ip kube-proxy filter-input packet: " + PKT.format(dst="10.96.0.9", sport=5555, dport=80) + \
        "\ntrace id dd ip kube-proxy filter-input rule ct state new jump nodeport-endpoints-check (verdict jump x)"
    assert "filter-input" not in parse_monitor(other).chains
    assert parse_monitor("").chains == []


def test_the_trace_table_matches_only_this_packets_syn():
    text = trace_table(Packet("10.244.1.13", "10.96.0.20", 80), "pod")
    assert "hook prerouting priority -350" in text and "tcp flags & (syn | ack) == syn" in text
    assert "hook output" in trace_table(Packet("172.18.0.2", "10.96.0.20", 53, "udp"), "node")
    assert "flags" not in trace_table(Packet("172.18.0.2", "10.96.0.20", 53, "udp"), "node")
