"""Upstream's iptables Monitor (pkg/util/iptables Monitor): notice that someone flushed iptables
behind kube-proxy's back, and resync in full.

kube-proxy creates an empty KUBE-PROXY-CANARY chain in mangle, nat and filter and polls the
first one every sync period. Nothing references the canaries, so only a wholesale flush (an
``iptables -F``/``-X`` of a table, a firewall service restarting, a host-wide restore) removes
them. When the mangle canary is gone it waits (up to 5 s, polling every 100 ms) for the others to
go too, so the reload does not start while the flush is still under way, then asks for a full
sync and creates the canaries again. An exit status 4 ("resource problem", e.g. the xtables lock
was busy) is not taken for a missing chain.

Effects only through the Iptables applier's Exec, so the unit tests drive it with a fake kernel;
``check()`` is one poll (what a test calls), ``run()`` the loop a thread runs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from netemu.agent.proxy.xtables.apply import Iptables
from netemu.agent.proxy.iptables.chains import canary_chains

log = logging.getLogger(__name__)

FLUSH_TIMEOUT = 5.0     # upstream iptablesFlushTimeout
FLUSH_POLL = 0.1        # upstream iptablesFlushPollTime


class CanaryMonitor:
    def __init__(self, iptables: Iptables, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.iptables = iptables
        self.chains = canary_chains()
        self.sleep = sleep
        self.clock = clock

    def ensure(self) -> bool:
        """Create the canaries that are missing; False if one could not be made."""
        for table, chain in self.chains:
            try:
                self.iptables.ensure_chain(table, chain)
            except Exception as exc:
                log.error("could not set up iptables canary %s/%s: %s", table, chain, exc)
                return False
        return True

    def check(self) -> bool:
        """One poll: True when the first table's canary is gone (a flush: resync in full)."""
        table, chain = self.chains[0]
        if self.iptables.chain_exists(table, chain) is not False:
            return False
        log.info("iptables canary %s/%s deleted", table, chain)
        deadline = self.clock() + FLUSH_TIMEOUT
        while any(self.iptables.chain_exists(t, c) is not False for t, c in self.chains[1:]):
            if self.clock() >= deadline:
                log.warning("inconsistent iptables state detected (some canaries are still there)")
                break
            self.sleep(FLUSH_POLL)
        return True

    def run(self, reload: Callable[[], None], interval: float, stop: threading.Event) -> None:
        """Ensure, poll every ``interval`` until a flush, reload, repeat; remove them on stop."""
        while not stop.is_set():
            while not self.ensure():
                if stop.wait(interval):
                    return self.remove()
            while not stop.wait(interval):
                if self.check():
                    log.info("reloading after iptables flush")
                    reload()
                    break
        self.remove()

    def remove(self) -> None:
        for table, chain in self.chains:
            self.iptables.delete_chain(table, chain)
