"""Reading the provider load balancer's state in tests: which nodes a LoadBalancer Service's
new connections go to, from the comment cloud/lbplan.py writes on each listener chain of the
LB host's nftables table (the table itself is what the kernel runs, so this reads the truth,
not the controller's intent)."""

from __future__ import annotations

import subprocess

from netemu.emulator.cloud.lbplan import TABLE


def lb_table(edge: dict) -> str:
    """The LB host's nftables table (``edge``: cluster.json's ``edge``)."""
    return subprocess.run(["ip", "netns", "exec", edge["netns"], "nft", "list", "table", "ip", TABLE],
                          capture_output=True, text=True, check=True).stdout


def healthy_targets(edge: dict, service: str) -> set[str]:
    """Names of the nodes that get ``service``'s (namespace/name) new connections once they
    passed their health checks; empty while it fails open to every node or has no listener."""
    for line in lb_table(edge).splitlines():
        line = line.strip()
        if line.startswith("comment") and f'"{service} ' in line and "(healthy)" in line:
            return set(line.split(" on ", 1)[1].split(" (", 1)[0].split(", "))
    return set()
