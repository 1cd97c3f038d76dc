"""What the DaemonSet controller decides (pure): which nodes run a daemon pod, which pods to
create and delete, the rolling update's next step and the status counts.

Ported from pkg/controller/daemon (daemon_controller.go, update.go, util/daemonset_util.go) of
Kubernetes v1.32:

- a node should run the pod when the pod template's nodeSelector and required node affinity
  match it and every NoSchedule/NoExecute taint in ``spec.taints`` is tolerated, counting the
  tolerations upstream adds to every daemon pod; an untolerated NoSchedule taint keeps an
  existing pod (``shouldContinueRunning``), an untolerated NoExecute one removes it;
- daemon pods carry no nodeName: a required nodeAffinity ``matchFields metadata.name In [NODE]``
  (``ReplaceDaemonSetPodNodeNameNodeAffinity``) lets the default scheduler bind them (since 1.12);
- RollingUpdate replaces old pods node by node, at most ``maxUnavailable`` nodes without an
  available pod at a time (or, with ``maxSurge``, a new pod next to the old one first).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from netemu.api.template_generation import template_generation
from netemu.controllers import rollout
from netemu.controllers.history import typed_template
from netemu.controllers.kube import (Obj, condition, is_deleting, labels_of, meta, name_of, ns_of, owner_ref,
                                     parse_time, pod_is_ready)
from netemu.controllers.scheduler.filters import required_node_affinity_matches, toleration_tolerates

HASH_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"      # deprecated upstream, still set
_NO_EXECUTE = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_NO_SCHEDULE = ("node.kubernetes.io/disk-pressure", "node.kubernetes.io/memory-pressure",
                "node.kubernetes.io/pid-pressure", "node.kubernetes.io/unschedulable")
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"


def daemon_tolerations(pod_spec: Obj) -> list[Obj]:
    """``AddOrUpdateDaemonPodTolerations``: the template's tolerations plus upstream's own (no
    tolerationSeconds: a daemon pod is never evicted from a not-ready or unreachable node)."""
    out = [dict(t) for t in pod_spec.get("tolerations") or []]
    wanted = [{"key": k, "operator": "Exists", "effect": "NoExecute"} for k in _NO_EXECUTE]
    wanted += [{"key": k, "operator": "Exists", "effect": "NoSchedule"} for k in _NO_SCHEDULE]
    if pod_spec.get("hostNetwork"):
        wanted.append({"key": NETWORK_UNAVAILABLE, "operator": "Exists", "effect": "NoSchedule"})
    for tol in wanted:
        out = [t for t in out if not (t.get("key") == tol["key"] and t.get("effect") == tol["effect"])]
        out.append(tol)
    return out


def template_hash(ds: Obj) -> str:
    """The current template's revision hash (upstream ComputeHash(template, collisionCount)); the
    controller uses its ControllerRevision's hash label, the same unless revisions were deduplicated."""
    count = int((ds.get("status") or {}).get("collisionCount") or 0)
    return rollout.template_hash(typed_template((ds.get("spec") or {}).get("template") or {}), count)


def new_pod(ds: Obj, node: str, hash_: str) -> Obj:
    """A daemon pod for ``node``: the template, upstream's tolerations, the node-name affinity."""
    template = (ds.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    spec = dict(template.get("spec") or {})
    spec["tolerations"] = daemon_tolerations(spec)
    affinity = dict(spec.get("affinity") or {})
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    affinity["nodeAffinity"] = node_affinity
    spec["affinity"] = affinity
    labels = {**(tmeta.get("labels") or {}), HASH_LABEL: hash_, GENERATION_LABEL: str(template_generation(ds) or 1)}
    metadata: Obj = {"generateName": f"{name_of(ds)}-", "namespace": ns_of(ds), "labels": labels,
                     "ownerReferences": [owner_ref(ds)]}
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def is_updated(ds: Obj, pod: Obj, hash_: str) -> bool:
    """upstream util.IsPodUpdated: the pod has the current revision's hash, or the current
    template generation (so a collisionCount bump, which changes the hash only, restarts nothing)."""
    labels = labels_of(pod)
    generation = template_generation(ds)
    return bool(hash_) and labels.get(HASH_LABEL) == hash_ or (
        bool(generation) and labels.get(GENERATION_LABEL) == str(generation))


def _untolerated(tolerations: list[Obj], taints: list[Obj], effect: str) -> bool:
    return any(t.get("effect") == effect and not any(toleration_tolerates(tol, t) for tol in tolerations)
               for t in taints)


def node_should_run(ds: Obj, node: Obj) -> tuple[bool, bool]:
    """(shouldRun, shouldContinueRunning) for ``node`` (upstream NodeShouldRunDaemonPod)."""
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    probe = {"spec": {"nodeSelector": spec.get("nodeSelector"), "affinity": spec.get("affinity")}}
    if not required_node_affinity_matches(probe, node):
        return False, False
    taints = (node.get("spec") or {}).get("taints") or []
    tolerations = daemon_tolerations(spec)
    if _untolerated(tolerations, taints, "NoExecute"):
        return False, False
    if _untolerated(tolerations, taints, "NoSchedule"):
        return False, True
    return True, True


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    if not pod_is_ready(pod):
        return False
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return not min_ready_seconds or (since is not None and since + min_ready_seconds <= now)


def _created(pod: Obj) -> tuple:
    return (parse_time(meta(pod).get("creationTimestamp")) or 0.0, name_of(pod))


def pods_by_node(pods: list[Obj]) -> dict[str, list[Obj]]:
    """Owned pods by the node they are for (nodeName, else the node-name affinity), oldest first."""
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        node = target_node(pod)
        if node:
            out.setdefault(node, []).append(pod)
    return {n: sorted(ps, key=_created) for n, ps in out.items()}


def target_node(pod: Obj) -> str:
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                return f["values"][0]
    return ""


@dataclass
class Plan:
    create: list[str] = field(default_factory=list)       # node names
    delete: list[Obj] = field(default_factory=list)       # pods


def _scaled(value, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        raw = int(value[:-1]) * total / 100
        return math.ceil(raw) if round_up else math.floor(raw)
    return int(value or 0)


def max_surge_unavailable(ds: Obj, desired: int) -> tuple[int, int]:
    """upstream updatedDesiredNodeCounts: surge rounds down, unavailable up; never both 0."""
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge", 0), desired, False)
    unavailable = _scaled(rolling.get("maxUnavailable", 1), desired, True)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def plan(ds: Obj, nodes: list[Obj], owned: list[Obj], now: float | None = None, hash_: str | None = None) -> Plan:
    """The pods to create and delete now (upstream ``manage`` then ``rollingUpdate``); ``hash_``
    is the current revision's hash (default: the template's)."""
    out = Plan()
    if is_deleting(ds):
        return out
    now = time.time() if now is None else now
    hash_ = hash_ or template_hash(ds)
    by_node = pods_by_node([p for p in owned if not is_deleting(p)])
    for node in nodes:
        run, keep = node_should_run(ds, node)
        pods = by_node.get(name_of(node), [])
        failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
        live = [p for p in pods if p not in failed]
        out.delete += failed                      # upstream: failed daemon pods are replaced
        if run and not live:
            out.create.append(name_of(node))
        elif not keep:
            out.delete += live
        elif len(live) > 1:
            out.delete += _extra_pods(ds, live, hash_)
    if _rolling(ds):
        _rolling_update(ds, nodes, by_node, out, now, hash_)
    return out


def _extra_pods(ds: Obj, live: list[Obj], hash_: str) -> list[Obj]:
    """Keep the oldest pod; with maxSurge, the oldest old and the oldest new one (podsShouldBeOnNode)."""
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    if not _rolling(ds) or rolling.get("maxSurge") in (None, 0, "0%"):
        return live[1:]
    new = [p for p in live if is_updated(ds, p, hash_)]
    old = [p for p in live if not is_updated(ds, p, hash_)]
    return new[1:] + old[1:]


def _rolling(ds: Obj) -> bool:
    return ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def _rolling_update(ds: Obj, nodes: list[Obj], by_node: dict[str, list[Obj]], out: Plan, now: float,
                    hash_: str) -> None:
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    eligible = [n for n in nodes if node_should_run(ds, n)[0]]
    surge, max_unavailable = max_surge_unavailable(ds, len(eligible))
    unavailable, replace, candidates, new_nodes, surging = 0, [], [], [], 0
    for node in eligible:
        pods = [p for p in by_node.get(name_of(node), []) if (p.get("status") or {}).get("phase") != "Failed"]
        new = [p for p in pods if is_updated(ds, p, hash_)]
        old = [p for p in pods if not is_updated(ds, p, hash_)]
        if len(new) > 1 or len(old) > 1:
            unavailable += 1                      # manage() removes the extras first
            continue
        newp, oldp = (new or [None])[0], (old or [None])[0]
        if oldp is None:
            if newp is None or not is_available(newp, min_ready, now):
                unavailable += 1
            continue
        if surge:
            if newp is None:
                if not is_available(oldp, min_ready, now):
                    out.create.append(name_of(node))
                else:
                    new_nodes.append(name_of(node))
            else:
                surging += 1
                if is_available(newp, min_ready, now):
                    out.delete.append(oldp)
            continue
        if newp is not None:
            continue
        if not is_available(oldp, min_ready, now):
            replace.append(oldp)                  # an unavailable old pod goes at once
        else:
            candidates.append(oldp)
    if surge:
        out.create += new_nodes[:max(0, surge - surging)]
        return
    out.delete += replace + candidates[:max(0, max_unavailable - unavailable)]


def status_for(ds: Obj, nodes: list[Obj], owned: list[Obj], now: float, hash_: str | None = None,
               observe: bool = True) -> Obj:
    """DaemonSetStatus as upstream's updateDaemonSetStatus counts it (the oldest pod per node).
    ``observe`` False (creates or deletes still expected) keeps the old observedGeneration, as
    upstream: the controller has not acted on this generation yet. collisionCount is kept."""
    hash_ = hash_ or template_hash(ds)
    old = ds.get("status") or {}
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    by_node = pods_by_node([p for p in owned if not is_deleting(p)])
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        run, _ = node_should_run(ds, node)
        pods = by_node.get(name_of(node), [])
        desired += run
        if not pods:
            continue
        if not run:
            misscheduled += 1
            continue
        current += 1
        pod = pods[0]
        ready += pod_is_ready(pod)
        available += is_available(pod, min_ready, now)
        updated += is_updated(ds, pod, hash_)
    status: Obj = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
                   "desiredNumberScheduled": desired, "numberReady": ready,
                   "observedGeneration": meta(ds).get("generation", 1) if observe else old.get("observedGeneration", 0),
                   "updatedNumberScheduled": updated,
                   "numberAvailable": available, "numberUnavailable": desired - available}
    for kept in ("collisionCount", "conditions"):
        if old.get(kept):
            status[kept] = old[kept]
    return status
