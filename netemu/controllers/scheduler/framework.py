"""One scheduling cycle as a pure function: filter, score, select (upstream schedulePod).

``schedule(pod, snapshot)`` returns a ``Decision``: the chosen node with every plugin's score per
feasible node (what ``netemu explain`` shows), or, when no node fits, upstream's FitError text
"0/3 nodes are available: ... preemption: 0/3 nodes are available: ...". Preemption is not
emulated: like upstream with pods of equal priority, it finds no victims, and says so.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from netemu.controllers.kube import Obj
from netemu.controllers.scheduler.filters import FILTERS, Reject
from netemu.controllers.scheduler.scores import SCORES
from netemu.controllers.scheduler.snapshot import NodeInfo, Snapshot


@dataclass
class Decision:
    node: str | None
    # feasible node -> plugin -> weighted score; and the total
    scores: dict[str, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    # infeasible node -> why (the first failing filter, upstream stops there too)
    rejected: dict[str, Reject] = field(default_factory=dict)
    num_nodes: int = 0

    @property
    def message(self) -> str:
        """The FitError message (empty when a node was chosen)."""
        return "" if self.node else fit_error(self.num_nodes, self.rejected)


def fit_error(num_nodes: int, rejected: dict[str, Reject]) -> str:
    """framework.FitError.Error() plus DefaultPreemption's PostFilter message."""
    head = f"0/{num_nodes} nodes are available:"
    hist: Counter = Counter(r for rej in rejected.values() for r in rej.reasons)
    reasons = sorted(f"{n} {r}" for r, n in hist.items())
    msg = head + (f" {', '.join(reasons)}." if reasons else "")
    if not num_nodes:
        return msg
    post: Counter = Counter()
    for rej in rejected.values():
        post["No preemption victims found for incoming pod" if rej.resolvable
             else "Preemption is not helpful for scheduling"] += 1
    post_reasons = sorted(f"{n} {r}" for r, n in post.items())
    return f"{msg} preemption: {head} {', '.join(post_reasons)}."


def find_feasible(pod: Obj, snap: Snapshot) -> tuple[list[NodeInfo], dict[str, Reject]]:
    feasible, rejected = [], {}
    for ni in snap.nodes:
        for _, check in FILTERS:
            rej = check(pod, ni, snap)
            if rej is not None:
                rejected[ni.name] = rej
                break
        else:
            feasible.append(ni)
    return feasible, rejected


def score_nodes(pod: Obj, nodes: list[NodeInfo], snap: Snapshot) -> dict[str, dict[str, int]]:
    per_node: dict[str, dict[str, int]] = {ni.name: {} for ni in nodes}
    for plugin, weight, scorer in SCORES:
        for ni, s in zip(nodes, scorer(pod, nodes, snap)):
            per_node[ni.name][plugin] = s * weight
    return per_node


def select_host(totals: dict[str, int], rng: random.Random | None) -> str:
    """Highest total; ties broken uniformly at random like upstream's reservoir sampling, or by
    node name when no ``rng`` is given (deterministic runs and tests)."""
    best = max(totals.values())
    tied = sorted(n for n, s in totals.items() if s == best)
    return rng.choice(tied) if rng else tied[0]


def schedule(pod: Obj, snap: Snapshot, rng: random.Random | None = None) -> Decision:
    snap.memo.clear()  # a snapshot may be reused (with assumed pods added) across cycles
    feasible, rejected = find_feasible(pod, snap)
    decision = Decision(node=None, rejected=rejected, num_nodes=len(snap.nodes))
    if not feasible:
        return decision
    if len(feasible) == 1:  # upstream skips scoring with one feasible node
        decision.node = feasible[0].name
        decision.scores = {decision.node: {}}
        decision.totals = {decision.node: 0}
        return decision
    decision.scores = score_nodes(pod, feasible, snap)
    decision.totals = {n: sum(s.values()) for n, s in decision.scores.items()}
    decision.node = select_host(decision.totals, rng)
    return decision
