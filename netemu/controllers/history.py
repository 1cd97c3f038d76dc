"""ControllerRevisions, pure: what the StatefulSet and DaemonSet controllers share (upstream
pkg/controller/history/controller_history.go and the sets' getPatch/Match, Kubernetes v1.32).

A revision's ``data`` is the strategic-merge patch ``{"spec": {"template": {..., "$patch":
"replace"}}}``: exactly what ``kubectl rollout undo`` sends to bring the template back, and what
``kubectl rollout history --revision=N`` applies to a copy of the set to show it. Two revisions
hold the same template when their data are equal (upstream compares the patch bytes).
"""

from __future__ import annotations

import json

from netemu.controllers.kube import Obj, labels_of, name_of, ns_of, owner_ref


def typed_template(template: Obj) -> Obj:
    """A pod template as Go's typed PodTemplateSpec writes it: ``metadata.creationTimestamp:
    null`` and each container's ``resources: {}`` are always there, keys sorted. Hashes and
    revision data are taken over this form, so a template that went through ``kubectl rollout
    undo`` (which sends these fields) is the same template as before."""
    template = json.loads(json.dumps(template or {}))
    template["metadata"] = {"creationTimestamp": None, **(template.get("metadata") or {})}
    spec = template.setdefault("spec", {})
    for key in ("initContainers", "containers", "ephemeralContainers"):
        if isinstance(spec.get(key), list):
            spec[key] = [{"resources": {}, **c} for c in spec[key]]
    return _sorted(template)


def revision_data(owner: Obj) -> Obj:
    """upstream getPatch: the owner's pod template, marked to replace the whole template, as Go
    writes it. kubectl compares these bytes with the patch it makes from the live set to tell
    "skipped rollback (current template already matches revision N)"."""
    template = typed_template((owner.get("spec") or {}).get("template") or {})
    return {"spec": {"template": {"$patch": "replace", **template}}}


def _sorted(value):
    """Keys in Go's order for a map (sorted), all the way down."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def matches(owner: Obj, revision: Obj) -> bool:
    """upstream Match: the revision holds the owner's current template."""
    return revision.get("data") == revision_data(owner)


def template_of(revision: Obj) -> Obj:
    """The template a revision holds, without the typed form's empty fields (typed_template)."""
    template = json.loads(json.dumps(((revision.get("data") or {}).get("spec") or {}).get("template") or {}))
    template.pop("$patch", None)
    md = template.get("metadata")
    if isinstance(md, dict) and "creationTimestamp" in md and md["creationTimestamp"] is None:
        del md["creationTimestamp"]
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in (template.get("spec") or {}).get(key) or []:
            if isinstance(container, dict) and container.get("resources") == {}:
                del container["resources"]
    return template


def number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


def max_revision(revisions: list[Obj]) -> int:
    return max((number(r) for r in revisions), default=0)


def new_revision(owner: Obj, name: str, labels: dict[str, str], revision: int,
                 annotations: dict[str, str] | None = None) -> Obj:
    """A ControllerRevision of ``owner`` (its controller), holding the owner's template."""
    metadata: Obj = {"name": name, "namespace": ns_of(owner), "labels": labels, "ownerReferences": [owner_ref(owner)]}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": metadata,
            "data": revision_data(owner), "revision": revision}


def template_labels(owner: Obj) -> dict[str, str]:
    return dict(labels_of((owner.get("spec") or {}).get("template") or {}))


def by_revision(revisions: list[Obj]) -> list[Obj]:
    """Oldest first (upstream historiesByRevision; the name breaks ties so the order is stable)."""
    return sorted(revisions, key=lambda r: (number(r), name_of(r)))


def prune(old: list[Obj], live: set[str], key, to_kill: int) -> list[Obj]:
    """The oldest ``to_kill`` revisions of ``old`` whose ``key(revision)`` is not in ``live``
    (a revision a pod still runs, or the current/update one, is never deleted)."""
    out: list[Obj] = []
    for revision in by_revision(old):
        if len(out) >= to_kill:
            break
        if key(revision) not in live:
            out.append(revision)
    return out


def history_limit(owner: Obj) -> int:
    return int((owner.get("spec") or {}).get("revisionHistoryLimit", 10))
