"""DNS queries from inside an emulated namespace (a pod's, a node's): one at a time, or a load.

For tests and benchmarks of the cluster DNS: the query leaves from a socket created in the
given network namespace (nsenter.socket_in_netns), so it crosses kube-proxy's rules exactly as a
pod's resolver's would, and nothing is sent from the root namespace. dnslib builds and parses
the messages.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, DNSRecord

from netemu.agent.runtime.nsenter import socket_in_netns

CLUSTER_DNS = "10.96.0.10"


@dataclass
class Answer:
    rcode: str                    # NOERROR, NXDOMAIN, SERVFAIL, ...
    records: list[tuple[str, str, str]]     # (owner, type, rdata) of the answer section
    authority: list[tuple[str, str, str]]
    additional: list[tuple[str, str, str]]
    truncated: bool = False

    def values(self, rtype: str) -> list[str]:
        return [rdata for _, t, rdata in self.records if t == rtype]


def _rrs(section) -> list[tuple[str, str, str]]:
    return [(str(rr.rname), QTYPE.get(rr.rtype, str(rr.rtype)), str(rr.rdata)) for rr in section]


def parse_answer(data: bytes) -> Answer:
    msg = DNSRecord.parse(data)
    return Answer(RCODE.get(msg.header.rcode, str(msg.header.rcode)), _rrs(msg.rr), _rrs(msg.auth),
                  [r for r in _rrs(msg.ar) if r[1] != "OPT"], bool(msg.header.tc))


def query(netns: str | None, name: str, qtype: str = "A", server: str = CLUSTER_DNS, port: int = 53,
          tcp: bool = False, timeout: float = 2.0) -> Answer:
    """One query, blocking; raises TimeoutError when nothing answers within ``timeout``."""
    packet = DNSRecord.question(name, qtype).pack()
    sock = socket_in_netns(netns, socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    sock.setblocking(True)
    sock.settimeout(timeout)
    try:
        if tcp:
            sock.connect((server, port))
            sock.sendall(struct.pack("!H", len(packet)) + packet)
            size = struct.unpack("!H", _recv_exactly(sock, 2))[0]
            return parse_answer(_recv_exactly(sock, size))
        sock.sendto(packet, (server, port))
        data, _ = sock.recvfrom(65535)
        return parse_answer(data)
    except socket.timeout:
        raise TimeoutError(f"no answer from {server}:{port} for {name} {qtype} in {timeout}s") from None
    finally:
        sock.close()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the DNS server closed the connection")
        data += chunk
    return data


@dataclass
class LoadResult:
    sent: int = 0                 # names asked (a retry is not a new one)
    answered: int = 0
    timeouts: int = 0             # attempts that got no answer in time (retried if allowed)
    refused: int = 0              # attempts answered by ICMP port unreachable (retried if allowed)
    failed: int = 0               # names with no answer after every attempt
    failure_times: list = field(default_factory=list)  # seconds from the start, one per failed name
    rcodes: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list)      # seconds, answered queries
    seconds: float = 0.0

    @property
    def qps(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def load(netns: str | None, names: list[str], seconds: float, concurrency: int = 8,
               server: str = CLUSTER_DNS, timeout: float = 1.0, qtype: str = "A",
               attempts: int = 1) -> LoadResult:
    """``concurrency`` closed loops, each sending a query (a fresh socket, so a fresh source port,
    as a stub resolver does) and waiting for its answer, for ``seconds``. ``attempts``: tries per
    name, as resolv.conf's ``attempts`` (glibc retries a query that timed out or was refused)."""
    result = LoadResult()
    loop = asyncio.get_running_loop()
    begin = time.monotonic()
    end = begin + seconds

    async def one(name: str) -> bool:
        request = DNSRecord.question(name, qtype)
        request.header.id = random.randrange(65536)
        sock = socket_in_netns(netns, socket.AF_INET, socket.SOCK_DGRAM)
        try:
            await loop.sock_connect(sock, (server, 53))
            start = time.monotonic()
            await loop.sock_sendall(sock, request.pack())
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout)
            result.latencies.append(time.monotonic() - start)
            result.answered += 1
            rcode = RCODE.get(DNSRecord.parse(data).header.rcode, "?")
            result.rcodes[rcode] = result.rcodes.get(rcode, 0) + 1
            return True
        except asyncio.TimeoutError:
            result.timeouts += 1
            return False
        except ConnectionRefusedError:
            # a server socket already closed behind a rule not yet synced: glibc's res_send
            # takes ECONNREFUSED on its connected socket as this attempt's failure, not the name's
            result.refused += 1
            return False
        finally:
            sock.close()

    async def worker(k: int) -> None:
        i = k
        while time.monotonic() < end:
            result.sent += 1
            for _ in range(max(1, attempts)):
                if await one(names[i % len(names)]):
                    break
            else:
                result.failed += 1
                result.failure_times.append(time.monotonic() - begin)
            i += concurrency

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    result.seconds = time.monotonic() - begin
    return result
