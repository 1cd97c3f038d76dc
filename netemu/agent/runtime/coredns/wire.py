"""DNS over UDP and TCP as asyncio protocols (RFC 1035 4.2: TCP messages carry a 2-byte length).

``pick(data)`` chooses the server block's Handler for a message; the Handler does the rest
(handler.py). A TCP connection may carry many queries, answered in order; it is closed after
IDLE seconds without one (CoreDNS's read timeout), or on a malformed length.
"""

from __future__ import annotations

import asyncio
import struct

from dnslib import DNSRecord

IDLE = 10.0


def question_name(data: bytes) -> str:
    """The lower-cased first question name of a message ("" when it has none)."""
    try:
        return str(DNSRecord.parse(data).q.qname).lower()
    except Exception:  # noqa: BLE001 - a malformed message: any block may answer FORMERR
        return ""


class UDPDNS(asyncio.DatagramProtocol):
    __slots__ = ("pick", "transport")

    def __init__(self, pick):
        self.pick = pick
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        handler = self.pick(data)
        if handler is None:
            return
        out = handler.answer(data, "udp", addr)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


class TCPDNS(asyncio.Protocol):
    __slots__ = ("pick", "transport", "buf", "peer", "timer")

    def __init__(self, pick):
        self.pick = pick
        self.transport = None
        self.buf = b""
        self.peer = ("", 0)
        self.timer = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername") or ("", 0)
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(IDLE, self._idle)

    def _idle(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._arm()
        while len(self.buf) >= 2:
            (size,) = struct.unpack("!H", self.buf[:2])
            if size == 0:
                self.transport.close()
                return
            if len(self.buf) < 2 + size:
                return
            message, self.buf = self.buf[2:2 + size], self.buf[2 + size:]
            handler = self.pick(message)
            out = handler.answer(message, "tcp", self.peer) if handler is not None else None
            if out is not None:
                self.transport.write(struct.pack("!H", len(out)) + out)

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None
