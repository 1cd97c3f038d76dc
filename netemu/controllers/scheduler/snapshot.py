"""The scheduler's view of the cluster for one scheduling cycle (upstream's cache Snapshot).

Every filter and score plugin reads a ``Snapshot``: the nodes and, per node, the pods bound to it
with their summed requests. Built from plain API objects, so a decision is a pure function of the
objects the scheduler's informers hold plus the pods it has assumed but not yet seen bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netemu.controllers.kube import Obj, milli, name_of, pod_is_terminal, whole

# upstream pkg/scheduler/util: requests assumed for containers that state none, for *scoring* only
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
DEFAULT_MAX_PODS = 110


@dataclass(frozen=True)
class Resources:
    milli_cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.milli_cpu + other.milli_cpu, self.memory + other.memory,
                         self.pods + other.pods)

    def __sub__(self, other: "Resources") -> "Resources":
        return Resources(self.milli_cpu - other.milli_cpu, self.memory - other.memory,
                         self.pods - other.pods)


def _container_requests(c: Obj) -> tuple[int, int]:
    res = c.get("resources") or {}
    req = dict(res.get("limits") or {})
    req.update(res.get("requests") or {})  # requests default to limits (upstream defaulting)
    cpu = milli(req["cpu"]) if "cpu" in req else 0
    mem = whole(req["memory"]) if "memory" in req else 0
    return cpu, mem


def pod_requests(pod: Obj, *, non_zero: bool = False) -> Resources:
    """What a pod asks for: sum over containers, at least the largest init container, plus
    overhead (upstream resource.PodRequests). ``non_zero`` substitutes upstream's defaults for
    containers that state no cpu/memory, as the scoring plugins do."""
    spec = pod.get("spec") or {}
    cpu = mem = 0
    for c in spec.get("containers") or []:
        c_cpu, c_mem = _container_requests(c)
        if non_zero:
            c_cpu = c_cpu or DEFAULT_MILLI_CPU
            c_mem = c_mem or DEFAULT_MEMORY
        cpu, mem = cpu + c_cpu, mem + c_mem
    for c in spec.get("initContainers") or []:
        i_cpu, i_mem = _container_requests(c)
        cpu, mem = max(cpu, i_cpu), max(mem, i_mem)
    overhead = spec.get("overhead") or {}
    if "cpu" in overhead:
        cpu += milli(overhead["cpu"])
    if "memory" in overhead:
        mem += whole(overhead["memory"])
    return Resources(cpu, mem, 1)


def node_allocatable(node: Obj) -> Resources:
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    cpu = milli(alloc["cpu"]) if "cpu" in alloc else 0
    mem = whole(alloc["memory"]) if "memory" in alloc else 0
    pods = whole(alloc["pods"]) if "pods" in alloc else DEFAULT_MAX_PODS
    return Resources(cpu, mem, pods)


def _pod_key(pod: Obj) -> str:
    m = pod.get("metadata") or {}
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


@dataclass
class NodeInfo:
    node: Obj
    pods_by_key: dict[str, Obj] = field(default_factory=dict)
    requested: Resources = Resources()
    non_zero_requested: Resources = Resources()
    _allocatable: Resources | None = None

    @property
    def name(self) -> str:
        return name_of(self.node)

    @property
    def pods(self) -> list[Obj]:
        return list(self.pods_by_key.values())

    @property
    def allocatable(self) -> Resources:
        if self._allocatable is None:
            self._allocatable = node_allocatable(self.node)
        return self._allocatable

    def add_pod(self, pod: Obj) -> None:
        key = _pod_key(pod)
        if key in self.pods_by_key:
            self.remove_pod(key)
        self.pods_by_key[key] = pod
        self.requested = self.requested + cached_requests(pod, False)
        self.non_zero_requested = self.non_zero_requested + cached_requests(pod, True)

    def remove_pod(self, key: str) -> None:
        pod = self.pods_by_key.pop(key, None)
        if pod is not None:
            self.requested = self.requested - cached_requests(pod, False)
            self.non_zero_requested = self.non_zero_requested - cached_requests(pod, True)


_REQUESTS: dict[tuple[str, str, bool], Resources] = {}


def cached_requests(pod: Obj, non_zero: bool) -> Resources:
    """pod_requests memoized by (uid, resourceVersion): bound pods are counted again on every
    snapshot change, and re-parsing their quantities each time would dominate a cycle."""
    m = pod.get("metadata") or {}
    if not m.get("uid"):
        return pod_requests(pod, non_zero=non_zero)
    key = (m["uid"], m.get("resourceVersion", ""), non_zero)
    found = _REQUESTS.get(key)
    if found is None:
        if len(_REQUESTS) > 100_000:
            _REQUESTS.clear()
        found = _REQUESTS[key] = pod_requests(pod, non_zero=non_zero)
    return found


def has_affinity(pod: Obj) -> bool:
    aff = (pod.get("spec") or {}).get("affinity") or {}
    return bool(aff.get("podAffinity") or aff.get("podAntiAffinity"))


@dataclass
class Snapshot:
    """Nodes (name order, so plugin runs are deterministic) with their bound, unfinished pods.

    Kept up to date incrementally by the scheduler loop (``add_pod`` / ``remove_pod`` as pod
    events arrive) like upstream's scheduler cache, so a cycle does not rebuild the cluster."""

    nodes: list[NodeInfo]
    memo: dict = field(default_factory=dict)  # per-cycle caches of the plugins
    by_name: dict[str, NodeInfo] = field(default_factory=dict)
    placement: dict[str, str] = field(default_factory=dict)          # pod key -> node
    affinity: dict[str, tuple[NodeInfo, Obj]] = field(default_factory=dict)

    @classmethod
    def build(cls, nodes: list[Obj], pods: list[Obj]) -> "Snapshot":
        infos = [NodeInfo(n) for n in sorted(nodes, key=name_of)]
        snap = cls(infos, by_name={ni.name: ni for ni in infos})
        for pod in pods:
            snap.add_pod(pod)
        return snap

    def add_pod(self, pod: Obj) -> None:
        """Count a pod where it is bound (replacing what was known of it); unbound, finished or
        on an unknown node it is simply not counted."""
        key = _pod_key(pod)
        self.remove_pod(key)
        ni = self.by_name.get((pod.get("spec") or {}).get("nodeName") or "")
        if ni is None or pod_is_terminal(pod):
            return
        ni.add_pod(pod)
        self.placement[key] = ni.name
        if has_affinity(pod):
            self.affinity[key] = (ni, pod)

    def remove_pod(self, key: str) -> None:
        node = self.placement.pop(key, None)
        if node is not None:
            self.by_name[node].remove_pod(key)
        self.affinity.pop(key, None)

    def pods_with_affinity(self) -> list[tuple[NodeInfo, Obj]]:
        """Bound pods that carry pod (anti-)affinity: the only ones the symmetric checks read."""
        return list(self.affinity.values())

    def requests(self, pod: Obj, non_zero: bool = False) -> Resources:
        """The requests of the pod being scheduled, computed once per cycle."""
        key = ("requests", id(pod), non_zero)
        if key not in self.memo:
            self.memo[key] = pod_requests(pod, non_zero=non_zero)
        return self.memo[key]

    def all_pods(self) -> list[tuple[NodeInfo, Obj]]:
        return [(ni, p) for ni in self.nodes for p in ni.pods_by_key.values()]
