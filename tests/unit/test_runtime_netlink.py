"""The rtnetlink client's messages, checked byte-wise against a fake socket (no kernel)."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from netemu.agent.runtime import netlink as nl


class FakeSock:
    """Records requests; answers each with an ACK carrying ``errno_`` (0: success)."""

    def __init__(self, errno_: int = 0, link_index: int | None = None, extra: bytes = b""):
        self.sent: list[bytes] = []
        self.errno_, self.link_index, self.extra = errno_, link_index, extra
        self.reply = b""

    def setblocking(self, flag):
        pass

    def bind(self, addr):
        pass

    def close(self):
        pass

    def send(self, msg: bytes) -> int:
        self.sent.append(msg)
        _, kind, _, seq, _ = struct.unpack_from("=IHHII", msg)
        out = b""
        if kind == nl.RTM_GETLINK and self.link_index is not None:
            body = nl.ifinfo(self.link_index) + self.extra
            out += struct.pack("=IHHII", 16 + len(body), nl.RTM_NEWLINK, 0, seq, 0) + body
        err = struct.pack("=i", -self.errno_) + msg[:16]
        out += struct.pack("=IHHII", 16 + len(err), nl.NLMSG_ERROR, 0, seq, 0) + err
        self.reply = out
        return len(msg)

    def recv(self, size: int) -> bytes:
        return self.reply


def test_attributes_are_padded_and_nested_flagged():
    assert nl.attr(3, b"ab\0") == struct.pack("=HH", 7, 3) + b"ab\0" + b"\0"
    assert nl.attr(3, b"abcd") == struct.pack("=HH", 8, 3) + b"abcd"
    n = nl.nested(18, nl.attr(1, b"veth"))
    assert struct.unpack_from("=HH", n) == (12, 18 | nl.NLA_F_NESTED)


def test_veth_request_names_both_ends_the_peer_netns_and_master():
    sock = FakeSock()
    nl.RTNL(sock).veth_add("veth12345678", "eth0", 7, master=4)
    msg = sock.sent[0]
    length, kind, flags, _, _ = struct.unpack_from("=IHHII", msg)
    assert length == len(msg) and kind == nl.RTM_NEWLINK
    assert flags & nl.NLM_F_CREATE and flags & nl.NLM_F_EXCL and flags & nl.NLM_F_ACK
    assert b"veth12345678\0" in msg and b"eth0\0" in msg and b"veth" in msg
    assert nl.attr(nl.IFLA_NET_NS_FD, struct.pack("=I", 7)) in msg
    assert nl.attr(nl.IFLA_MASTER, struct.pack("=I", 4)) in msg
    family, _, index, ifflags, change = struct.unpack_from("=BxHiII", msg, 16)
    assert (ifflags & nl.IFF_UP, change & nl.IFF_UP) == (1, 1)


def test_kernel_errors_raise_with_errno():
    with pytest.raises(OSError) as err:
        nl.RTNL(FakeSock(errno.EEXIST)).addr_add(3, "10.244.1.5", 24)
    assert err.value.errno == errno.EEXIST


def test_link_index_reads_the_reply_and_address_carries_broadcast():
    assert nl.RTNL(FakeSock(link_index=42)).link_index("cni0") == 42
    sock = FakeSock()
    nl.RTNL(sock).addr_add(3, "10.244.1.5", 24)
    msg = sock.sent[0]
    assert struct.unpack_from("=BBBBI", msg, 16) == (socket.AF_INET, 24, 0, 0, 3)
    assert nl.attr(nl.IFA_BROADCAST, bytes([10, 244, 1, 255])) in msg
    sock = FakeSock()
    nl.RTNL(sock).default_route("10.244.1.1", 3)
    assert nl.attr(nl.RTA_GATEWAY, bytes([10, 244, 1, 1])) in sock.sent[0]


def test_operstate_is_read_from_the_link_attributes():
    extra = nl.attr(nl.IFLA_IFNAME, b"eth0\0") + nl.attr(nl.IFLA_OPERSTATE, bytes([nl.IF_OPER_UP]))
    assert nl.RTNL(FakeSock(link_index=3, extra=extra)).operstate(3) == nl.IF_OPER_UP
    assert nl.RTNL(FakeSock(link_index=3, extra=nl.attr(nl.IFLA_OPERSTATE, b"\x02"))).operstate(3) == 2
