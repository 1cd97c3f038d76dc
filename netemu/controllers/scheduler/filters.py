"""Filter plugins: may this pod run on this node? (kube-scheduler's Filter extension point)

Each filter returns None (fits) or a ``Reject`` carrying upstream's reason strings, which the
scheduler folds into the "0/3 nodes are available: ..." message, and whether preemption could
help (upstream Unschedulable vs UnschedulableAndUnresolvable), which words the "preemption:" part.
Order and wording follow pkg/scheduler/framework/plugins in Kubernetes 1.32.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional

from netemu.controllers.kube import (Obj, compile_selector, condition, is_deleting, labels_of,
                                     node_selector_term_matches, ns_of, selector_matches)
from netemu.controllers.scheduler.snapshot import NodeInfo, Snapshot, has_affinity

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


@dataclass(frozen=True)
class Reject:
    plugin: str
    reasons: tuple[str, ...]
    resolvable: bool = True  # False: UnschedulableAndUnresolvable, preemption cannot help


Filter = Callable[[Obj, NodeInfo, Snapshot], Optional[Reject]]


# ---- taints and tolerations --------------------------------------------------------------------

def toleration_tolerates(tol: Obj, taint: Obj) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if tol.get("effect") and tol["effect"] != taint.get("effect"):
        return False
    if tol.get("key") and tol["key"] != taint.get("key"):
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (tol.get("value") or "") == (taint.get("value") or "")


def tolerated(pod: Obj, taint: Obj) -> bool:
    return any(toleration_tolerates(t, taint) for t in (pod.get("spec") or {}).get("tolerations") or [])


def effective_taints(node: Obj) -> list[Obj]:
    """The node's taints, plus the condition taints the node lifecycle controller would add.

    Upstream the scheduler only reads taints (TaintNodesByCondition); adding them here for a node
    whose Ready condition is not True closes the window before the controller has written them.
    """
    taints = list((node.get("spec") or {}).get("taints") or [])
    ready = condition(node, "Ready")
    status = ready.get("status") if ready else "Unknown"
    wanted = {"False": NOT_READY_TAINT, "Unknown": UNREACHABLE_TAINT}.get(status)
    if wanted and not any(t.get("key") == wanted and t.get("effect") == "NoSchedule" for t in taints):
        taints.append({"key": wanted, "effect": "NoSchedule"})
    return taints


def node_unschedulable(pod: Obj, ni: NodeInfo, snap: Snapshot) -> Reject | None:
    if not (ni.node.get("spec") or {}).get("unschedulable"):
        return None
    if tolerated(pod, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}):
        return None
    return Reject("NodeUnschedulable", ("node(s) were unschedulable",), resolvable=False)


def taint_toleration(pod: Obj, ni: NodeInfo, snap: Snapshot) -> Reject | None:
    for taint in effective_taints(ni.node):
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(pod, taint):
            reason = f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
            return Reject("TaintToleration", (reason,), resolvable=False)
    return None


# ---- node selector and affinity ---------------------------------------------------------------

def required_node_affinity_matches(pod: Obj, node: Obj) -> bool:
    """nodeSelector AND (any of the required nodeSelectorTerms)."""
    spec = pod.get("spec") or {}
    labels = labels_of(node)
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if not required:
        return True
    return any(node_selector_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def node_affinity(pod: Obj, ni: NodeInfo, snap: Snapshot) -> Reject | None:
    if required_node_affinity_matches(pod, ni.node):
        return None
    return Reject("NodeAffinity", ("node(s) didn't match Pod's node affinity/selector",), resolvable=False)


def node_ports(pod: Obj, ni: NodeInfo, snap: Snapshot) -> Reject | None:
    def host_ports(p: Obj) -> set[tuple[str, str, int]]:
        return {(c.get("hostIP") or "0.0.0.0", c.get("protocol") or "TCP", c["hostPort"])
                for ctr in (p.get("spec") or {}).get("containers") or []
                for c in ctr.get("ports") or [] if c.get("hostPort")}
    wanted = host_ports(pod)
    if not wanted:
        return None
    used = set().union(*(host_ports(p) for p in ni.pods_by_key.values()))
    for ip, proto, port in wanted:
        for uip, uproto, uport in used:
            if (proto, port) == (uproto, uport) and (ip == uip or "0.0.0.0" in (ip, uip)):
                return Reject("NodePorts", ("node(s) didn't have free ports for the requested pod ports",))
    return None


# ---- resources ---------------------------------------------------------------------------------

def node_resources_fit(pod: Obj, ni: NodeInfo, snap: Snapshot) -> Reject | None:
    """Requests vs allocatable minus the requests of pods already bound (upstream fitsRequest)."""
    want, alloc, used = snap.requests(pod), ni.allocatable, ni.requested
    reasons = []
    if len(ni.pods_by_key) + 1 > alloc.pods:
        reasons.append("Too many pods")
    if want.milli_cpu and want.milli_cpu > alloc.milli_cpu - used.milli_cpu:
        reasons.append("Insufficient cpu")
    if want.memory and want.memory > alloc.memory - used.memory:
        reasons.append("Insufficient memory")
    return Reject("NodeResourcesFit", tuple(reasons)) if reasons else None


# ---- topology spread ---------------------------------------------------------------------------

def spread_selector(pod: Obj, constraint: Obj) -> Obj | None:
    """The constraint's labelSelector, narrowed by matchLabelKeys to the pod's own values
    (upstream: e.g. pod-template-hash, so each rollout revision spreads on its own)."""
    selector = constraint.get("labelSelector")
    keys = constraint.get("matchLabelKeys") or []
    if selector is None or not keys:
        return selector
    labels = labels_of(pod)
    extra = [{"key": k, "operator": "In", "values": [labels[k]]} for k in keys if k in labels]
    return dict(selector, matchExpressions=list(selector.get("matchExpressions") or []) + extra)


def _spread_matches(pod: Obj, matcher: Any, other: Obj) -> bool:
    return ns_of(other) == ns_of(pod) and not is_deleting(other) and matcher.matches(labels_of(other))


def spread_counts(pod: Obj, constraint: Obj, snap: Snapshot) -> Counter:
    """Matching pods per topology domain over the nodes eligible for this pod (upstream
    nodeAffinityPolicy Honor, nodeTaintsPolicy Ignore); computed once per cycle."""
    memo_key = ("spread", id(pod), id(constraint))
    if memo_key not in snap.memo:
        snap.memo[memo_key] = _spread_counts(pod, constraint, snap)
    return snap.memo[memo_key]


def _spread_counts(pod: Obj, constraint: Obj, snap: Snapshot) -> Counter:
    key = constraint["topologyKey"]
    matcher = compile_selector(spread_selector(pod, constraint))
    counts: Counter = Counter()
    for ni in snap.nodes:
        domain = labels_of(ni.node).get(key)
        if domain is None or not required_node_affinity_matches(pod, ni.node):
            continue
        counts[domain] += sum(1 for p in ni.pods_by_key.values() if _spread_matches(pod, matcher, p))
    return counts


def pod_topology_spread(pod: Obj, ni: NodeInfo, snap: Snapshot) -> Reject | None:
    for c in (pod.get("spec") or {}).get("topologySpreadConstraints") or []:
        if (c.get("whenUnsatisfiable") or "DoNotSchedule") != "DoNotSchedule":
            continue
        domain = labels_of(ni.node).get(c["topologyKey"])
        if domain is None:
            return Reject("PodTopologySpread",
                          ("node(s) didn't match pod topology spread constraints (missing required label)",),
                          resolvable=False)
        counts = spread_counts(pod, c, snap)
        min_count = min(counts.values()) if counts else 0
        if len(counts) < int(c.get("minDomains") or 1):
            min_count = 0
        self_match = 1 if selector_matches(spread_selector(pod, c), labels_of(pod)) else 0
        if counts.get(domain, 0) + self_match - min_count > int(c.get("maxSkew", 1)):
            return Reject("PodTopologySpread", ("node(s) didn't match pod topology spread constraints",))
    return None


# ---- inter-pod affinity ------------------------------------------------------------------------

def term_matches_pod(term: Obj, owner: Obj, other: Obj) -> bool:
    """A PodAffinityTerm of ``owner`` selects ``other`` (namespaces default to the owner's)."""
    namespaces = term.get("namespaces") or []
    if not namespaces and term.get("namespaceSelector") is None:
        namespaces = [ns_of(owner)]
    if namespaces and ns_of(other) not in namespaces:
        return False
    return selector_matches(term.get("labelSelector"), labels_of(other))


def same_domain(a: Obj, b: Obj, key: str) -> bool:
    va, vb = labels_of(a).get(key), labels_of(b).get(key)
    return va is not None and va == vb


def _required(pod: Obj, kind: str) -> list[Obj]:
    return ((((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {})
            .get("requiredDuringSchedulingIgnoredDuringExecution") or [])


def inter_pod_affinity(pod: Obj, ni: NodeInfo, snap: Snapshot) -> Reject | None:
    # existing pods whose required anti-affinity selects this pod, in this node's domain
    for other_ni, other in snap.pods_with_affinity():
        for term in _required(other, "podAntiAffinity"):
            if term_matches_pod(term, other, pod) and same_domain(other_ni.node, ni.node, term["topologyKey"]):
                return Reject("InterPodAffinity", ("node(s) didn't satisfy existing pods anti-affinity rules",))
    if not has_affinity(pod):
        return None
    others = snap.all_pods()
    for term in _required(pod, "podAffinity"):
        matching = [(oni, o) for oni, o in others if term_matches_pod(term, pod, o)]
        if any(same_domain(oni.node, ni.node, term["topologyKey"]) for oni, _ in matching):
            continue
        # the first pod of a group that selects itself may go anywhere with the topology key
        if not matching and term_matches_pod(term, pod, pod) and term["topologyKey"] in labels_of(ni.node):
            continue
        return Reject("InterPodAffinity", ("node(s) didn't match pod affinity rules",), resolvable=False)
    for term in _required(pod, "podAntiAffinity"):
        if any(term_matches_pod(term, pod, o) and same_domain(oni.node, ni.node, term["topologyKey"])
               for oni, o in others):
            return Reject("InterPodAffinity", ("node(s) didn't match pod anti-affinity rules",))
    return None


# upstream default profile order
FILTERS: tuple[tuple[str, Filter], ...] = (
    ("NodeUnschedulable", node_unschedulable),
    ("TaintToleration", taint_toleration),
    ("NodeAffinity", node_affinity),
    ("NodePorts", node_ports),
    ("NodeResourcesFit", node_resources_fit),
    ("PodTopologySpread", pod_topology_spread),
    ("InterPodAffinity", inter_pod_affinity),
)
