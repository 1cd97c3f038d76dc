"""SPDY/3.1 framing of apiserver/spdy.py against frames made here as moby/spdystream (kubectl's
port-forward client) makes them: header blocks in one zlib stream primed with the SPDY/3
dictionary, frames split anywhere across WebSocket messages."""

from __future__ import annotations

import struct
import zlib

import pytest

from netemu.apiserver import spdy


class Client:
    """The client's side: SYN_STREAM, DATA, PING as spdystream writes them."""

    def __init__(self):
        self.deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                        spdy.DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)

    def syn_stream(self, sid: int, headers: dict[str, str]) -> bytes:
        block = spdy._header_block(headers)
        packed = self.deflate.compress(block) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIH", sid, 0, 0) + packed
        return struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(payload)) + payload

    def ping(self, ping_id: int) -> bytes:
        return struct.pack(">HHII", 0x8003, spdy.PING, 4, ping_id)


def test_the_dictionary_is_spdy3s():
    assert len(spdy.DICTIONARY) == 1423                     # the draft's (Chromium's kV3DictionarySize)
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"utf-,*,enq=0.")


def test_streams_data_and_pings_split_across_messages():
    client, server = Client(), spdy.SpdyConnection()
    wire = (client.syn_stream(1, {"streamType": "error", "port": "80", "requestID": "0"})
            + client.syn_stream(3, {"streamType": "data", "port": "80", "requestID": "0"})
            + spdy.SpdyConnection.data(3, b"GET / HTTP/1.1\r\n\r\n") + spdy.SpdyConnection.data(1, fin=True)
            + client.ping(1))
    frames = []
    for i in range(0, len(wire), 7):                         # any chunking
        frames += server.feed(wire[i:i + 7])
    kinds = [(f.type, f.stream_id) for f in frames]
    assert kinds == [(spdy.SYN_STREAM, 1), (spdy.SYN_STREAM, 3), (spdy.DATA, 3), (spdy.DATA, 1), (spdy.PING, 0)]
    assert frames[1].headers == {"streamtype": "data", "port": "80", "requestid": "0"}
    assert frames[2].data == b"GET / HTTP/1.1\r\n\r\n" and not frames[2].fin and frames[3].fin
    assert frames[4].value == 1


def test_replies_read_back_as_the_client_reads_them():
    client, server = Client(), spdy.SpdyConnection()
    for sid in (1, 3):                                        # one zlib stream for the connection
        reply = server.syn_reply(sid)
        word, flags_len = struct.unpack_from(">II", reply)
        assert word == (0x8003 << 16) | spdy.SYN_REPLY and flags_len & 0xFFFFFF == len(reply) - 8
        assert struct.unpack_from(">I", reply, 8)[0] == sid
        assert client.inflate.decompress(reply[12:]) == b"\x00\x00\x00\x00"
    data = spdy.SpdyConnection.data(5, b"abc", fin=True)
    assert data == struct.pack(">II", 5, (1 << 24) | 3) + b"abc"


def test_an_unknown_version_ends_the_connection():
    with pytest.raises(spdy.SpdyError, match="version 2"):
        spdy.SpdyConnection().feed(struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\x00\x00\x00\x01")
