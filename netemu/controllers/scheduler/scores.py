"""Score plugins: how good is each feasible node? (kube-scheduler's Score + NormalizeScore)

Each plugin gives every feasible node a raw score, normalizes the list to 0..100 the way its
upstream counterpart does, and is weighted with the default profile's weight (Kubernetes 1.32:
TaintToleration 3, NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2, NodeResourcesFit 1,
NodeResourcesBalancedAllocation 1). ImageLocality is left out: emulated nodes have no images.
"""

from __future__ import annotations

import math
from typing import Callable

from netemu.controllers.kube import Obj, controller_ref, labels_of, node_selector_term_matches
from netemu.controllers.scheduler.filters import (same_domain, spread_counts, term_matches_pod,
                                                  tolerated)
from netemu.controllers.scheduler.snapshot import NodeInfo, Snapshot, has_affinity

MAX_SCORE = 100
HARD_POD_AFFINITY_WEIGHT = 1  # upstream InterPodAffinityArgs.hardPodAffinityWeight default


def default_normalize(scores: list[float], reverse: bool = False) -> list[int]:
    """framework/plugins/helper.DefaultNormalizeScore."""
    top = max(scores, default=0)
    if top == 0:
        return [MAX_SCORE if reverse else 0 for _ in scores]
    out = [int(MAX_SCORE * s // top) for s in scores]
    return [MAX_SCORE - s for s in out] if reverse else out


# ---- NodeResourcesFit (LeastAllocated) and BalancedAllocation --------------------------------

def _usage(pod: Obj, ni: NodeInfo, snap: Snapshot) -> list[tuple[int, int]]:
    want, used, alloc = snap.requests(pod, non_zero=True), ni.non_zero_requested, ni.allocatable
    return [(used.milli_cpu + want.milli_cpu, alloc.milli_cpu), (used.memory + want.memory, alloc.memory)]


def least_allocated(pod: Obj, nodes: list[NodeInfo], snap: Snapshot) -> list[int]:
    out = []
    for ni in nodes:
        parts = [0 if cap == 0 or req > cap else (cap - req) * MAX_SCORE // cap for req, cap in _usage(pod, ni, snap)]
        out.append(sum(parts) // len(parts))
    return out


def balanced_allocation(pod: Obj, nodes: list[NodeInfo], snap: Snapshot) -> list[int]:
    out = []
    for ni in nodes:
        fractions = [min(req / cap, 1.0) if cap else 1.0 for req, cap in _usage(pod, ni, snap)]
        std = abs(fractions[0] - fractions[1]) / 2
        out.append(int((1 - std) * MAX_SCORE))
    return out


# ---- NodeAffinity preferred --------------------------------------------------------------------

def node_affinity_preferred(pod: Obj, nodes: list[NodeInfo], snap: Snapshot) -> list[int]:
    terms = ((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
             .get("preferredDuringSchedulingIgnoredDuringExecution") or [])
    raw = [sum(int(t.get("weight", 0)) for t in terms if node_selector_term_matches(t.get("preference") or {}, ni.node))
           for ni in nodes]
    return default_normalize(raw)


# ---- TaintToleration PreferNoSchedule ----------------------------------------------------------

def taint_toleration_preferred(pod: Obj, nodes: list[NodeInfo], snap: Snapshot) -> list[int]:
    raw = [sum(1 for t in (ni.node.get("spec") or {}).get("taints") or []
               if t.get("effect") == "PreferNoSchedule" and not tolerated(pod, t)) for ni in nodes]
    return default_normalize(raw, reverse=True)


# ---- PodTopologySpread ScheduleAnyway ----------------------------------------------------------

def soft_constraints(pod: Obj) -> list[Obj]:
    """The pod's ScheduleAnyway constraints; with none at all, upstream's system defaults
    (hostname maxSkew 3, zone maxSkew 5) over pods like this one when a controller owns it."""
    constraints = (pod.get("spec") or {}).get("topologySpreadConstraints") or []
    if not constraints:
        if controller_ref(pod) is None or not labels_of(pod):
            return []
        selector = {"matchLabels": dict(labels_of(pod))}
        return [{"maxSkew": 3, "topologyKey": "kubernetes.io/hostname", "labelSelector": selector},
                {"maxSkew": 5, "topologyKey": "topology.kubernetes.io/zone", "labelSelector": selector}]
    return [c for c in constraints if c.get("whenUnsatisfiable") == "ScheduleAnyway"]


def topology_spread_preferred(pod: Obj, nodes: list[NodeInfo], snap: Snapshot) -> list[int]:
    constraints = [c for c in soft_constraints(pod)
                   if any(c["topologyKey"] in labels_of(ni.node) for ni in nodes)]
    if not constraints:
        return [0 for _ in nodes]
    counts = [spread_counts(pod, c, snap) for c in constraints]
    raw: list[float | None] = []
    for ni in nodes:
        total, ok = 0.0, True
        for c, cnt in zip(constraints, counts):
            domain = labels_of(ni.node).get(c["topologyKey"])
            if domain is None:
                ok = False
                break
            weight = math.log(len(cnt) + 2)
            total += cnt.get(domain, 0) * weight + (int(c.get("maxSkew", 1)) - 1)
        raw.append(total if ok else None)
    present = [r for r in raw if r is not None]
    top, low = max(present, default=0), min(present, default=0)
    if top == 0:
        return [MAX_SCORE if r is not None else 0 for r in raw]
    return [0 if r is None else int(MAX_SCORE * (top + low - r) / top) for r in raw]


# ---- InterPodAffinity preferred ----------------------------------------------------------------

def _preferred(pod: Obj, kind: str) -> list[Obj]:
    return ((((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {})
            .get("preferredDuringSchedulingIgnoredDuringExecution") or [])


def inter_pod_affinity_preferred(pod: Obj, nodes: list[NodeInfo], snap: Snapshot) -> list[int]:
    if not has_affinity(pod) and not snap.pods_with_affinity():
        return [0 for _ in nodes]
    others = snap.all_pods() if has_affinity(pod) else []
    raw = []
    for ni in nodes:
        total = 0
        for sign, kind in ((1, "podAffinity"), (-1, "podAntiAffinity")):
            for wt in _preferred(pod, kind):
                term = wt.get("podAffinityTerm") or {}
                total += sign * int(wt.get("weight", 0)) * sum(
                    1 for oni, o in others
                    if term_matches_pod(term, pod, o) and same_domain(oni.node, ni.node, term["topologyKey"]))
            for oni, o in snap.pods_with_affinity():  # symmetry: existing pods' preferences about this pod
                for wt in _preferred(o, kind):
                    term = wt.get("podAffinityTerm") or {}
                    if term_matches_pod(term, o, pod) and same_domain(oni.node, ni.node, term["topologyKey"]):
                        total += sign * int(wt.get("weight", 0))
        for oni, o in snap.pods_with_affinity():  # existing pods' required affinity: weight 1
            for term in ((((o.get("spec") or {}).get("affinity") or {}).get("podAffinity") or {})
                         .get("requiredDuringSchedulingIgnoredDuringExecution") or []):
                if term_matches_pod(term, o, pod) and same_domain(oni.node, ni.node, term["topologyKey"]):
                    total += HARD_POD_AFFINITY_WEIGHT
        raw.append(total)
    top, low = max(raw, default=0), min(raw, default=0)
    if top == low:
        return [0 for _ in raw]
    return [int(MAX_SCORE * (r - low) / (top - low)) for r in raw]


Scorer = Callable[[Obj, list[NodeInfo], Snapshot], list[int]]

SCORES: tuple[tuple[str, int, Scorer], ...] = (
    ("TaintToleration", 3, taint_toleration_preferred),
    ("NodeAffinity", 2, node_affinity_preferred),
    ("PodTopologySpread", 2, topology_spread_preferred),
    ("InterPodAffinity", 2, inter_pod_affinity_preferred),
    ("NodeResourcesFit", 1, least_allocated),
    ("NodeResourcesBalancedAllocation", 1, balanced_allocation),
)
