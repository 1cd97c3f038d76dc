"""Remove what an IPVS kube-proxy leaves: the ``kube-ipvs0`` dummy link and the KUBE-* ipsets.

Runs after the iptables cleanup (registry order): an ipset referenced by an iptables rule cannot
be destroyed. What the IPVS mode must add here once it exists: delete the virtual servers it
created (the ones whose addresses are on kube-ipvs0, via netlink or ``ipvsadm -D -t/-u
VIP:PORT``), before the link, and then the ipsets.
"""

from __future__ import annotations

from typing import Callable

from netemu.agent.proxy.leftovers import PREFIX, Leftovers


def plan_ipvs(link_output: str, ipset_names: str, prefix: str = PREFIX) -> list[list[str]]:
    """argv lists removing the kube-ipvs0 link and ``prefix`` ipsets (after iptables is clean)."""
    out = []
    if any(_link_name(line) == "kube-ipvs0" for line in link_output.splitlines()):
        out.append(["ip", "link", "del", "kube-ipvs0"])
    out += [["ipset", "destroy", name] for name in ipset_names.split() if name.startswith(prefix)]
    return out


def _link_name(line: str) -> str | None:
    """'4: kube-ipvs0: <...>' or '4: eth0@if5: <...>' (``ip -o link show``) -> the name."""
    parts = line.split(":", 2)
    return parts[1].strip().split("@")[0] if len(parts) == 3 else None


def cleanup() -> Callable[[Leftovers], None]:
    """The registry's cleanup hook (no options)."""
    def step(leftovers: Leftovers) -> None:
        links = leftovers.run(["ip", "-o", "link", "show"])
        sets = leftovers.run(["ipset", "list", "-n"]) if leftovers.which("ipset") else None
        names = sets.stdout if sets is not None and sets.returncode == 0 else ""
        for argv in plan_ipvs(links.stdout if links.returncode == 0 else "", names):
            leftovers.mutate(argv)
    return step
