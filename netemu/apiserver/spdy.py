"""SPDY/3.1 framing, the server's side, sans I/O: what kubectl's port-forward speaks.

kubectl 1.31+ port-forwards over a WebSocket whose binary messages carry a SPDY/3.1 byte
stream (subprotocol ``SPDY/3.1+portforward.k8s.io``: client-go's tunneling dialer runs
moby/spdystream over the WebSocket). ``SpdyConnection.feed`` takes those bytes in any chunking
and returns whole frames; the other methods make the frames the server sends. Name/value header
blocks are zlib streams, one per direction for the whole connection, primed with the SPDY/3
dictionary (draft-mbelshe-httpbis-spdy-00 section 2.6.10.1). spdystream does no flow control,
so WINDOW_UPDATE and SETTINGS are read and ignored. Pure.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
DATA = 0                       # our tag for data frames (they have no type field)
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_CANCEL, RST_INTERNAL_ERROR = 1, 5, 6
MAX_FRAME = 1 << 24

_WORDS = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
          "accept-ranges age allow authorization cache-control connection content-base content-encoding "
          "content-language content-length content-location content-md5 content-range content-type date etag "
          "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
          "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
          "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning "
          "www-authenticate method get status").split() + ["200 OK", "version", "HTTP/1.1", "url", "public",
                                                          "set-cookie", "keep-alive", "origin"]
_TAIL = (b"100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
         b"203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
         b"403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
         b"Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
         b"chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
         b"text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL


class SpdyError(ValueError):
    """A frame this side cannot read: the connection is over."""


@dataclass
class Frame:
    type: int                       # DATA or a control frame type
    flags: int
    stream_id: int = 0
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    value: int = 0                  # PING id, RST_STREAM / GOAWAY status

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


def _header_block(headers: dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def _parse_headers(block: bytes) -> dict[str, str]:
    (count,), pos, out = struct.unpack_from(">I", block), 4, {}
    for _ in range(count):
        (n,) = struct.unpack_from(">I", block, pos)
        name = block[pos + 4:pos + 4 + n].decode("latin-1")
        pos += 4 + n
        (v,) = struct.unpack_from(">I", block, pos)
        out[name] = block[pos + 4:pos + 4 + v].decode("latin-1")
        pos += 4 + v
    return out


class SpdyConnection:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8,
                                         zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    # ---- reading ----

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            word, flags_length = struct.unpack_from(">II", self._buf)
            length = flags_length & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = flags_length >> 24
            if word & 0x80000000:
                frames.append(self._control((word >> 16) & 0x7FFF, word & 0xFFFF, flags, payload))
            else:
                frames.append(Frame(DATA, flags, word & 0x7FFFFFFF, payload))
        return frames

    def _control(self, version: int, type_: int, flags: int, payload: bytes) -> Frame:
        if version != 3:
            raise SpdyError(f"SPDY version {version} (only 3 is spoken)")
        try:
            if type_ == SYN_STREAM:
                (sid,) = struct.unpack_from(">I", payload)
                return Frame(type_, flags, sid & 0x7FFFFFFF, headers=self._inflated(payload[10:]))
            if type_ in (SYN_REPLY, HEADERS):
                (sid,) = struct.unpack_from(">I", payload)
                return Frame(type_, flags, sid & 0x7FFFFFFF, headers=self._inflated(payload[4:]))
            if type_ in (RST_STREAM, WINDOW_UPDATE, GOAWAY):
                sid, value = struct.unpack_from(">II", payload)
                return Frame(type_, flags, sid & 0x7FFFFFFF, value=value)
            if type_ == PING:
                return Frame(type_, flags, value=struct.unpack_from(">I", payload)[0])
        except (struct.error, zlib.error) as exc:
            raise SpdyError(f"bad SPDY control frame {type_}: {exc}") from None
        return Frame(type_, flags, data=payload)          # SETTINGS and what else: read, unused

    def _inflated(self, block: bytes) -> dict[str, str]:
        return _parse_headers(self._inflate.decompress(block))

    # ---- writing ----

    @staticmethod
    def _control_frame(type_: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | 3, type_, (flags << 24) | len(payload)) + payload

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None, fin: bool = False) -> bytes:
        block = self._deflate.compress(_header_block(headers or {})) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return self._control_frame(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + block)

    @staticmethod
    def data(stream_id: int, data: bytes = b"", fin: bool = False) -> bytes:
        return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data

    def rst_stream(self, stream_id: int, status: int = RST_CANCEL) -> bytes:
        return self._control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control_frame(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_stream: int, status: int = 0) -> bytes:
        return self._control_frame(GOAWAY, 0, struct.pack(">II", last_stream, status))
