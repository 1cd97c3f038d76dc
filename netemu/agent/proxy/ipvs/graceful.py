"""Graceful termination of real servers (kubernetes v1.32 pkg/proxy/ipvs/graceful_termination.go).

A real server that leaves a virtual server is not deleted at once: deleting it would cut its
connections (``expire_nodest_conn``). Like upstream, a TCP real server gets weight 0 -- no new
connection goes to it -- and is deleted when it has no active or inactive connection left; UDP and
SCTP ones are deleted at once (their "connections" only end by timeout). Upstream checks the list
every minute and waits as long as connections last; here a real server is also deleted once it
has drained for ``timeout`` seconds, so a client that never closes cannot pin it forever. A
draining real server that is wanted again gets its weight back.

Pure bookkeeping: which (virtual server, real server) pairs drain since when, and which are due;
the applier reads the connection counts and sends the deletions.
"""

from __future__ import annotations

from typing import Callable, Iterable

from .state import RealServer, VSKey

DEFAULT_TIMEOUT = 900.0      # seconds a real server may drain before it is deleted anyway
CHECK_INTERVAL = 60.0        # upstream rsCheckDeleteInterval


def needs_draining(protocol: str) -> bool:
    """upstream IsRsGracefulTerminationNeeded: TCP only."""
    return protocol not in ("UDP", "SCTP")


class Draining:
    def __init__(self, timeout: float = DEFAULT_TIMEOUT, clock: Callable[[], float] | None = None):
        import time

        self.timeout = timeout
        self.clock = clock or time.monotonic
        self.since: dict[tuple[VSKey, tuple[str, int]], float] = {}

    def start(self, key: VSKey, rs: RealServer) -> None:
        self.since.setdefault((key, rs.endpoint), self.clock())

    def stop(self, key: VSKey, endpoint: tuple[str, int]) -> None:
        self.since.pop((key, endpoint), None)

    def forget(self, key: VSKey) -> None:
        """The virtual server itself is gone (deleted with its real servers)."""
        for item in [i for i in self.since if i[0] == key]:
            del self.since[item]

    def __contains__(self, item: tuple[VSKey, tuple[str, int]]) -> bool:
        return item in self.since

    def keys(self) -> set[VSKey]:
        return {k for k, _ in self.since}

    def due(self, key: VSKey, reals: Iterable[RealServer]) -> list[RealServer]:
        """The draining real servers of ``key`` to delete now (``reals``: the kernel's, with their
        connection counts); those the kernel no longer has are forgotten."""
        present = {rs.endpoint: rs for rs in reals}
        now = self.clock()
        out = []
        for (k, endpoint), since in list(self.since.items()):
            if k != key:
                continue
            rs = present.get(endpoint)
            if rs is None:
                del self.since[(k, endpoint)]
            elif rs.active + rs.inactive == 0 or now - since >= self.timeout:
                out.append(rs)
        return out
