"""Packet captures inside the emulation: a pcap Wireshark opens, and the flows it holds.

``Capture`` runs tcpdump in one namespace (a pod's, a node's, an external host's; or on one of
the cluster's links in the root namespace) writing FILE.pcap packet by packet (``-U``), so a
capture stopped at any time is whole. ``summarize`` reads it back with scapy and lists the flows
(protocol, source, destination, packets, whether a SYN was seen) and pairs them into the
translations a node made: the same client address and port seen once towards a Service address
and once towards a pod is the DNAT of that Service, made visible.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path


class CaptureError(RuntimeError):
    """tcpdump could not start (bad filter, no such interface, not root); its words included."""


class Capture:
    """tcpdump in ``netns`` (None: this namespace) on ``iface``; ``start``/``stop`` or ``with``."""

    def __init__(self, path: str | Path, netns: str | None = None, iface: str = "any",
                 bpf: str | None = None, count: int | None = None):
        self.path, self.netns, self.iface, self.bpf, self.count = Path(path), netns, iface, bpf, count
        self.proc: subprocess.Popen | None = None
        self.stderr = ""
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    def argv(self) -> list[str]:
        # -Z root: the file stays root's, wherever it is (tcpdump drops to its own user by default)
        # --immediate-mode: without it libpcap holds packets in a ring block that a stop (SIGINT) drops
        # -B: a 16 MiB kernel buffer, so a burst on a busy machine is kept, not "dropped by kernel"
        argv = ["tcpdump", "-i", self.iface, "-n", "-U", "--immediate-mode", "-B", "16384", "-Z", "root",
                "-w", str(self.path)]
        if self.count:
            argv += ["-c", str(self.count)]
        if self.bpf:
            argv += self.bpf.split()            # tcpdump joins its trailing words into one filter
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    def start(self, timeout: float = 10.0) -> Capture:
        try:
            self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         text=True, start_new_session=True)
        except FileNotFoundError as exc:
            raise CaptureError(f"cannot run tcpdump: {exc} (Debian package tcpdump)") from None
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._listening.wait(timeout) or self.proc.poll() is not None:
            self.stop()
            raise CaptureError(f"tcpdump did not start: {self.stderr.strip() or 'no answer in %.0fs' % timeout}")
        return self

    def _read_stderr(self) -> None:
        """tcpdump says "listening on ..." once its socket is bound: the capture has begun."""
        for line in self.proc.stderr:
            self.stderr += line
            if "listening on" in line:
                self._listening.set()
        self._listening.set()          # it ended: start() sees the exit

    def wait(self, duration: float | None = None) -> None:
        """Until ``count`` packets were taken, ``duration`` passed, or Ctrl-C."""
        try:
            self.proc.wait(timeout=duration)
        except subprocess.TimeoutExpired:
            pass
        except KeyboardInterrupt:
            pass

    def stop(self) -> str:
        """SIGINT (tcpdump flushes and reports), then its summary line ("N packets captured")."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        return next((line for line in self.stderr.splitlines() if "captured" in line), "")

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class Flow:
    proto: str
    src: str                         # "ip:port"
    dst: str
    packets: int = 0
    syn: bool = False
    interfaces: set[str] = field(default_factory=set)


@dataclass
class Summary:
    packets: int
    flows: list[Flow]
    translations: list[tuple[Flow, Flow]]     # (towards the Service address, towards the pod)

    def render(self) -> str:
        lines = [f"{self.packets} packets, {len(self.flows)} flows"]
        for f in self.flows:
            lines.append(f"  {f.proto:4} {f.src:>21} -> {f.dst:<21} {f.packets:5} pkts{'  SYN' if f.syn else ''}")
        for before, after in self.translations:
            lines.append(f"DNAT {before.proto} {before.src}: {before.dst} -> {after.dst}")
        return "\n".join(lines) + "\n"


def summarize(path: str | Path, service_ips: set[str] = frozenset()) -> Summary:
    """Flows of the pcap (client-to-server direction only: the first packet's direction) and the
    DNAT pairs among them. ``service_ips``: addresses known to be Service addresses (the pair's
    first side); without them any two destinations of one client address:port pair up."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.utils import rdpcap

    packets = rdpcap(str(path))
    flows: dict[tuple, Flow] = {}
    for pkt in packets:
        if IP not in pkt:
            continue
        ip = pkt[IP]
        l4 = pkt[TCP] if TCP in pkt else pkt[UDP] if UDP in pkt else None
        if l4 is None:
            continue
        proto = "tcp" if TCP in pkt else "udp"
        a, b = (ip.src, l4.sport), (ip.dst, l4.dport)
        key = (proto, a, b)
        if (proto, b, a) in flows:                # the answer of a flow already seen
            flows[(proto, b, a)].packets += 1
            continue
        flow = flows.setdefault(key, Flow(proto, f"{a[0]}:{a[1]}", f"{b[0]}:{b[1]}"))
        flow.packets += 1
        flow.syn = flow.syn or (proto == "tcp" and bool(l4.flags & 0x02) and not l4.flags & 0x10)
    by_client: dict[tuple, list[Flow]] = {}
    for f in flows.values():
        by_client.setdefault((f.proto, f.src), []).append(f)
    pairs = []
    for group in by_client.values():
        if len(group) < 2:
            continue
        for i, before in enumerate(group):      # capture order: the Service address is seen first
            if service_ips and before.dst.rsplit(":", 1)[0] not in service_ips:
                continue
            pairs += [(before, after) for after in group[i + 1:]
                      if not service_ips or after.dst.rsplit(":", 1)[0] not in service_ips]
    return Summary(len(packets), list(flows.values()), pairs)
