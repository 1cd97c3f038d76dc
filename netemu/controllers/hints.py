"""Topology hints on EndpointSlice endpoints, as upstream's EndpointSlice controller sets them.

Two ways a Service asks for them (kube-proxy then prefers endpoints hinted for its own zone):
- the annotation ``service.kubernetes.io/topology-mode: Auto`` (or the older
  ``service.kubernetes.io/topology-aware-hints``): Topology Aware Routing. Endpoints are shared
  out to zones in proportion to the allocatable CPU of the ready nodes in each zone, each zone
  getting at least its share / 1.2 (the 20 % overload threshold), or no hints at all, with a
  TopologyAwareHintsDisabled Event saying why (upstream topologycache);
- ``spec.trafficDistribution: PreferClose`` (also PreferSameZone, PreferSameNode): every ready
  endpoint is hinted for its own zone (and node), no proportions (upstream trafficdist).

Pure: endpoints in, endpoints with ``hints`` out, plus the Event to record.
"""

from __future__ import annotations

import math

from netemu.controllers.kube import Obj, condition, labels_of, milli

TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
TOPOLOGY_AWARE_HINTS = "service.kubernetes.io/topology-aware-hints"
ZONE_LABEL = "topology.kubernetes.io/zone"
OVERLOAD_THRESHOLD = 0.2
CLOSE = ("PreferClose", "PreferSameZone", "PreferSameNode")
ADDRESS_TYPE = "IPv4"

INSUFFICIENT_NODE_INFO = ("Insufficient Node information: allocatable CPU or zone not specified on one or "
                          "more nodes")
ONE_ZONE = "Nodes only ready in one zone"
TOO_FEW_ENDPOINTS = "Insufficient number of endpoints"
OVERLOAD = "Unable to allocate minimum required endpoints to each zone without exceeding overload threshold"
NO_ZONE = "One or more endpoints do not have a zone specified"
ENABLED = "Topology Aware Hints has been enabled"
DISABLED = "Topology Aware Hints has been disabled"

Event = tuple[str, str, str]  # type, reason, message


def with_address_type(message: str) -> str:
    return f"{message}, addressType: {ADDRESS_TYPE}"


def topology_mode_auto(service: Obj) -> bool:
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(TOPOLOGY_MODE, annotations.get(TOPOLOGY_AWARE_HINTS))
    return value in ("Auto", "auto")


def cpu_ratios(nodes: list[Obj]) -> dict[str, float] | None:
    """Share of allocatable CPU per zone over ready nodes (control-plane nodes left out); None
    when any counted node lacks a zone or CPU, or fewer than two zones remain."""
    by_zone: dict[str, int] = {}
    for node in nodes:
        labels = labels_of(node)
        if "node-role.kubernetes.io/control-plane" in labels or "node-role.kubernetes.io/master" in labels:
            continue
        if (condition(node, "Ready") or {}).get("status") != "True":
            continue
        cpu = ((node.get("status") or {}).get("allocatable") or {}).get("cpu")
        zone = labels.get(ZONE_LABEL)
        if not zone or not cpu or milli(cpu) == 0:
            return None
        by_zone[zone] = by_zone.get(zone, 0) + milli(cpu)
    total = sum(by_zone.values())
    if not total or len(by_zone) < 2:
        return None
    return {zone: cpu / total for zone, cpu in by_zone.items()}


def allocations(ratios: dict[str, float] | None, endpoints: int) -> tuple[dict[str, dict], str | None]:
    """Per zone: minimum, maximum and desired endpoint counts, or the reason there are none."""
    if ratios is None:
        return {}, INSUFFICIENT_NODE_INFO
    if len(ratios) < 2:
        return {}, ONE_ZONE
    if len(ratios) > endpoints:
        return {}, f"{TOO_FEW_ENDPOINTS} ({endpoints} endpoints, {len(ratios)} zones)"
    out, remaining, min_total = {}, endpoints, 0
    for zone in sorted(ratios):
        desired = ratios[zone] * endpoints
        minimum = math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD)))
        out[zone] = {"minimum": minimum, "desired": max(desired, float(minimum))}
        min_total += minimum
        remaining -= minimum
        if remaining < 0:
            return {}, f"{OVERLOAD} ({endpoints} endpoints, {len(ratios)} zones)"
    for alloc in out.values():
        alloc["maximum"] = alloc["minimum"] + endpoints - min_total
    return out, None


def _most(values: dict[str, float]) -> tuple[str, float]:
    zone, num = "", 0.0
    for z in sorted(values):
        if values[z] > num:
            zone, num = z, values[z]
    return zone, num


def giving_and_receiving(allocs: dict[str, dict], hinted: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    give_f, take_f = {}, {}
    for zone, alloc in allocs.items():
        have, target = hinted.get(zone, 0), alloc["desired"]
        if have > target:
            give_f[zone] = have - target
        elif have < target:
            take_f[zone] = target - have
    give, take = {}, {}
    while True:
        gz, gn = _most(give_f)
        rz, rn = _most(take_f)
        if not gz or not rz or (gn < 1.0 and rn < 1.0) or gn < 0.5 or rn < 0.5:
            return give, take
        give[gz], take[rz] = give.get(gz, 0) + 1, take.get(rz, 0) + 1
        give_f[gz] -= 1
        take_f[rz] -= 1


def _ready(ep: Obj) -> bool:
    return bool((ep.get("conditions") or {}).get("ready"))


def _hint(ep: Obj, zone: str) -> None:
    ep["hints"] = {"forZones": [{"name": zone}]}


def topology_hints(endpoints: list[Obj], nodes: list[Obj]) -> tuple[bool, Event | None]:
    """Set proportional zone hints on ``endpoints`` in place (True), or clear them (False) and
    return the TopologyAwareHintsDisabled Event."""
    ready = [ep for ep in endpoints if _ready(ep)]
    allocs, why = allocations(cpu_ratios(nodes), len(ready))
    if why is None and any(not ep.get("zone") for ep in ready):
        why = NO_ZONE
    if why is not None:
        clear(endpoints)
        return False, ("Warning", "TopologyAwareHintsDisabled", with_address_type(why))
    hinted: dict[str, int] = {}
    for ep in endpoints:
        ep.pop("hints", None)
        if _ready(ep):
            _hint(ep, ep["zone"])
            hinted[ep["zone"]] = hinted.get(ep["zone"], 0) + 1
    give, take = giving_and_receiving(allocs, hinted)
    for ep in ready:  # redistribute from zones with too many to zones with too few
        if not give or not take:
            break
        if give.get(ep["zone"], 0) > 0:
            receiver = next(z for z in sorted(take) if take[z] > 0)
            _hint(ep, receiver)
            for table, zone in ((give, ep["zone"]), (take, receiver)):
                table[zone] -= 1
                if not table[zone]:
                    del table[zone]
    return True, None


def prefer_close(endpoints: list[Obj], same_node: bool = False) -> None:
    """trafficDistribution: each ready endpoint hinted for its own zone (and node)."""
    for ep in endpoints:
        ep.pop("hints", None)
        if not _ready(ep):
            continue
        hints = {}
        if ep.get("zone"):
            hints["forZones"] = [{"name": ep["zone"]}]
        if same_node and ep.get("nodeName"):
            hints["forNodes"] = [{"name": ep["nodeName"]}]
        if hints:
            ep["hints"] = hints


def clear(endpoints: list[Obj]) -> None:
    for ep in endpoints:
        ep.pop("hints", None)


def apply_hints(service: Obj, endpoints: list[Obj], nodes: list[Obj], had_hints: bool) -> tuple[bool, list[Event]]:
    """Hints for a Service's endpoints, in place. Returns (hints now populated, Events)."""
    if topology_mode_auto(service):
        ok, event = topology_hints(endpoints, nodes)
        if not ok:
            return False, [event] if event else []
        return True, [] if had_hints else [("Normal", "TopologyAwareHintsEnabled", with_address_type(ENABLED))]
    events = [("Warning", "TopologyAwareHintsDisabled", with_address_type(DISABLED))] if had_hints else []
    distribution = (service.get("spec") or {}).get("trafficDistribution")
    if distribution in CLOSE:
        prefer_close(endpoints, same_node=distribution == "PreferSameNode")
    else:
        clear(endpoints)
    return False, events
