"""The Corefile: CoreDNS's configuration (Caddyfile syntax), parsed and checked (pure).

What the built-in CoreDNS understands is what kubeadm's default Corefile uses, plus ``log``::

    .:53 {
        errors
        health { lameduck 5s }
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
           pods insecure
           fallthrough in-addr.arpa ip6.arpa
           ttl 30
        }
        prometheus :9153
        forward . /etc/resolv.conf { max_concurrent 1000 }
        cache 30
        loop
        reload
        loadbalance
    }

A directive CoreDNS does not know fails the start as upstream does ("Unknown directive"); one
CoreDNS knows but this built-in does not (rewrite, hosts, etcd, ...) fails it too, saying so,
rather than being silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# patterns compiled at import (in the launcher template), not in each process that first uses them
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m)")

SUPPORTED = ("errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop",
             "reload", "loadbalance", "log")
# plugin.cfg of CoreDNS 1.11: names it knows, so an unsupported one is not called unknown
UPSTREAM_PLUGINS = frozenset({
    "root", "metadata", "geoip", "cancel", "tls", "timeouts", "multisocket", "reload", "nsid", "bufsize",
    "bind", "debug", "trace", "ready", "health", "pprof", "prometheus", "errors", "log", "dnstap", "local",
    "dns64", "acl", "any", "chaos", "loadbalance", "tsig", "cache", "rewrite", "header", "dnssec",
    "autopath", "minimal", "template", "transfer", "hosts", "route53", "azure", "clouddns", "k8s_external",
    "kubernetes", "file", "auto", "secondary", "etcd", "loop", "forward", "grpc", "erratic", "whoami",
    "on", "sign", "view"})
PODS_MODES = ("disabled", "insecure", "verified")


class CorefileError(ValueError):
    """A Corefile CoreDNS would refuse; the message names the line, as CoreDNS's does."""


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list["Directive"] = field(default_factory=list)
    line: int = 0


@dataclass
class Kubernetes:
    zones: list[str]
    pods: str = "disabled"
    ttl: int = 5                       # CoreDNS's default when the block sets none
    fallthrough: list[str] | None = None     # None: never; []: every zone
    namespaces: list[str] = field(default_factory=list)
    endpoint_pod_names: bool = False
    ignore_empty_service: bool = False


@dataclass
class Server:
    """One server block for one port: its zones and the plugins' settings."""

    zones: list[str]
    port: int
    kubernetes: Kubernetes | None = None
    health: str | None = None          # listen address of /health
    lameduck: float = 0.0
    ready: str | None = None
    prometheus: str | None = None
    forward: list[str] | None = None   # [from, to...]
    cache: int | None = None           # cap in seconds (success and denial)
    log: bool = False
    errors: bool = False
    loadbalance: bool = False
    reload: bool = False


_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\{|\})|([^\s{}"]+)')


def tokenize(text: str) -> list[tuple[str, int, bool]]:
    """(token, line, quoted) with comments removed; ``{``/``}`` are their own tokens."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0] if '"' not in line else _strip_comment(line)
        for m in _TOKEN.finditer(code):
            if m.group(1) is not None:
                out.append((m.group(1), lineno, True))
            else:
                out.append((m.group(2) or m.group(3), lineno, False))
    return out


def _strip_comment(line: str) -> str:
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return line[:i]
    return line


def parse_blocks(text: str, path: str = "Corefile") -> list[tuple[list[str], list[Directive]]]:
    """Server blocks: (keys, directives). Directives end at the end of their line; a ``{`` on
    their line opens their own block."""
    tokens = tokenize(text)
    blocks, i = [], 0
    while i < len(tokens):
        keys, line = [], tokens[i][1]
        while i < len(tokens) and tokens[i][0] != "{":
            keys.append(tokens[i][0].rstrip(","))
            i += 1
        if i >= len(tokens):
            raise CorefileError(f"{path}:{line} - Error during parsing: Expected '{{' after server block keys")
        body, i = _directives(tokens, i + 1, path)
        blocks.append(([k for k in keys if k], body))
    return blocks


def _directives(tokens, i: int, path: str) -> tuple[list[Directive], int]:
    out: list[Directive] = []
    while i < len(tokens):
        tok, line, quoted = tokens[i]
        if tok == "}" and not quoted:
            return out, i + 1
        d = Directive(tok, [], [], line)
        i += 1
        while i < len(tokens) and tokens[i][1] == line and tokens[i][0] not in ("{", "}"):
            d.args.append(tokens[i][0])
            i += 1
        if i < len(tokens) and tokens[i][0] == "{" and tokens[i][1] == line:
            d.block, i = _directives(tokens, i + 1, path)
        out.append(d)
    raise CorefileError(f"{path}:{tokens[-1][1] if tokens else 0} - Error during parsing: Unexpected EOF")


def normalize_zone(zone: str) -> str:
    z = zone.strip().lower()
    return "." if z in ("", ".") else z.rstrip(".") + "."


def split_key(key: str) -> tuple[str, int]:
    """``dns://cluster.local:53`` / ``.:53`` / ``example.org`` -> (zone, port)."""
    key = key.removeprefix("dns://")
    zone, sep, port = key.rpartition(":")
    if not sep:
        zone, port = key, "53"
    try:
        number = int(port)
    except ValueError:
        raise CorefileError(f"server block key {key!r}: port {port!r} is not a number") from None
    return normalize_zone(zone), number


def parse(text: str, path: str = "Corefile", default_port: int = 53) -> list[Server]:
    servers = []
    for keys, body in parse_blocks(text, path):
        zones, ports = [], set()
        for key in keys:
            zone, port = split_key(key if ":" in key.removeprefix("dns://") else f"{key}:{default_port}")
            zones.append(zone)
            ports.add(port)
        if len(ports) != 1:
            raise CorefileError(f"{path}: one server block listens on one port (got {sorted(ports)})")
        server = Server(zones, ports.pop())
        for d in body:
            _apply(server, d, path)
        servers.append(server)
    if not servers:
        raise CorefileError(f"{path}: no server blocks")
    return servers


def _where(d: Directive, path: str) -> str:
    return f"{path}:{d.line} - Error during parsing:"


def _apply(server: Server, d: Directive, path: str) -> None:
    if d.name not in SUPPORTED:
        if d.name in UPSTREAM_PLUGINS:
            raise CorefileError(f"{_where(d, path)} plugin {d.name!r} is not built into netemu's CoreDNS "
                                f"(built in: {', '.join(SUPPORTED)})")
        raise CorefileError(f"{_where(d, path)} Unknown directive '{d.name}'")
    if d.name == "kubernetes":
        server.kubernetes = _kubernetes(d, server.zones, path)
    elif d.name == "health":
        server.health = d.args[0] if d.args else ":8080"
        for sub in d.block:
            if sub.name != "lameduck" or len(sub.args) != 1:
                raise CorefileError(f"{_where(sub, path)} unknown health property {sub.name!r}")
            server.lameduck = _duration(sub.args[0], sub, path)
    elif d.name == "ready":
        server.ready = d.args[0] if d.args else ":8181"
    elif d.name == "prometheus":
        server.prometheus = d.args[0] if d.args else "localhost:9153"
    elif d.name == "forward":
        if len(d.args) < 2:
            raise CorefileError(f"{_where(d, path)} Wrong argument count or unexpected line ending after 'forward'")
        server.forward = list(d.args)
    elif d.name == "cache":
        server.cache = _int(d.args[0], d, path) if d.args else 3600
    else:
        setattr(server, d.name, True)


def _kubernetes(d: Directive, block_zones: list[str], path: str) -> Kubernetes:
    zones = [normalize_zone(z) for z in d.args] or list(block_zones)
    k = Kubernetes(zones)
    for sub in d.block:
        if sub.name == "pods":
            if len(sub.args) != 1 or sub.args[0] not in PODS_MODES:
                raise CorefileError(f"{_where(sub, path)} wrong value for pods: {' '.join(sub.args)},  "
                                    f"must be one of: {', '.join(PODS_MODES)}")
            k.pods = sub.args[0]
        elif sub.name == "ttl":
            ttl = _int(sub.args[0] if len(sub.args) == 1 else "", sub, path)
            if not 0 <= ttl <= 3600:
                raise CorefileError(f"{_where(sub, path)} ttl must be in range [0, 3600]: {ttl}")
            k.ttl = ttl
        elif sub.name == "fallthrough":
            k.fallthrough = [normalize_zone(z) for z in sub.args]
        elif sub.name == "namespaces":
            k.namespaces = list(sub.args)
        elif sub.name == "endpoint_pod_names":
            k.endpoint_pod_names = True
        elif sub.name == "ignore" and sub.args == ["empty_service"]:
            k.ignore_empty_service = True
        else:
            raise CorefileError(f"{_where(sub, path)} unknown property '{sub.name}' (built in: pods, ttl, "
                                "fallthrough, namespaces, endpoint_pod_names, ignore empty_service)")
    return k


def _int(text: str, d: Directive, path: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CorefileError(f"{_where(d, path)} {d.name}: not a number: {text!r}") from None


def _duration(text: str, d: Directive, path: str) -> float:
    m = _DURATION.fullmatch(text)
    if not m:
        raise CorefileError(f"{_where(d, path)} {d.name}: not a duration: {text!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]


def listen_port(addr: str) -> tuple[str, int]:
    """``:8080`` / ``localhost:9153`` / ``0.0.0.0:8181`` -> (host, port); "" means every address."""
    host, _, port = addr.rpartition(":")
    if host == "localhost":
        host = "127.0.0.1"
    return host, int(port)
