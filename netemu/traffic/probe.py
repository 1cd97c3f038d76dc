"""Crafted packets (scapy): one TCP SYN or UDP datagram with a chosen source port, and a source
address of our choice inside the emulated ranges, to see what kube-proxy's rules do with it.

``python -m netemu.traffic.probe`` is the sender: the caller starts it in the client's namespace
(``ip netns exec NS ...``) with one JSON line (``Probe``) on stdin; it sends with scapy's
``sr1`` and prints the answer as JSON (who answered, from which address and port: the Service's
address after the node undid the DNAT; the flags; or nothing). The caller then reads the node's
conntrack entry for the flow, where the translation itself is written down
(``src=client dst=ClusterIP ... src=pod dst=client``).

A spoofed source gets no answer here (it goes to the spoofed address) but still leaves the
conntrack entry: enough for affinity, loadBalancerSourceRanges and ETP Local experiments.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from dataclasses import asdict, dataclass

from netemu.traffic.spec import SpecError

EMULATED = ("10.244.0.0/16",)            # the pod CIDR; the cluster's node network is added by the caller


@dataclass(frozen=True)
class Probe:
    proto: str                  # tcp (a SYN) | udp
    src: str | None             # None: the namespace's own address
    sport: int
    dst: str
    dport: int
    timeout: float = 2.0
    payload: str = "hostname"   # UDP: agnhost's command

    def check(self, ranges: list[str]) -> Probe:
        if self.proto not in ("tcp", "udp"):
            raise SpecError("a probe is --syn (tcp) or --udp")
        if not 1 <= self.sport <= 65535 or not 1 <= self.dport <= 65535:
            raise SpecError("ports must be 1-65535")
        if self.src is not None:
            try:
                addr = ipaddress.ip_address(self.src)
            except ValueError:
                raise SpecError(f"--src {self.src!r} is not an IP address") from None
            if not any(addr in ipaddress.ip_network(r) for r in ranges):
                raise SpecError(f"--src {self.src} is outside the emulated ranges ({', '.join(ranges)}): a spoofed "
                                f"source must belong to the emulation")
        return self


def send(p: Probe) -> dict:
    """In the client's namespace: send the packet, return the answer (scapy, raw sockets)."""
    from scapy.config import conf
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.packet import Raw
    from scapy.sendrecv import sr1

    conf.verb = 0
    ip = IP(dst=p.dst) if p.src is None else IP(src=p.src, dst=p.dst)
    pkt = ip / (TCP(sport=p.sport, dport=p.dport, flags="S", seq=1000) if p.proto == "tcp"
                else UDP(sport=p.sport, dport=p.dport) / Raw(p.payload.encode()))
    answer = sr1(pkt, timeout=p.timeout)
    sent = {"src": pkt[IP].src, "sport": p.sport, "dst": p.dst, "dport": p.dport, "proto": p.proto}
    if answer is None:
        return {"sent": sent, "answer": None}
    out = {"src": answer[IP].src, "dst": answer[IP].dst}
    if TCP in answer:
        out.update(sport=answer[TCP].sport, dport=answer[TCP].dport, flags=str(answer[TCP].flags))
    elif UDP in answer:
        out.update(sport=answer[UDP].sport, dport=answer[UDP].dport,
                   data=bytes(answer[UDP].payload).decode(errors="replace")[:200])
    elif ICMP in answer:
        out.update(icmp_type=int(answer[ICMP].type), icmp_code=int(answer[ICMP].code))
    return {"sent": sent, "answer": out}


def run_in(netns: str, p: Probe, python: str = sys.executable) -> dict:
    """The sender in ``netns``; its JSON answer."""
    proc = subprocess.run(["ip", "netns", "exec", netns, python, "-m", "netemu.traffic.probe"],
                          input=json.dumps(asdict(p)), capture_output=True, text=True, timeout=p.timeout + 30)
    if proc.returncode != 0:
        raise SpecError(f"the probe failed in {netns}: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout)


def conntrack(node_netns: str, p: Probe, src: str) -> list[str]:
    """The node's conntrack entries of the probe's flow (original direction: src:sport)."""
    proc = subprocess.run(["ip", "netns", "exec", node_netns, "conntrack", "-L", "-p", p.proto, "-s", src,
                           "--sport", str(p.sport)], capture_output=True, text=True)
    return [line for line in proc.stdout.splitlines() if line.strip()]


if __name__ == "__main__":
    print(json.dumps(send(Probe(**json.loads(sys.stdin.read())))))
