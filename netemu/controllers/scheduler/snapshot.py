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


@dataclass
class NodeInfo:
    node: Obj
    pods: list[Obj] = field(default_factory=list)
    requested: Resources = Resources()
    non_zero_requested: Resources = Resources()

    @property
    def name(self) -> str:
        return name_of(self.node)

    @property
    def allocatable(self) -> Resources:
        return node_allocatable(self.node)

    def add_pod(self, pod: Obj) -> None:
        self.pods.append(pod)
        self.requested = self.requested + cached_requests(pod, False)
        self.non_zero_requested = self.non_zero_requested + cached_requests(pod, True)


_REQUESTS: dict[tuple[str, str, bool], Resources] = {}


def cached_requests(pod: Obj, non_zero: bool) -> Resources:
    """pod_requests memoized by (uid, resourceVersion): a pod spec's requests never change, and
    snapshots are rebuilt often (1000 bound pods re-parsed per decision would dominate)."""
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
    nodes: list[NodeInfo]
    memo: dict = field(default_factory=dict)  # per-cycle caches of the plugins

    def pods_with_affinity(self) -> list[tuple[NodeInfo, Obj]]:
        """Bound pods that carry pod (anti-)affinity: the only ones the symmetric checks read."""
        if "affinity" not in self.memo:
            self.memo["affinity"] = [(ni, p) for ni, p in self.all_pods() if has_affinity(p)]
        return self.memo["affinity"]

    @classmethod
    def build(cls, nodes: list[Obj], pods: list[Obj]) -> "Snapshot":
        """Nodes in name order (deterministic plugin runs), each with its bound, unfinished pods."""
        infos = {name_of(n): NodeInfo(n) for n in sorted(nodes, key=name_of)}
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name in infos and not pod_is_terminal(pod):
                infos[node_name].add_pod(pod)
        return cls(list(infos.values()))

    def all_pods(self) -> list[tuple[NodeInfo, Obj]]:
        return [(ni, p) for ni in self.nodes for p in ni.pods]
