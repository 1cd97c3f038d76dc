"""How kube-proxy code runs a command: an injectable ``Exec`` (argv list in, Result out).

Every mode's applier, ``conntrack`` cleanup, ``netemu proxy cleanup`` and ``netemu trace --live``
hand argv lists to an Exec instead of calling subprocess themselves, so one proxier runs unchanged
on this host (``local_exec``), in a node's network namespace (``netns_exec``) or against a fake
kernel in unit tests. Mode-independent: it lives here, not in a mode's package.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Exec(Protocol):
    def __call__(self, argv: list[str], input: str | None = None) -> Result: ...


def local_exec(argv: list[str], input: str | None = None) -> Result:
    """Run argv on this host's (this process's) namespace."""
    proc = subprocess.run(argv, input=input, capture_output=True, text=True)
    return Result(proc.returncode, proc.stdout, proc.stderr)


class NetnsExec:
    """An Exec that runs every argv inside ``netns`` (kube-proxy of the node living there); the
    namespace's name stays readable (``netns_of``) for what talks netlink instead of running argv."""

    def __init__(self, netns: str):
        self.netns = netns

    def __call__(self, argv: list[str], input: str | None = None) -> Result:
        return local_exec(["ip", "netns", "exec", self.netns, *argv], input)


def netns_exec(netns: str) -> Exec:
    return NetnsExec(netns)


def netns_of(exec_: Exec) -> str | None:
    """The named namespace an Exec runs in (None: this process's own, or unknown)."""
    return getattr(exec_, "netns", None)


def exec_in(netns: str | None) -> Exec:
    """``netns_exec(netns)``, or this namespace's ``local_exec`` for None (commands with --netns)."""
    return netns_exec(netns) if netns else local_exec
