"""Shaping a running node's link: bandwidth (tbf), delay, jitter and loss (netem), or back to none.

Why not Mininet's TCIntf.config: a cluster whose topology asked for no shaping is built with
plain Links, and the experiments change a link while traffic runs. So the qdisc is set directly,
on both ends of the node's link: the node's interface (in the node's namespace; what leaves the
node) and its veth peer on the switch (in the root namespace; what comes to the node), each a
single root qdisc replaced in one ``tc`` call. delay/jitter/loss need sch_netem (the lab VM);
bandwidth alone uses tbf, which this kernel has (netemu.features says which is which).

``qdisc_argv`` is pure; ``node_link`` finds the two interfaces; ``shape`` runs tc (argv only).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass


class ShapingError(RuntimeError):
    """The link could not be found or tc refused; the message says which and why."""


@dataclass(frozen=True)
class Shape:
    bw: float | None = None          # Mbit/s
    delay: float | None = None       # seconds
    jitter: float | None = None      # seconds
    loss: float | None = None        # percent

    @property
    def netem(self) -> bool:
        return any(v for v in (self.delay, self.jitter, self.loss))

    @property
    def empty(self) -> bool:
        return not self.netem and not self.bw


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g}ms"


def qdisc_argv(dev: str, shape: Shape) -> list[str]:
    """The ``tc`` argv that makes ``shape`` the root qdisc of ``dev`` (or removes it when empty)."""
    if shape.empty:
        return ["tc", "qdisc", "del", "dev", dev, "root"]
    base = ["tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:"]
    if shape.netem:
        argv = base + ["netem"]
        if shape.delay or shape.jitter:
            argv += ["delay", _ms(shape.delay or 0)] + ([_ms(shape.jitter)] if shape.jitter else [])
        if shape.loss:
            argv += ["loss", f"{shape.loss:g}%"]
        if shape.bw:
            argv += ["rate", f"{shape.bw:g}mbit"]
        return argv
    rate_bytes = shape.bw * 1e6 / 8
    burst = max(16 * 1024, int(rate_bytes / 100))         # 10 ms worth, at least 16 KiB
    return base + ["tbf", "rate", f"{shape.bw:g}mbit", "burst", str(burst), "latency", "100ms"]


def _links(argv: list[str]) -> list[dict]:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ShapingError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return json.loads(proc.stdout or "[]")


def node_link(netns: str, node_ip: str) -> tuple[str, str | None]:
    """(the node's interface holding ``node_ip`` in ``netns``, its veth peer's name in the root
    namespace, None when the peer is not a veth there)."""
    inside = _links(["ip", "-j", "-n", netns, "addr", "show"])
    dev = next((link for link in inside if any(a.get("local") == node_ip for a in link.get("addr_info", []))), None)
    if dev is None:
        raise ShapingError(f"no interface with {node_ip} in namespace {netns}")
    peer_index = dev.get("link_index")
    peer = None
    if peer_index is not None:
        peer = next((link["ifname"] for link in _links(["ip", "-j", "link", "show"])
                     if link.get("ifindex") == peer_index), None)
    return dev["ifname"], peer


def shape(netns: str, node_ip: str, spec: Shape) -> list[str]:
    """Apply ``spec`` to both ends of the node's link; returns the interfaces changed."""
    dev, peer = node_link(netns, node_ip)
    done = []
    for prefix, name in ((["ip", "netns", "exec", netns], dev), ([], peer)):
        if name is None:
            continue
        argv = prefix + qdisc_argv(name, spec)
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0 and not (spec.empty and "No such file" in proc.stderr + proc.stdout
                                         or spec.empty and "Cannot delete qdisc with handle of zero" in proc.stderr):
            raise ShapingError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
        done.append(name)
    return done
