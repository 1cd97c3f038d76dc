"""Remove what an IPVS kube-proxy leaves (upstream's ipvs CleanupLeftovers): its virtual servers,
the ``kube-ipvs0`` dummy link and the KUBE-* ipsets.

Runs after the iptables cleanup (registry order), which already removed the mode's KUBE-* chains:
an ipset an iptables rule references cannot be destroyed. Like upstream, every virtual server of
the namespace goes (upstream flushes the IPVS table) -- but only when kube-ipvs0 shows that an
IPVS kube-proxy ran there, so a cleanup of a namespace the mode never touched leaves IPVS alone.
Virtual servers are deleted over netlink in one batch (kernel.py), the link and the sets by argv.
"""

from __future__ import annotations

from typing import Callable

from netemu.agent.proxy.leftovers import PREFIX, Leftovers

from .state import DUMMY_DEVICE


def plan_ipvs(link_output: str, ipset_names: str, prefix: str = PREFIX) -> list[list[str]]:
    """argv lists removing the kube-ipvs0 link and ``prefix`` ipsets (after iptables is clean)."""
    out = []
    if has_dummy(link_output):
        out.append(["ip", "link", "del", DUMMY_DEVICE])
    out += [["ipset", "destroy", name] for name in ipset_names.split() if name.startswith(prefix)]
    return out


def has_dummy(link_output: str) -> bool:
    return any(_link_name(line) == DUMMY_DEVICE for line in link_output.splitlines())


def _link_name(line: str) -> str | None:
    """'4: kube-ipvs0: <...>' or '4: eth0@if5: <...>' (``ip -o link show``) -> the name."""
    parts = line.split(":", 2)
    return parts[1].strip().split("@")[0] if len(parts) == 3 else None


def delete_virtual_servers(leftovers: Leftovers) -> None:
    """Every virtual server of the namespace, in one netlink batch (none when it has no IPVS)."""
    from .kernel import KernelMissing, NetlinkKernel, Op

    try:
        kernel = NetlinkKernel(leftovers.netns)
    except KernelMissing as exc:
        leftovers.report.skipped.append(f"ipvs: {exc}")
        return
    try:
        servers = list(kernel.services().values())
        leftovers.report.commands += [["ipvs", "del-service", str(vs.key)] for vs in servers]
        if servers:
            kernel.apply([Op("del_service", vs) for vs in servers])
    except OSError as exc:
        leftovers.report.errors.append(f"deleting IPVS virtual servers failed: {exc}")
    finally:
        kernel.close()


def cleanup() -> Callable[[Leftovers], None]:
    """The registry's cleanup hook (no options)."""
    def step(leftovers: Leftovers) -> None:
        links = leftovers.run(["ip", "-o", "link", "show"])
        link_text = links.stdout if links.returncode == 0 else ""
        if has_dummy(link_text):
            delete_virtual_servers(leftovers)
        sets = leftovers.run(["ipset", "list", "-n"]) if leftovers.which("ipset") else None
        names = sets.stdout if sets is not None and sets.returncode == 0 else ""
        for argv in plan_ipvs(link_text, names):
            leftovers.mutate(argv)
    return step
