"""Notice that kube-proxy's table was deleted behind its back, and resync in full.

The iptables mode has upstream's canary chains for this; the nftables mode keeps everything in
one table, so the table itself is the canary: ``nft flush ruleset`` (a firewall service
restarting, an admin) or ``nft delete table ip kube-proxy`` removes it, and until the next full
sync no Service works while a partial sync would even fail (its chains and maps are gone). The
monitor lists one small chain of the table every ``interval``; when it is gone it asks the
proxier for a full sync, which recreates everything in one transaction. "Cannot tell" (nft
failed for another reason) is not taken for a deletion.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from .apply import Nft

log = logging.getLogger(__name__)


class TableMonitor:
    def __init__(self, nft: Nft):
        self.nft = nft
        self.armed = False          # only after a sync created the table

    def check(self) -> bool:
        """One poll: True when the table we created is gone (resync in full)."""
        if not self.armed:
            return False
        if self.nft.table_exists() is not False:
            return False
        log.warning("nftables table %s kube-proxy was deleted: full resync", self.nft.family)
        return True

    def run(self, reload: Callable[[], None], interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                if self.check():
                    reload()
            except Exception:          # never let the monitor thread die silently
                log.exception("nftables table monitor")
