"""Virtual and real servers in the form ``ipvsadm -Sn`` prints them, and back.

Why this form: it is what people read and diff on a real IPVS node (``ipvsadm -Sn``, ``ipvsadm -R``
reads it back), so ``netemu proxy render --mode ipvs`` prints it, the tracer reads it from a dump
or a node, and the benchmark feeds the same servers to ``ipvsadm -R`` as the baseline.

    -A -t 10.96.0.10:53 -s rr [-p 10800] [-b mh-port]
    -a -t 10.96.0.10:53 -r 10.244.1.2:53 -m -w 1

``-m``: NAT ("masquerading") forwarding, the only one kube-proxy uses. IPv6 addresses are in
brackets. Services are sorted by address, port and protocol (ipvsadm prints its hash order).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from .state import FLAG_PERSISTENT, FLAG_SOURCE_HASH, RealServer, VirtualServer, VSKey

_PROTO_FLAG = {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}
_FLAG_PROTO = {v: k for k, v in _PROTO_FLAG.items()}


class IpvsadmError(ValueError):
    """A line that is not ``ipvsadm -S`` output (with its number)."""


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _vs_spec(key: VSKey) -> str:
    return f"{_PROTO_FLAG[key.protocol]} {_hostport(key.address, key.port)}"


def save_text(services: Mapping[VSKey, VirtualServer], reals: Mapping[VSKey, Iterable[RealServer]]) -> str:
    """``ipvsadm -Sn`` text of these virtual servers and their real servers."""
    lines = []
    for key in sorted(services, key=lambda k: (k.address, k.port, k.protocol)):
        vs = services[key]
        line = f"-A {_vs_spec(key)} -s {vs.scheduler}"
        if vs.flags & FLAG_PERSISTENT:
            line += f" -p {vs.timeout}"
        if vs.flags & FLAG_SOURCE_HASH:
            line += " -b mh-port" if vs.scheduler == "mh" else " -b sh-port"
        lines.append(line)
        for rs in reals.get(key, ()):
            lines.append(f"-a {_vs_spec(key)} -r {_hostport(rs.address, rs.port)} -m -w {rs.weight}")
    return "\n".join(lines) + ("\n" if lines else "")


def parse(text: str) -> tuple[dict[VSKey, VirtualServer], dict[VSKey, list[RealServer]]]:
    """``ipvsadm -Sn`` lines (others skipped: a render has ipset and iptables text too) -> the
    servers. IpvsadmError for an -A/-a line we cannot read."""
    services: dict[VSKey, VirtualServer] = {}
    reals: dict[VSKey, list[RealServer]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if len(words) < 3 or words[0] not in ("-A", "-a") or words[1] not in _FLAG_PROTO:
            continue
        try:
            key = VSKey(_FLAG_PROTO[words[1]], *_split_hostport(words[2]))
            opts = _options(words[3:])
            if words[0] == "-A":
                flags, timeout = 0, 0
                if "-p" in opts:
                    flags, timeout = FLAG_PERSISTENT, int(opts["-p"])
                if opts.get("-b", "").endswith("-port"):
                    flags |= FLAG_SOURCE_HASH
                services[key] = VirtualServer(key, opts.get("-s", "wlc"), flags, timeout)
                reals.setdefault(key, [])
            else:
                addr, port = _split_hostport(opts["-r"])
                reals.setdefault(key, []).append(RealServer(addr, port, int(opts.get("-w", "1"))))
        except (KeyError, ValueError) as exc:
            raise IpvsadmError(f"line {n}: cannot read {line!r} ({exc})") from None
    return services, reals


_SWITCHES = {"-m", "-g", "-i", "--masquerading", "--gatewaying", "--ipip"}


def _options(words: list[str]) -> dict[str, str]:
    """``-s rr -p 60 -b mh-port`` / ``-r RIP:PORT -m -w 1`` -> {option: value}; a switch (the
    forwarding method) maps to ""."""
    opts: dict[str, str] = {}
    i = 0
    while i < len(words):
        if words[i] in _SWITCHES:
            opts[words[i]] = ""
            i += 1
        else:
            if i + 1 >= len(words):
                raise ValueError(f"{words[i]} without a value")
            opts[words[i]] = words[i + 1]
            i += 2
    return opts


def _split_hostport(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{text!r} is not ADDRESS:PORT")
    return host, int(port)
