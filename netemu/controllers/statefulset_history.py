"""A StatefulSet's ControllerRevisions, pure (upstream pkg/controller/history + the set's
getStatefulSetRevisions / truncateHistory, v1.32).

Each distinct pod template is one ControllerRevision named ``NAME-<hash>`` whose data is the
strategic-merge patch ``{"spec": {"template": {..., "$patch": "replace"}}}`` (what ``kubectl
rollout undo sts`` applies) and whose ``revision`` numbers the history. Going back to an older
template reuses its revision object with the next number, as upstream does. History beyond
``revisionHistoryLimit`` is deleted, oldest first, sparing revisions a live pod still uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from netemu.controllers.kube import Obj, labels_of, meta, name_of, ns_of, owner_ref
from netemu.controllers.statefulset_plan import REVISION_LABEL, revision_name, revision_of


def revision_data(sts: Obj) -> Obj:
    template = json.loads(json.dumps((sts.get("spec") or {}).get("template") or {}))
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> Obj:
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def new_revision(sts: Obj, number: int) -> Obj:
    name = revision_name(sts)
    labels = {**labels_of((sts.get("spec") or {}).get("template") or {}), REVISION_LABEL: name}
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": name, "namespace": ns_of(sts), "labels": labels, "ownerReferences": [owner_ref(sts)]},
            "data": revision_data(sts), "revision": number}


@dataclass
class HistoryPlan:
    create: Obj | None = None             # the update revision, new
    renumber: Obj | None = None           # an existing revision that becomes the newest again
    delete: list[Obj] = field(default_factory=list)


def plan_history(sts: Obj, revisions: list[Obj], pods: list[Obj], current: str) -> HistoryPlan:
    """What makes ``revisions`` (this set's) hold the update revision as the newest and no more
    old ones than ``revisionHistoryLimit``."""
    out = HistoryPlan()
    update = revision_name(sts)
    newest = max((int(r.get("revision") or 0) for r in revisions), default=0)
    same = next((r for r in revisions if name_of(r) == update), None)
    if same is None:
        out.create = new_revision(sts, newest + 1)
    elif int(same.get("revision") or 0) < newest:
        out.renumber = {**same, "revision": newest + 1}
    limit = int((sts.get("spec") or {}).get("revisionHistoryLimit", 10))
    live = {revision_of(p) for p in pods} | {current, update}
    old = sorted((r for r in revisions if name_of(r) not in live), key=lambda r: int(r.get("revision") or 0))
    out.delete = old[:max(0, len(old) - limit)]
    return out


def owned(sts: Obj, revisions: list[Obj]) -> list[Obj]:
    uid = meta(sts).get("uid")
    return [r for r in revisions if any(ref.get("uid") == uid and ref.get("controller")
                                        for ref in meta(r).get("ownerReferences") or [])]
