"""Upstream's nftables chain and set names, bit for bit (kubernetes v1.32 pkg/proxy/nftables).

A per-Service name is a prefix (``service-``, ``local-``, ``external-``, ``firewall-``) plus
"HASH-ns/name/proto/port", an endpoint's ``endpoint-``/``affinity-`` plus
"HASH-ns/name/proto/port__ip/port", where HASH is the first 8 characters of
base32(sha256(the rest)) (upstream hashAndTruncate). Readable and still unique; the "/" in
every one of them is how stale service chains are told from kube-proxy's fixed chains.
Memoised: a 10k-Service sync asks for the same names again and again.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

NAME_LENGTH_MAX = 256                       # knftables.NameLengthMax
PREFIX_LENGTH_MAX = 16
BASE_LENGTH_MAX = NAME_LENGTH_MAX - PREFIX_LENGTH_MAX

CLUSTER_PREFIX = "service-"
LOCAL_PREFIX = "local-"
EXTERNAL_PREFIX = "external-"
FIREWALL_PREFIX = "firewall-"
ENDPOINT_PREFIX = "endpoint-"
AFFINITY_PREFIX = "affinity-"

_CACHE = 1 << 18


def hash_and_truncate(name: str) -> str:
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()[:5]).decode()
    name = digest[:8] + "-" + name
    if len(name) > BASE_LENGTH_MAX:
        name = name[:BASE_LENGTH_MAX - 3] + "..."
    return name


@lru_cache(maxsize=_CACHE)
def service_base(namespace: str, name: str, protocol: str, port: str) -> str:
    """"HASH-ns/name/proto/port" (upstream servicePortChainNameBase); protocol lower-case."""
    return hash_and_truncate(f"{namespace}/{name}/{protocol}/{port}")


@lru_cache(maxsize=_CACHE)
def endpoint_base(namespace: str, name: str, protocol: str, port: str, ip: str, ep_port: int) -> str:
    """"HASH-ns/name/proto/port__ip/port" (servicePortEndpointChainNameBase); IPv6 ":" -> "."."""
    return hash_and_truncate(f"{namespace}/{name}/{protocol}/{port}__{ip.replace(':', '.')}/{ep_port}")
