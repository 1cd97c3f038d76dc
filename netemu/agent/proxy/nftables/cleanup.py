"""Remove what an nftables kube-proxy leaves: its ``kube-proxy`` tables of families ip and ip6
(upstream's nftables mode keeps all of its state in them), deleted whole."""

from __future__ import annotations

from typing import Callable

from netemu.agent.proxy.leftovers import Leftovers


def plan_nft(list_tables_output: str) -> list[list[str]]:
    """argv lists deleting the kube-proxy nftables tables shown by ``nft list tables``."""
    out = []
    for line in list_tables_output.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table" and words[2] == "kube-proxy" \
                and words[1] in ("ip", "ip6", "inet"):
            out.append(["nft", "delete", "table", words[1], "kube-proxy"])
    return out


def cleanup() -> Callable[[Leftovers], None]:
    """The registry's cleanup hook (no options)."""
    def step(leftovers: Leftovers) -> None:
        listed = leftovers.listing(["nft", "list", "tables"])
        for argv in plan_nft(listed or ""):
            leftovers.mutate(argv)
    return step
