"""A DaemonSet's ControllerRevisions, pure (upstream pkg/controller/daemon/update.go
constructHistory, dedupCurHistories, snapshot and cleanupHistory, Kubernetes v1.32).

Each distinct pod template is one ControllerRevision ``NAME-<hash>`` labelled
``controller-revision-hash: <hash>`` (the hash also covers ``status.collisionCount``, so a name
taken by another template is resolved by bumping it), holding the strategic-merge patch that
``kubectl rollout undo ds`` applies. The revision matching the current template is the newest:
going back to an older template renumbers its revision rather than making a new one. Two
revisions of the same template (a race) are deduplicated, keeping the highest. Old revisions
beyond ``spec.revisionHistoryLimit`` go, oldest first, except those a daemon pod still runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netemu.controllers import history
from netemu.controllers.daemonset_plan import HASH_LABEL, template_hash
from netemu.controllers.kube import Obj, labels_of, meta, name_of


def snapshot(ds: Obj, revision: int) -> Obj:
    """The revision for the current template (upstream snapshot: labels of the template plus
    the hash, the DaemonSet's annotations, so ``kubernetes.io/change-cause`` shows in history)."""
    hash_ = template_hash(ds)
    labels = {**history.template_labels(ds), HASH_LABEL: hash_}
    return history.new_revision(ds, f"{name_of(ds)}-{hash_}", labels, revision, meta(ds).get("annotations"))


@dataclass
class DaemonSetHistory:
    hash: str                                              # the current revision's hash label
    label: list[Obj] = field(default_factory=list)         # revisions given their missing hash label
    create: Obj | None = None                              # the current revision, new
    renumber: Obj | None = None                            # the current revision, now the newest
    duplicates: list[Obj] = field(default_factory=list)    # same template as the current: deleted
    relabel: list[Obj] = field(default_factory=list)       # pods of a duplicate: get ``hash``
    old: list[Obj] = field(default_factory=list)           # the other templates' revisions


def construct(ds: Obj, revisions: list[Obj], pods: list[Obj]) -> DaemonSetHistory:
    """constructHistory over ``revisions`` (this DaemonSet's, claimed) and its ``pods``."""
    label, cur, old = [], [], []
    for rev in revisions:
        if HASH_LABEL not in labels_of(rev):               # upstream labels it with its name
            rev = {**rev, "metadata": {**meta(rev), "labels": {**labels_of(rev), HASH_LABEL: name_of(rev)}}}
            label.append(rev)
        (cur if history.matches(ds, rev) else old).append(rev)
    number = history.max_revision(old) + 1
    if not cur:
        made = snapshot(ds, number)
        return DaemonSetHistory(hash=labels_of(made)[HASH_LABEL], label=label, create=made, old=old)
    keep = history.by_revision(cur)[-1]                    # dedupCurHistories: the highest revision
    hash_ = labels_of(keep)[HASH_LABEL]
    duplicates = [r for r in cur if name_of(r) != name_of(keep)]
    # upstream relabels every pod whose hash differs; only a duplicate's pods run this template,
    # so only those are relabelled (an old-template pod relabelled would never be rolled)
    dup_hashes = {labels_of(r)[HASH_LABEL] for r in duplicates}
    relabel = [p for p in pods if labels_of(p).get(HASH_LABEL) in dup_hashes and labels_of(p)[HASH_LABEL] != hash_]
    renumber = {**keep, "revision": number} if history.number(keep) < number else None
    return DaemonSetHistory(hash=hash_, label=label, renumber=renumber, duplicates=duplicates, relabel=relabel,
                            old=old)


def cleanup(ds: Obj, old: list[Obj], pods: list[Obj]) -> list[Obj]:
    """cleanupHistory: the old revisions to delete. As upstream, the limit counts every old
    revision, also those a pod still runs; those are never deleted, so when more of them run
    than the limit allows, they all stay (a StatefulSet does not count them at all)."""
    live = {h for p in pods if (h := labels_of(p).get(HASH_LABEL))}
    return history.prune(old, live, lambda r: labels_of(r).get(HASH_LABEL), len(old) - history.history_limit(ds))
