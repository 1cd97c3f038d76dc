"""The ipsets of kube-proxy's IPVS mode (kubernetes v1.32 pkg/proxy/ipvs/ipset.go and util/ipset):
names, types, comments, how an entry is spelled, and the ``ipset save`` / ``ipset restore`` text.

Why ipsets: IPVS itself only balances; the masquerade and filter decisions stay in iptables. Instead
of one rule per Service (the iptables mode's cost), the IPVS mode keeps a fixed handful of rules
that match these sets, so adding a Service adds set entries, not rules.

Entries are spelled as upstream's Entry.String() spells them ("10.96.0.1,tcp:443",
"10.0.1.1,tcp:80,10.0.1.1", "1.2.3.4,tcp:80,10.0.0.0/8", "30080"). ``ipset save`` prints a
hash:net member of a full-length prefix without it ("1.2.3.4" for "1.2.3.4/32"), and IPv6
addresses in their compressed form: ``canonical`` spells both sides alike before they are compared.
IPv6 sets are named "KUBE-6-..." (at most 31 characters), as upstream names them in dual-stack.
"""

from __future__ import annotations

import socket
from typing import Iterable, Mapping, NamedTuple

HASH_IP = "hash:ip"
HASH_IP_PORT = "hash:ip,port"
HASH_IP_PORT_IP = "hash:ip,port,ip"
HASH_IP_PORT_NET = "hash:ip,port,net"
BITMAP_PORT = "bitmap:port"
HASH_SIZE = 1024           # upstream utilipset defaults
MAX_ELEM = 65536
PORT_RANGE = "0-65535"
MAX_NAME = 31              # the kernel's IPSET_MAXNAMELEN - 1

LOOP_BACK = "KUBE-LOOP-BACK"
CLUSTER_IP = "KUBE-CLUSTER-IP"
EXTERNAL_IP = "KUBE-EXTERNAL-IP"
EXTERNAL_IP_LOCAL = "KUBE-EXTERNAL-IP-LOCAL"
LOAD_BALANCER = "KUBE-LOAD-BALANCER"
LOAD_BALANCER_FW = "KUBE-LOAD-BALANCER-FW"
LOAD_BALANCER_LOCAL = "KUBE-LOAD-BALANCER-LOCAL"
LOAD_BALANCER_SOURCE_IP = "KUBE-LOAD-BALANCER-SOURCE-IP"
LOAD_BALANCER_SOURCE_CIDR = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
NODE_PORT_TCP = "KUBE-NODE-PORT-TCP"
NODE_PORT_LOCAL_TCP = "KUBE-NODE-PORT-LOCAL-TCP"
NODE_PORT_UDP = "KUBE-NODE-PORT-UDP"
NODE_PORT_LOCAL_UDP = "KUBE-NODE-PORT-LOCAL-UDP"
NODE_PORT_SCTP = "KUBE-NODE-PORT-SCTP-HASH"
NODE_PORT_LOCAL_SCTP = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
HEALTH_CHECK_NODE_PORT = "KUBE-HEALTH-CHECK-NODE-PORT"
IPVS_IPS = "KUBE-IPVS-IPS"


class SetInfo(NamedTuple):
    name: str       # the IPv4 name; ``name_for`` gives the family's
    type: str
    comment: str


# upstream ipsetInfo, in its order (the order sets are created in)
SETS: tuple[SetInfo, ...] = (
    SetInfo(LOOP_BACK, HASH_IP_PORT_IP, "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"),
    SetInfo(CLUSTER_IP, HASH_IP_PORT, "Kubernetes service cluster ip + port for masquerade purpose"),
    SetInfo(EXTERNAL_IP, HASH_IP_PORT, "Kubernetes service external ip + port for masquerade and filter purpose"),
    SetInfo(EXTERNAL_IP_LOCAL, HASH_IP_PORT, "Kubernetes service external ip + port with externalTrafficPolicy=local"),
    SetInfo(LOAD_BALANCER, HASH_IP_PORT, "Kubernetes service lb portal"),
    SetInfo(LOAD_BALANCER_FW, HASH_IP_PORT, "Kubernetes service load balancer ip + port for load balancer with sourceRange"),
    SetInfo(LOAD_BALANCER_LOCAL, HASH_IP_PORT,
            "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"),
    SetInfo(LOAD_BALANCER_SOURCE_IP, HASH_IP_PORT_IP,
            "Kubernetes service load balancer ip + port + source IP for packet filter purpose"),
    SetInfo(LOAD_BALANCER_SOURCE_CIDR, HASH_IP_PORT_NET,
            "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"),
    SetInfo(NODE_PORT_TCP, BITMAP_PORT, "Kubernetes nodeport TCP port for masquerade purpose"),
    SetInfo(NODE_PORT_LOCAL_TCP, BITMAP_PORT, "Kubernetes nodeport TCP port with externalTrafficPolicy=local"),
    SetInfo(NODE_PORT_UDP, BITMAP_PORT, "Kubernetes nodeport UDP port for masquerade purpose"),
    SetInfo(NODE_PORT_LOCAL_UDP, BITMAP_PORT, "Kubernetes nodeport UDP port with externalTrafficPolicy=local"),
    SetInfo(NODE_PORT_SCTP, HASH_IP_PORT, "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"),
    SetInfo(NODE_PORT_LOCAL_SCTP, HASH_IP_PORT,
            "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"),
    SetInfo(HEALTH_CHECK_NODE_PORT, BITMAP_PORT, "Kubernetes health check node port"),
    SetInfo(IPVS_IPS, HASH_IP, "Addresses on the ipvs interface"),
)
BY_NAME: dict[str, SetInfo] = {s.name: s for s in SETS}


def name_for(name: str, ipv6: bool) -> str:
    """The set's name in the node's family: "KUBE-6-..." for IPv6, cut to 31 characters."""
    if not ipv6 or not name.startswith("KUBE-"):
        return name
    return ("KUBE-6-" + name[len("KUBE-"):])[:MAX_NAME]


def names(ipv6: bool) -> dict[str, SetInfo]:
    """Every set by its family's name."""
    return {name_for(s.name, ipv6): s for s in SETS}


# ---- entries ------------------------------------------------------------------------------

def ip_port(ip: str, proto: str, port: int) -> str:
    return f"{ip},{proto.lower()}:{port}"


def ip_port_ip(ip: str, proto: str, port: int, ip2: str) -> str:
    return f"{ip},{proto.lower()}:{port},{ip2}"


def ip_port_net(ip: str, proto: str, port: int, net: str) -> str:
    return f"{ip},{proto.lower()}:{port},{net}"


def canonical(set_type: str, entry: str) -> str:
    """An entry as both we and ``ipset save`` would spell it, for comparing the two."""
    parts = entry.split(",")
    if set_type == BITMAP_PORT:
        return str(int(parts[0].rpartition(":")[2]))
    parts[0] = _canon_ip(parts[0])
    if len(parts) > 1:
        proto, _, port = parts[1].partition(":")
        parts[1] = f"{proto.lower()}:{int(port)}"
    if len(parts) > 2:
        addr, slash, plen = parts[2].partition("/")
        full = 128 if ":" in addr else 32
        parts[2] = _canon_ip(addr) + (f"/{plen}" if slash and int(plen) != full else "")
    return ",".join(parts)


def _canon_ip(ip: str) -> str:
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return socket.inet_ntop(fam, socket.inet_pton(fam, ip))


# ---- the save / restore text ---------------------------------------------------------------

def create_line(name: str, info: SetInfo, ipv6: bool) -> str:
    """``create`` as upstream's CreateSet writes it (hash sets: family, hashsize, maxelem;
    bitmap:port: its range; every set: the comment extension)."""
    if info.type == BITMAP_PORT:
        opts = f"range {PORT_RANGE}"
    else:
        opts = f"family {'inet6' if ipv6 else 'inet'} hashsize {HASH_SIZE} maxelem {MAX_ELEM}"
    return f"create {name} {info.type} {opts} comment"


def save_text(ipsets: Mapping[str, Iterable[str]], ipv6: bool) -> str:
    """The sets and their members as ``ipset save`` prints them (sets in upstream's order,
    members sorted)."""
    lines = []
    for name, info in names(ipv6).items():
        if name not in ipsets:
            continue
        lines.append(create_line(name, info, ipv6))
        lines += [f"add {name} {e}" for e in sorted(ipsets[name], key=_sort_key)]
    return "\n".join(lines) + ("\n" if lines else "")


def _sort_key(entry: str):
    return [int(p) if p.isdigit() else p for p in entry.replace(":", ",").replace(".", ",").split(",")]


def parse_save(text: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    """``ipset save`` text -> ({set: type}, {set: canonical entries}). Unknown lines are skipped:
    the caller compares only the sets it owns."""
    types: dict[str, str] = {}
    members: dict[str, set[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "create":
            types[words[1]] = words[2]
            members.setdefault(words[1], set())
        elif len(words) >= 3 and words[0] == "add" and words[1] in types:
            members[words[1]].add(canonical(types[words[1]], words[2]))
    return types, members
