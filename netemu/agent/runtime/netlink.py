"""A tiny rtnetlink client: just the messages a pod sandbox needs, on a plain AF_NETLINK socket.

Why not ``ip``: on this VM every process spawn costs ~4 ms, and a sandbox needed three (netns
add, node-side batch, pod-side batch). Why not pyroute2: importing it adds ~12 MB to an agent
whose budget is 40 MB. These few messages (veth with its peer in another namespace, bridge
master, hairpin, link up, address, default route) fit on a page; each call waits for the
kernel's ACK and raises OSError with the kernel's errno, as ``ip`` would report it.
A socket talks to the namespace it was created in: callers create it in the right one.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK, RTM_SETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 18, 19, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_F_NESTED = 0x8000
IFLA_IFNAME, IFLA_MASTER, IFLA_PROTINFO, IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 10, 12, 16, 18, 28
IF_OPER_UP = 6
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFLA_BRPORT_MODE = 4  # hairpin
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_OIF, RTA_GATEWAY = 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RT_SCOPE_HOST, RTN_UNICAST = 254, 3, 0, 254, 1
IFF_UP = 0x1
AF_BRIDGE = 7

_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0, family: int = socket.AF_UNSPEC) -> bytes:
    return _IFINFO.pack(family, 0, index, flags, change)


def attrs(data: bytes):
    """Yield (type, payload) of the attributes packed in ``data``."""
    off = 0
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4:
            return
        yield kind & ~NLA_F_NESTED, data[off + 4:off + length]
        off += (length + 3) & ~3


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


class RTNL:
    """One NETLINK_ROUTE socket (in the namespace current when it was made)."""

    def __init__(self, sock: socket.socket | None = None):
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.setblocking(True)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RTNL":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, kind: int, body: bytes, flags: int = 0) -> list[bytes]:
        """Send one request with NLM_F_ACK; return reply payloads; raise OSError on an error."""
        self.seq += 1
        msg = _NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, 0) + body
        self.sock.send(msg)
        replies = []
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + _NLMSG.size <= len(data):
                length, mtype, _, seq, _ = _NLMSG.unpack_from(data, off)
                payload = data[off + _NLMSG.size:off + length]
                off += (length + 3) & ~3
                if seq != self.seq:
                    continue
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    return replies
                if mtype == NLMSG_DONE:
                    return replies
                replies.append(payload)

    # -- links ---------------------------------------------------------------------------
    def link_index(self, name: str) -> int:
        reply = self.request(RTM_GETLINK, ifinfo() + attr(IFLA_IFNAME, _name(name)))
        if not reply:
            raise OSError(19, f"no device {name}")
        return _IFINFO.unpack_from(reply[0])[2]

    def operstate(self, index: int) -> int:
        """The link's RFC 2863 operational state (IF_OPER_UP = 6 once the kernel's linkwatch
        has handled its carrier: qdisc attached, bridge port enabled)."""
        reply = self.request(RTM_GETLINK, ifinfo(index))
        for kind, payload in attrs(reply[0][_IFINFO.size:]) if reply else ():
            if kind == IFLA_OPERSTATE:
                return payload[0]
        return 0

    def veth_add(self, name: str, peer: str, peer_netns_fd: int, master: int | None = None,
                 up: bool = True) -> None:
        """``ip link add NAME type veth peer name PEER netns FD`` (+ ``master``, ``up``)."""
        peer_msg = ifinfo() + attr(IFLA_IFNAME, _name(peer)) + attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
        body = ifinfo(flags=IFF_UP if up else 0, change=IFF_UP if up else 0)
        body += attr(IFLA_IFNAME, _name(name))
        if master is not None:
            body += attr(IFLA_MASTER, struct.pack("=I", master))
        body += nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"veth"),
                       nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg)))
        self.request(RTM_NEWLINK, body, NLM_F_CREATE | NLM_F_EXCL)

    def hairpin(self, index: int, on: bool = True) -> None:
        """``bridge link set dev X hairpin on``: the bridge may send a frame back out its port."""
        body = ifinfo(index, family=AF_BRIDGE) + nested(IFLA_PROTINFO, attr(IFLA_BRPORT_MODE, bytes([int(on)])))
        self.request(RTM_SETLINK, body)

    def link_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, ifinfo(index, IFF_UP, IFF_UP))

    # -- addresses and routes ------------------------------------------------------------
    def addr_add(self, index: int, address: str, prefixlen: int) -> None:
        ip = ipaddress.IPv4Address(address)
        net = ipaddress.IPv4Network(f"{address}/{prefixlen}", strict=False)
        body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, ip.packed) + attr(IFA_ADDRESS, ip.packed)
        if prefixlen < 31:
            body += attr(IFA_BROADCAST, net.broadcast_address.packed)
        self.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL)

    def default_route(self, gateway: str, index: int) -> None:
        body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        body += attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed) + attr(RTA_OIF, struct.pack("=I", index))
        self.request(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_EXCL)
