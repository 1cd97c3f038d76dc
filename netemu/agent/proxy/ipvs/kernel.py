"""The IPVS mode's kernel edge: what the applier asks of a node's IPVS table and kube-ipvs0.

``Kernel`` is the contract (the applier, the tracer and cleanup use only it); ``NetlinkKernel`` is
the real one, over netlink in this or a named network namespace (netlink.py batches the requests
of one call in one ``sendmsg``); netemu/testing/ipvs_fake.py holds the fake the unit tests use.
An ``Op`` is one change of the IPVS table, in the kernel's own terms.

The dummy link is made as upstream makes it (``EnsureDummyDevice``: created, never set up): the
addresses on it are still local (the kernel adds their local routes), so the node accepts packets
for every VIP, and nothing answers ARP for them.
"""

from __future__ import annotations

import errno
from typing import NamedTuple, Protocol

from .netlink import (NETLINK_GENERIC, NETLINK_ROUTE, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK, NetlinkError,
                      Request, _Socket, encode_addr, encode_addr_dump, encode_ipvs, encode_link, encode_timeouts,
                      ipvs_family,
                      link_index, parse_addr, parse_dest, parse_service)
from .state import DUMMY_DEVICE, RealServer, VirtualServer, VSKey

_COMMANDS = {"add_service": "NEW_SERVICE", "set_service": "SET_SERVICE", "del_service": "DEL_SERVICE",
             "add_dest": "NEW_DEST", "set_dest": "SET_DEST", "del_dest": "DEL_DEST"}


class Op(NamedTuple):
    """One IPVS change: ``kind`` is add/set/del_service or add/set/del_dest."""

    kind: str
    server: VirtualServer
    real: RealServer | None = None

    def __str__(self) -> str:
        verb = self.kind.split("_")[0]
        if self.real is None:
            return f"{verb} virtual server {self.server.key}"
        return f"{verb} real server {self.real} (weight {self.real.weight}) of {self.server.key}"


class KernelMissing(RuntimeError):
    """The kernel cannot do what the mode needs (no ip_vs, no dummy links)."""


class Kernel(Protocol):
    def services(self) -> dict[VSKey, VirtualServer]: ...
    def reals(self, key: VSKey) -> list[RealServer]: ...
    def apply(self, ops: list[Op]) -> None: ...
    def dummy_addresses(self) -> set[str]: ...
    def node_addresses(self) -> list[str]: ...
    def change_addresses(self, add: list[str], remove: list[str]) -> None: ...
    def set_timeouts(self, tcp: int, tcp_fin: int, udp: int) -> None: ...
    def ensure_dummy(self) -> None: ...
    def delete_dummy(self) -> bool: ...
    def close(self) -> None: ...


class NetlinkKernel:
    """The real kernel (of ``netns``, or this process's namespace)."""

    def __init__(self, netns: str | None = None, dummy: str = DUMMY_DEVICE):
        self.netns, self.dummy = netns, dummy
        self.genl = _Socket(NETLINK_GENERIC, netns)
        family = ipvs_family(self.genl)
        if family is None:
            self.genl.close()
            raise KernelMissing("no generic netlink family IPVS in this kernel: the ip_vs module is missing")
        self.family = family
        self.rtnl = _Socket(NETLINK_ROUTE, netns)
        self._index: int | None = None

    # -- IPVS ----------------------------------------------------------------------------------
    def services(self) -> dict[VSKey, VirtualServer]:
        answers = self.genl.dump(encode_ipvs("GET_SERVICE", self.family, self.genl.next_seq(), None, dump=True))
        servers = (parse_service(p) for _, p in answers)
        return {vs.key: vs for vs in servers}

    def reals(self, key: VSKey) -> list[RealServer]:
        try:
            answers = self.genl.dump(encode_ipvs("GET_DEST", self.family, self.genl.next_seq(), key, dump=True))
        except NetlinkError as exc:
            if exc.failures[0][1] in (errno.ESRCH, errno.ENOENT):   # no such virtual server
                return []
            raise
        return [parse_dest(p) for _, p in answers]

    def apply(self, ops: list[Op]) -> None:
        """Every op in one batch; NetlinkError lists the ones the kernel refused."""
        requests = [Request(str(op), encode_ipvs(_COMMANDS[op.kind], self.family, self.genl.next_seq(),
                                                 op.server, op.real)) for op in ops]
        self.genl.batch(requests)

    def set_timeouts(self, tcp: int, tcp_fin: int, udp: int) -> None:
        """The IPVS connection timeouts (upstream's --ipvs-tcp-timeout & co; 0 keeps one)."""
        self.genl.request(encode_timeouts(self.family, self.genl.next_seq(), tcp, tcp_fin, udp))

    # -- kube-ipvs0 ----------------------------------------------------------------------------
    def ensure_dummy(self) -> None:
        if self._lookup() is not None:
            return
        try:
            self.rtnl.request(encode_link(RTM_NEWLINK, self.rtnl.next_seq(), self.dummy, dummy=True))
        except NetlinkError as exc:
            if exc.failures[0][1] in (errno.EOPNOTSUPP, errno.ENOENT):
                raise KernelMissing(f"cannot create the dummy link {self.dummy}: this kernel has no "
                                    "dummy interfaces (the dummy module)") from None
            if exc.failures[0][1] != errno.EEXIST:
                raise
        self._index = None

    def delete_dummy(self) -> bool:
        index = self._lookup()
        if index is None:
            return False
        self.rtnl.request(encode_link(RTM_DELLINK, self.rtnl.next_seq(), index=index))
        self._index = None
        return True

    def _lookup(self) -> int | None:
        if self._index is None:
            try:
                answer = self.rtnl.request(encode_link(RTM_GETLINK, self.rtnl.next_seq(), self.dummy))
            except NetlinkError as exc:
                if exc.failures[0][1] != errno.ENODEV:
                    raise
                answer = None
            self._index = link_index(answer[1]) if answer else None
        return self._index

    def _all_addresses(self) -> list[tuple[int, str]]:
        return [parse_addr(p) for kind, p in self.rtnl.dump(encode_addr_dump(self.rtnl.next_seq()))
                if kind == RTM_NEWADDR]

    def dummy_addresses(self) -> set[str]:
        index = self._lookup()
        return {a for i, a in self._all_addresses() if i == index} if index is not None else set()

    def node_addresses(self) -> list[str]:
        """Every address of the namespace but the dummy link's (upstream GetAllLocalAddressesExcept)."""
        index = self._lookup()
        return [a for i, a in self._all_addresses() if i != index]

    def change_addresses(self, add: list[str], remove: list[str]) -> None:
        index = self._lookup()
        if index is None:
            raise KernelMissing(f"{self.dummy} does not exist")
        requests = [Request(f"add {a} to {self.dummy}", encode_addr(True, self.rtnl.next_seq(), index, a))
                    for a in add]
        requests += [Request(f"remove {a} from {self.dummy}", encode_addr(False, self.rtnl.next_seq(), index, a))
                     for a in remove]
        # already there / already gone is what was wanted
        self.rtnl.batch(requests, ignore=(errno.EEXIST, errno.EADDRNOTAVAIL))

    def close(self) -> None:
        self.genl.close()
        self.rtnl.close()
