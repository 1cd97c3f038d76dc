"""IPVS virtual/real servers, kube-ipvs0 and its addresses over netlink, a sync's changes in one batch.

pyroute2 opens the sockets inside a node's network namespace (it forks a helper into the
namespace), and its message classes (pyroute2.netlink.generic.ipvs.ipvsmsg, rtnl.ifaddrmsg) are
the source of the IPVS and address attribute numbers used here. The messages themselves are
packed and parsed here with ``struct``: pyroute2's per-call API costs ~23 ms per message in the lab
VM and its encoder ~0.6 ms per message on the host (measured), which alone would put a
one-Service change above the 50 ms target; and its synchronous sockets cannot be opened while an
asyncio loop runs, which the node agent's does. Here a sync's requests go out together (one
``sendmsg`` per 60 KB) and their acknowledgements come back together; every failure is reported
with its request.

Pure parts (``encode_*``, ``parse_*``) are unit-tested on any host; the sockets need a kernel with
ip_vs (the lab VM) but for ``ipvs_family``, which is how a host without it is recognised.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from typing import Iterable, Iterator, NamedTuple

from pyroute2.netlink.generic import ipvs as _ipvs
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg as _ifaddrmsg

from .state import FLAG_HASHED, PROTOCOL_NAMES, PROTOCOLS, RealServer, VirtualServer, VSKey

NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x300, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_F_NESTED = 0x8000
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NETLINK_ROUTE, NETLINK_GENERIC = 0, 16
IP_VS_CONN_F_MASQ = 0           # NAT forwarding: the only method kube-proxy uses
_HDR = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_GENL = struct.Struct("=BBH")   # genlmsghdr: command, version, reserved
_IFA = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_CHUNK = 60000                  # bytes per sendmsg (the kernel refuses more than sk_sndbuf)
# requests per sendmsg: the kernel queues one acknowledgement per request before we read any,
# and a queue over the receive buffer loses them (ENOBUFS): 5000 addresses in one go did
_CHUNK_MESSAGES = 128
_RCVBUF = 4 << 20
SO_RCVBUFFORCE = 33
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10            # acknowledgements without a copy of the request


def _attrs(nla_map) -> dict[str, int]:
    """pyroute2's nla_map (the index is the attribute number) as name -> number."""
    return {name: i for i, (name, *_rest) in enumerate(nla_map)}


CMD = _attrs(_ipvs.ipvsmsg.nla_map)
SVC = _attrs(_ipvs.ipvsmsg.service.nla_map)
DEST = _attrs(_ipvs.ipvsmsg.dest.nla_map)
IFA = _attrs(_ifaddrmsg.nla_map)


class NetlinkError(OSError):
    """One or more requests of a batch failed: each (what, errno) is listed."""

    def __init__(self, failures: list[tuple[str, int]]):
        self.failures = failures
        shown = "; ".join(f"{what}: {os.strerror(code)}" for what, code in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(failures[0][1] if failures else 0, f"netlink: {shown}{more}")


# ---- packing ---------------------------------------------------------------------------------

def _nla(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _addr16(address: str) -> bytes:
    """An address as ``union nf_inet_addr`` (16 bytes, IPv4 in the first 4), as ipvsadm sends it."""
    raw = socket.inet_pton(_family(address), address)
    return raw + b"\0" * (16 - len(raw))


def _service_key(key: VSKey) -> list[bytes]:
    return [_nla(SVC["IPVS_SVC_ATTR_AF"], struct.pack("=H", _family(key.address))),
            _nla(SVC["IPVS_SVC_ATTR_PROTOCOL"], struct.pack("=H", PROTOCOLS[key.protocol])),
            _nla(SVC["IPVS_SVC_ATTR_ADDR"], _addr16(key.address)),
            _nla(SVC["IPVS_SVC_ATTR_PORT"], struct.pack(">H", key.port))]


def _service(vs: VirtualServer, full: bool) -> bytes:
    parts = _service_key(vs.key)
    if full:   # the kernel wants all of these on NEW/SET (ip_vs_genl_parse_service, full_entry)
        netmask = 128 if _family(vs.key.address) == socket.AF_INET6 else 0xFFFFFFFF
        parts += [_nla(SVC["IPVS_SVC_ATTR_SCHED_NAME"], vs.scheduler.encode() + b"\0"),
                  _nla(SVC["IPVS_SVC_ATTR_FLAGS"], struct.pack("=II", vs.flags, 0xFFFFFFFF)),
                  _nla(SVC["IPVS_SVC_ATTR_TIMEOUT"], struct.pack("=I", vs.timeout)),
                  _nla(SVC["IPVS_SVC_ATTR_NETMASK"], struct.pack(">I", netmask))]
    return _nla(CMD["IPVS_CMD_ATTR_SERVICE"] | NLA_F_NESTED, b"".join(parts))


def _dest(rs: RealServer, full: bool) -> bytes:
    parts = [_nla(DEST["IPVS_DEST_ATTR_ADDR"], _addr16(rs.address)),
             _nla(DEST["IPVS_DEST_ATTR_PORT"], struct.pack(">H", rs.port))]
    if full:
        parts += [_nla(DEST["IPVS_DEST_ATTR_FWD_METHOD"], struct.pack("=I", IP_VS_CONN_F_MASQ)),
                  _nla(DEST["IPVS_DEST_ATTR_WEIGHT"], struct.pack("=I", rs.weight)),
                  _nla(DEST["IPVS_DEST_ATTR_U_THRESH"], struct.pack("=I", 0)),
                  _nla(DEST["IPVS_DEST_ATTR_L_THRESH"], struct.pack("=I", 0)),
                  _nla(DEST["IPVS_DEST_ATTR_ADDR_FAMILY"], struct.pack("=H", _family(rs.address)))]
    return _nla(CMD["IPVS_CMD_ATTR_DEST"] | NLA_F_NESTED, b"".join(parts))


def encode_ipvs(command: str, family_id: int, seq: int, vs: VirtualServer | VSKey | None,
                rs: RealServer | None = None, dump: bool = False) -> bytes:
    """One IPVS request: ``command`` is ipvs.IPVS_CMD_* without the prefix (NEW_SERVICE, ...);
    ``vs`` None for a dump of every service."""
    cmd = getattr(_ipvs, f"IPVS_CMD_{command}")
    body = _GENL.pack(cmd, _ipvs.GENL_VERSION, 0)
    if vs is not None:
        server = vs if isinstance(vs, VirtualServer) else VirtualServer(vs)
        body += _service(server, full=command in ("NEW_SERVICE", "SET_SERVICE"))
    if rs is not None:
        body += _dest(rs, full=command in ("NEW_DEST", "SET_DEST"))
    flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
    return _HDR.pack(_HDR.size + len(body), family_id, flags, seq, 0) + body


def encode_timeouts(family_id: int, seq: int, tcp: int, tcp_fin: int, udp: int) -> bytes:
    """IPVS_CMD_SET_CONFIG (``ipvsadm --set TCP TCPFIN UDP``): connection timeouts in seconds, 0
    keeps the kernel's."""
    body = _GENL.pack(_ipvs.IPVS_CMD_SET_CONFIG, _ipvs.GENL_VERSION, 0)
    for name, value in (("TIMEOUT_TCP", tcp), ("TIMEOUT_TCP_FIN", tcp_fin), ("TIMEOUT_UDP", udp)):
        body += _nla(CMD[f"IPVS_CMD_ATTR_{name}"], struct.pack("=I", value))
    return _HDR.pack(_HDR.size + len(body), family_id, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def encode_addr(add: bool, seq: int, index: int, address: str) -> bytes:
    """RTM_NEWADDR/RTM_DELADDR of a host address (/32, /128) on link ``index``."""
    fam = _family(address)
    raw = socket.inet_pton(fam, address)
    body = _IFA.pack(fam, 128 if fam == socket.AF_INET6 else 32, 0, 0, index)
    body += _nla(IFA["IFA_LOCAL"], raw) + _nla(IFA["IFA_ADDRESS"], raw)
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE | NLM_F_EXCL if add else 0)
    return _HDR.pack(_HDR.size + len(body), RTM_NEWADDR if add else RTM_DELADDR, flags, seq, 0) + body


# linux/if_link.h and linux/genetlink.h numbers (stable kernel ABI)
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
IFLA_IFNAME, IFLA_LINKINFO, IFLA_INFO_KIND = 3, 18, 1
GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 16, 3, 1, 2
_IFI = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change


def encode_link(kind: int, seq: int, name: str | None = None, index: int = 0, dummy: bool = False) -> bytes:
    """RTM_GETLINK (by name), RTM_NEWLINK (a dummy link of that name) or RTM_DELLINK (by index)."""
    body = _IFI.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    if name is not None:
        body += _nla(IFLA_IFNAME, name.encode() + b"\0")
    if dummy:
        body += _nla(IFLA_LINKINFO | NLA_F_NESTED, _nla(IFLA_INFO_KIND, b"dummy"))
    flags = NLM_F_REQUEST | (NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL if kind == RTM_NEWLINK else 0)
    flags |= NLM_F_ACK if kind == RTM_DELLINK else 0
    return _HDR.pack(_HDR.size + len(body), kind, flags, seq, 0) + body


def link_index(payload: bytes) -> int:
    return _IFI.unpack_from(payload)[2]


def encode_family(seq: int, name: str) -> bytes:
    """CTRL_CMD_GETFAMILY: the id of a generic-netlink family (``ENOENT`` if the kernel has none)."""
    body = _GENL.pack(CTRL_CMD_GETFAMILY, 1, 0) + _nla(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0")
    return _HDR.pack(_HDR.size + len(body), GENL_ID_CTRL, NLM_F_REQUEST, seq, 0) + body


def family_id(payload: bytes) -> int:
    return struct.unpack("=H", attributes(payload[_GENL.size:])[CTRL_ATTR_FAMILY_ID][:2])[0]


def encode_addr_dump(seq: int) -> bytes:
    body = _IFA.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return _HDR.pack(_HDR.size + len(body), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


# ---- parsing ---------------------------------------------------------------------------------

def messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, sequence, payload) of each netlink message in a datagram."""
    offset = 0
    while offset + _HDR.size <= len(data):
        length, kind, flags, seq, _pid = _HDR.unpack_from(data, offset)
        if length < _HDR.size:
            break
        yield kind, flags, seq, data[offset + _HDR.size:offset + length]
        offset += (length + 3) & ~3


def attributes(data: bytes) -> dict[int, bytes]:
    out = {}
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        out[kind & ~NLA_F_NESTED] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def _ip(af: int, raw: bytes) -> str:
    return socket.inet_ntop(af, raw[:16 if af == socket.AF_INET6 else 4])


def parse_service(payload: bytes) -> VirtualServer:
    """A GET_SERVICE dump message (after its netlink header) -> VirtualServer (hashed flag off)."""
    a = attributes(attributes(payload[_GENL.size:])[CMD["IPVS_CMD_ATTR_SERVICE"]])
    af = struct.unpack("=H", a[SVC["IPVS_SVC_ATTR_AF"]])[0]
    key = VSKey(PROTOCOL_NAMES.get(struct.unpack("=H", a[SVC["IPVS_SVC_ATTR_PROTOCOL"]])[0], "?"),
                _ip(af, a[SVC["IPVS_SVC_ATTR_ADDR"]]), struct.unpack(">H", a[SVC["IPVS_SVC_ATTR_PORT"]])[0])
    flags = struct.unpack("=II", a[SVC["IPVS_SVC_ATTR_FLAGS"]])[0] & ~FLAG_HASHED
    return VirtualServer(key, a[SVC["IPVS_SVC_ATTR_SCHED_NAME"]].rstrip(b"\0").decode(), flags,
                         struct.unpack("=I", a[SVC["IPVS_SVC_ATTR_TIMEOUT"]])[0])


def parse_dest(payload: bytes) -> RealServer:
    a = attributes(attributes(payload[_GENL.size:])[CMD["IPVS_CMD_ATTR_DEST"]])
    fam = a.get(DEST["IPVS_DEST_ATTR_ADDR_FAMILY"])
    af = struct.unpack("=H", fam)[0] if fam else socket.AF_INET
    u32 = lambda name: struct.unpack("=I", a[DEST[name]])[0]  # noqa: E731
    return RealServer(_ip(af, a[DEST["IPVS_DEST_ATTR_ADDR"]]), struct.unpack(">H", a[DEST["IPVS_DEST_ATTR_PORT"]])[0],
                      u32("IPVS_DEST_ATTR_WEIGHT"), u32("IPVS_DEST_ATTR_ACTIVE_CONNS"),
                      u32("IPVS_DEST_ATTR_INACT_CONNS"))


def parse_addr(payload: bytes) -> tuple[int, str]:
    """An RTM_NEWADDR message -> (link index, address)."""
    fam, _plen, _flags, _scope, index = _IFA.unpack_from(payload)
    a = attributes(payload[_IFA.size:])
    raw = a.get(IFA["IFA_LOCAL"]) or a[IFA["IFA_ADDRESS"]]
    return index, socket.inet_ntop(fam, raw)


# ---- the sockets -----------------------------------------------------------------------------

class Request(NamedTuple):
    what: str          # for error messages: "add real server 10.244.1.2:80 to 10.96.0.1:80/TCP"
    data: bytes        # with its sequence number set


class _Socket:
    """A raw netlink socket of one protocol (in ``netns`` if given): batches and dumps."""

    def __init__(self, proto: int, netns: str | None):
        from pyroute2 import netns as pnetns

        if netns:
            self.sock = pnetns.create_socket(netns, family=socket.AF_NETLINK, socket_type=socket.SOCK_RAW,
                                             proto=proto)
        else:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto)
        try:                    # past net.core.rmem_max (root); the plain option caps at it
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self.sock.bind((0, 0))
        self.seq = 1000

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0x7FFFFFFF
        return self.seq

    def batch(self, requests: list[Request], ignore: Iterable[int] = ()) -> None:
        """Send every request, wait for every acknowledgement; NetlinkError lists the failures
        (errnos in ``ignore`` are not failures)."""
        ignore = set(ignore)
        failures: list[tuple[str, int]] = []
        start = 0
        while start < len(requests):
            chunk, size = [], 0
            while start < len(requests) and (not chunk or (size + len(requests[start].data) <= _CHUNK
                                                           and len(chunk) < _CHUNK_MESSAGES)):
                chunk.append(requests[start])
                size += len(requests[start].data)
                start += 1
            self.sock.send(b"".join(r.data for r in chunk))
            failures += self._acks(chunk, ignore)
        if failures:
            raise NetlinkError(failures)

    def _acks(self, chunk: list[Request], ignore: set[int]) -> list[tuple[str, int]]:
        pending = {_HDR.unpack_from(r.data)[3]: r.what for r in chunk}
        failures = []
        while pending:
            for kind, _flags, seq, payload in messages(self.sock.recv(1 << 20)):
                if kind == NLMSG_ERROR and seq in pending:
                    code = -struct.unpack_from("=i", payload)[0]
                    what = pending.pop(seq)
                    if code and code not in ignore:
                        failures.append((what, code))
        return failures

    def request(self, request: bytes) -> tuple[int, bytes] | None:
        """Send one request; its answer (type, payload), or None for a plain acknowledgement.
        NetlinkError when the kernel refused it."""
        seq = _HDR.unpack_from(request)[3]
        self.sock.send(request)
        while True:
            for kind, _flags, mseq, payload in messages(self.sock.recv(1 << 20)):
                if mseq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError([("request", code)])
                    return None
                return kind, payload

    def dump(self, request: bytes) -> list[tuple[int, bytes]]:
        """Send a dump request; (type, payload) of every answer until NLMSG_DONE."""
        seq = _HDR.unpack_from(request)[3]
        self.sock.send(request)
        out: list[tuple[int, bytes]] = []
        while True:
            for kind, _flags, mseq, payload in messages(self.sock.recv(1 << 20)):
                if mseq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError([("dump", code)])
                    return out
                out.append((kind, payload))

    def close(self) -> None:
        self.sock.close()


def ipvs_family(sock: _Socket) -> int | None:
    """The IPVS generic-netlink family id, asked over a NETLINK_GENERIC socket; None when the kernel
    has no ip_vs (the one question asked before anything is changed)."""
    try:
        answer = sock.request(encode_family(sock.next_seq(), _ipvs.GENL_NAME))
    except NetlinkError as exc:
        if exc.failures[0][1] == errno.ENOENT:
            return None
        raise
    return family_id(answer[1]) if answer else None
