"""A pod's own /etc files (resolv.conf, hosts): written where ``ip netns exec`` looks for them.

Why /etc/netns/<pod netns>/: a pod here is a network namespace, not a filesystem. iproute2's
``ip netns exec NAME`` bind-mounts every file of /etc/netns/NAME over its /etc namesake in a
private mount namespace, so ``netemu exec POD`` (which runs through it) sees the pod's
resolv.conf with no work of ours; the runtime's own process containers and exec probes do the
same through nsenter.preexec_enter(etc_dir=...). A hostNetwork pod that still wants the cluster
DNS (ClusterFirstWithHostNet) shares its node's namespace, so its files live in a directory of
the node's state instead, bound for its own processes only.

The directory is removed with the namespace (plumb.delete_netns) and by ``netemu cleanup``.
"""

from __future__ import annotations

import os
import shutil

from .nsenter import NETNS_ETC_DIR


def netns_etc_dir(netns: str) -> str:
    return os.path.join(NETNS_ETC_DIR, netns)


def write_etc(directory: str, files: dict[str, str]) -> None:
    """Write each file atomically (a process starting now sees the old or the new one)."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    for name, text in files.items():
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad /etc file name {name!r}")
        tmp = os.path.join(directory, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(directory, name))


def remove_etc(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
