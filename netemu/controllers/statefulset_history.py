"""A StatefulSet's ControllerRevisions, pure (upstream getStatefulSetRevisions / truncateHistory,
v1.32; the shared parts are netemu.controllers.history).

Each distinct pod template is one ControllerRevision named ``NAME-<hash>`` (its
controller-revision-hash label is that whole name) whose data is the strategic-merge patch
``kubectl rollout undo sts`` applies, and whose ``revision`` numbers the history. Going back to an
older template reuses its revision object with the next number, as upstream does. History beyond
``revisionHistoryLimit`` is deleted, oldest first, sparing revisions a live pod still uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netemu.controllers import history
from netemu.controllers.history import revision_data, template_of  # noqa: F401 (re-exported)
from netemu.controllers.kube import Obj, name_of
from netemu.controllers.statefulset_plan import REVISION_LABEL, revision_name, revision_of


def new_revision(sts: Obj, number: int) -> Obj:
    name = revision_name(sts)
    return history.new_revision(sts, name, {**history.template_labels(sts), REVISION_LABEL: name}, number)


@dataclass
class HistoryPlan:
    create: Obj | None = None             # the update revision, new
    renumber: Obj | None = None           # an existing revision that becomes the newest again
    delete: list[Obj] = field(default_factory=list)


def plan_history(sts: Obj, revisions: list[Obj], pods: list[Obj], current: str) -> HistoryPlan:
    """What makes ``revisions`` (this set's) hold the update revision as the newest and no more
    old ones than ``revisionHistoryLimit`` (live ones are not counted, as upstream)."""
    out = HistoryPlan()
    update = revision_name(sts)
    newest = history.max_revision(revisions)
    same = next((r for r in revisions if name_of(r) == update), None)
    if same is None:
        out.create = new_revision(sts, newest + 1)
    elif history.number(same) < newest:
        out.renumber = {**same, "revision": newest + 1}
    live = {revision_of(p) for p in pods} | {current, update}
    old = [r for r in revisions if name_of(r) not in live]
    out.delete = history.prune(old, live, name_of, len(old) - history.history_limit(sts))
    return out
