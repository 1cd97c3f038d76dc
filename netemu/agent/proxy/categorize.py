"""Which endpoints a node may use for a Service port (kubernetes v1.32 pkg/proxy/topology.go).

``categorize_endpoints`` is upstream's CategorizeEndpoints: it applies the traffic policies,
topology hints and the serving+terminating fallback (KEP-1669) in one place so every proxy
mode (iptables, nftables, ipvs) makes the same choice:

- Cluster policy uses every *ready* endpoint (filtered by zone hints when every ready
  endpoint has one and one is for this node's zone);
  if none is ready anywhere it falls back to endpoints that are serving and terminating, so
  a rolling update does not blackhole traffic.
- Local policy uses this node's ready endpoints, else this node's serving+terminating ones.
- ``has_any`` tells "no endpoints at all" (REJECT) from "none usable here" (DROP).
"""

from __future__ import annotations

import logging
from typing import Mapping, NamedTuple, Sequence

from .model import ZONE_LABEL, EndpointInfo, ServicePortInfo

log = logging.getLogger(__name__)


class Categorized(NamedTuple):
    cluster: tuple[EndpointInfo, ...]
    local: tuple[EndpointInfo, ...]
    all_reachable: tuple[EndpointInfo, ...]
    has_any: bool


def can_use_topology(endpoints: Sequence[EndpointInfo], info: ServicePortInfo,
                     node_labels: Mapping[str, str]) -> bool:
    """Upstream canUseTopology (v1.31+): zone hints are honoured when the node has a zone,
    every ready endpoint carries a hint and at least one is for this zone; otherwise all
    endpoints are used (all-or-nothing, so a half-hinted slice never blackholes a zone).
    Whether hints exist at all is the EndpointSlice controller's decision (topology-mode
    annotation / trafficDistribution), not kube-proxy's."""
    zone = node_labels.get(ZONE_LABEL)
    if not zone:
        return False
    for_zone = False
    for ep in endpoints:
        if not ep.ready:
            continue
        if not ep.zone_hints:
            if any(e.zone_hints for e in endpoints):
                log.info("%s: endpoint %s has no zone hint: not using topology hints", info.name, ep.endpoint)
            return False
        for_zone = for_zone or zone in ep.zone_hints
    if not for_zone:
        log.info("%s: no endpoint hinted for zone %s: not using topology hints", info.name, zone)
    return for_zone


def categorize_endpoints(endpoints: Sequence[EndpointInfo], info: ServicePortInfo,
                         node_labels: Mapping[str, str] | None = None) -> Categorized:
    """Split a service port's endpoints into cluster / local / all-reachable lists."""
    labels = node_labels or {}
    cluster: tuple[EndpointInfo, ...] = ()
    local: tuple[EndpointInfo, ...] = ()
    has_any = False
    use_topology = serving_terminating = False

    if info.uses_cluster_endpoints:
        use_topology = can_use_topology(endpoints, info, labels)
        zone = labels.get(ZONE_LABEL)
        cluster = tuple(ep for ep in endpoints
                        if ep.ready and (not use_topology or zone in ep.zone_hints))
        if not cluster:
            cluster = tuple(ep for ep in endpoints if ep.serving and ep.terminating)
        has_any = bool(cluster)

    if not info.uses_local_endpoints:
        return Categorized(cluster, (), cluster, has_any)

    local_ready = local_st = False
    for ep in endpoints:
        if ep.ready:
            has_any = True
            local_ready = local_ready or ep.is_local
        elif ep.serving and ep.terminating:
            has_any = True
            local_st = local_st or ep.is_local
    if local_ready:
        local = tuple(ep for ep in endpoints if ep.is_local and ep.ready)
    elif local_st:
        serving_terminating = True
        local = tuple(ep for ep in endpoints if ep.is_local and ep.serving and ep.terminating)

    if not info.uses_cluster_endpoints:
        return Categorized(cluster, local, local, has_any)
    if not use_topology and not serving_terminating:
        # cluster holds every ready endpoint, so it is a superset of local
        return Categorized(cluster, local, cluster, has_any)
    union = {ep.endpoint: ep for ep in cluster}
    union.update((ep.endpoint, ep) for ep in local)
    return Categorized(cluster, local, tuple(union[k] for k in sorted(union)), has_any)
