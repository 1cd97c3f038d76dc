"""One DNS query to one answer: the plugin chain of a CoreDNS server block (no sockets here).

The chain, in CoreDNS's plugin order: log -> cache -> loadbalance (on the way out) ->
kubernetes -> forward. What netemu's emulation cannot do it says: ``forward`` would send the
query to the node's resolvers, which are outside the emulation (and traffic never leaves it), so
a name no zone holds is answered SERVFAIL at once, with the error CoreDNS's ``errors`` plugin
would log for an unreachable upstream.

The wire format is dnslib's: requests parsed, answers built from its RR objects and packed;
over UDP an answer larger than the client's limit (512 bytes, or its EDNS0 buffer size) is sent
truncated (TC set, no records) so the client retries over TCP, as miekg/dns' Truncate does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dnslib import EDNS0, OPCODE, QTYPE, RCODE, RR, DNSError, DNSHeader, DNSRecord
from dnslib.buffer import Buffer

from .corefile import Server
from .zone import NOT_OURS, ClusterZone, Reply, shuffle_addresses

MAX_UDP = 512
OUR_UDP_SIZE = 1232         # the EDNS0 buffer size CoreDNS advertises


@dataclass
class Counters:
    """What the prometheus plugin exports (coredns_dns_requests_total and friends)."""

    requests: dict = field(default_factory=dict)        # (proto, family, type) -> n
    responses: dict = field(default_factory=dict)       # rcode name -> n
    cache_hits: dict = field(default_factory=dict)      # "success"|"denial" -> n
    cache_misses: int = 0

    def count(self, table: dict, key) -> None:
        table[key] = table.get(key, 0) + 1


class Cache:
    """The cache plugin: answers kept for min(record TTL, cap) seconds (denials: the SOA's
    minimum), TTLs counted down when served. SERVFAIL is not kept."""

    def __init__(self, cap: int, clock=time.monotonic, size: int = 10000):
        self.cap, self.clock, self.size = cap, clock, size
        self.entries: dict[tuple, tuple[float, float, Reply]] = {}

    def get(self, key: tuple) -> Reply | None:
        hit = self.entries.get(key)
        if hit is None:
            return None
        stored, expires, reply = hit
        now = self.clock()
        if now >= expires:
            del self.entries[key]
            return None
        age = int(now - stored)
        return Reply(reply.rcode, *[[_aged(rr, age) for rr in section]
                                    for section in (reply.answer, reply.authority, reply.additional)])

    def put(self, key: tuple, reply: Reply) -> None:
        if reply.rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN) or self.cap <= 0:
            return
        if reply.answer:
            ttl = min(rr.ttl for rr in reply.answer)
        else:
            ttl = min((rr.rdata.times[-1] if rr.rtype == QTYPE.SOA else rr.ttl) for rr in reply.authority) \
                if reply.authority else 0
        ttl = min(ttl, self.cap)
        if ttl <= 0:
            return
        if len(self.entries) >= self.size:
            self.entries.pop(next(iter(self.entries)))
        now = self.clock()
        self.entries[key] = (now, now + ttl, reply)


def _aged(rr: RR, age: int) -> RR:
    return RR(rr.rname, rr.rtype, rr.rclass, max(0, rr.ttl - age), rr.rdata)


class Handler:
    """The answering side of one server block."""

    def __init__(self, server: Server, zone: ClusterZone | None, log=None):
        self.server, self.zone, self.log = server, zone, log
        self.cache = Cache(server.cache) if server.cache else None
        self.counters = Counters()

    def answer(self, data: bytes, proto: str, peer: tuple, limit: int | None = None) -> bytes | None:
        """The packed answer to ``data`` (None: not even a header to answer to)."""
        start = time.monotonic()
        try:
            request = DNSRecord.parse(data)
        except (DNSError, IndexError, ValueError, UnicodeError):
            return self._formerr(data)
        reply = request.reply()
        reply.header.rd = request.header.rd
        if request.header.opcode != OPCODE.QUERY or len(request.questions) != 1:
            reply.header.rcode = RCODE.NOTIMP if request.header.opcode != OPCODE.QUERY else RCODE.FORMERR
            return reply.pack()
        q = request.q
        qname, qtype = str(q.qname), q.qtype
        self.counters.count(self.counters.requests, (proto, "1" if ":" not in peer[0] else "2",
                                                    QTYPE.get(qtype, str(qtype))))
        result = self._resolve(qname, qtype)
        reply.header.rcode = result.rcode
        reply.header.aa = 1 if result.rcode != RCODE.SERVFAIL else 0
        answer = shuffle_addresses(result.answer) if self.server.loadbalance else result.answer
        for rr in answer:
            reply.add_answer(rr)
        for rr in result.authority:
            reply.add_auth(rr)
        for rr in result.additional:
            reply.add_ar(rr)
        opt = next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)
        if opt is not None:
            reply.add_ar(EDNS0(udp_len=OUR_UDP_SIZE))
        packed = reply.pack()
        if proto == "udp":
            cap = limit or (max(MAX_UDP, opt.rclass) if opt is not None else MAX_UDP)
            if len(packed) > cap:
                packed = self._truncated(reply, opt is not None)
        self.counters.count(self.counters.responses, RCODE.get(result.rcode, str(result.rcode)))
        if self.log is not None and self.server.log:
            self.log(_log_line(peer, request, proto, len(data), reply, len(packed), time.monotonic() - start))
        return packed

    def _resolve(self, qname: str, qtype: int) -> Reply:
        key = (qname.lower(), qtype)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.counters.count(self.counters.cache_hits, "success" if hit.answer else "denial")
                return hit
            self.counters.cache_misses += 1
        result = self.zone.lookup(qname, qtype) if self.zone is not None else NOT_OURS
        if result is NOT_OURS:
            result = self._forward(qname, qtype)
        if self.cache is not None:
            self.cache.put(key, result)
        return result

    def _forward(self, qname: str, qtype: int) -> Reply:
        if self.server.errors and self.log is not None:
            where = " ".join(self.server.forward[1:]) if self.server.forward else "(no forward plugin)"
            self.log(f"[ERROR] plugin/errors: 2 {qname} {QTYPE.get(qtype, qtype)}: no upstream reachable "
                     f"from the emulation (forward {where})")
        return Reply(RCODE.SERVFAIL)

    @staticmethod
    def _truncated(reply: DNSRecord, edns: bool) -> bytes:
        short = DNSRecord(DNSHeader(id=reply.header.id, qr=1, aa=reply.header.aa, tc=1, rd=reply.header.rd,
                                    ra=1, rcode=reply.header.rcode), q=reply.q)
        if edns:
            short.add_ar(EDNS0(udp_len=OUR_UDP_SIZE))
        return short.pack()

    @staticmethod
    def _formerr(data: bytes) -> bytes | None:
        if len(data) < 12:
            return None
        try:
            header = DNSHeader.parse(Buffer(data[:12]))
        except Exception:  # noqa: BLE001 - garbage: nothing to answer to
            return None
        return DNSRecord(DNSHeader(id=header.id, qr=1, rcode=RCODE.FORMERR)).pack()


def _log_line(peer: tuple, request: DNSRecord, proto: str, size: int, reply: DNSRecord, out: int,
              took: float) -> str:
    """The log plugin's common format:
    ``[INFO] ip:port - id "TYPE CLASS name. proto size do bufsize" RCODE flags size duration``."""
    q = request.q
    flags = ",".join(f for f, on in (("qr", 1), ("aa", reply.header.aa), ("tc", reply.header.tc),
                                     ("rd", reply.header.rd), ("ra", reply.header.ra)) if on)
    return (f'[INFO] {peer[0]}:{peer[1]} - {request.header.id} "{QTYPE.get(q.qtype, q.qtype)} IN {q.qname} '
            f'{proto} {size} false 512" {RCODE.get(reply.header.rcode, reply.header.rcode)} {flags} {out} '
            f'{took:.9f}s')
