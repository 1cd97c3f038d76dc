"""batch/v1 Job: defaults, the generated selector and validation (pkg/apis/batch and
pkg/registry/batch/job/strategy.go of Kubernetes v1.32).

A Job's pods are selected by its uid unless ``manualSelector`` is true: on create the API
server labels the template (``batch.kubernetes.io/controller-uid``, ``job-name`` and their legacy
forms) and writes the matching selector, so two Jobs of the same name never share pods.
"""

from __future__ import annotations

from typing import Any

from netemu.api import field, selectors, validation as v
from netemu.api.field import Cause
from netemu.api.validate_pod import pod_spec

UID_LABEL, LEGACY_UID_LABEL = "batch.kubernetes.io/controller-uid", "controller-uid"
NAME_LABEL, LEGACY_NAME_LABEL = "batch.kubernetes.io/job-name", "job-name"


def _d(obj: dict, key: str) -> dict:
    if not isinstance(obj.get(key), dict):
        obj[key] = {}
    return obj[key]


def set_defaults(job: dict[str, Any]) -> None:
    """SetDefaults_Job: one pod to one completion unless told, backoffLimit 6."""
    spec = _d(job, "spec")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")


def generate_selector(job: dict[str, Any]) -> None:
    """generateSelector (the uid is assigned): labels the template, selects the uid."""
    spec = job.get("spec") if isinstance(job.get("spec"), dict) else None
    if spec is None or spec.get("manualSelector") is True:
        return
    md = job.get("metadata") or {}
    template = _d(spec, "template")
    labels = _d(_d(template, "metadata"), "labels")
    for key in (LEGACY_NAME_LABEL, NAME_LABEL):
        labels.setdefault(key, md.get("name", ""))
    for key in (LEGACY_UID_LABEL, UID_LABEL):
        labels.setdefault(key, md.get("uid", ""))
    selector = _d(spec, "selector")
    _d(selector, "matchLabels").setdefault(UID_LABEL, md.get("uid", ""))


def without_generated(job: dict[str, Any]) -> dict[str, Any]:
    """A copy of a created Job without what generate_selector added: upstream's field manager
    records a create before the strategy runs, so no manager owns the generated selector and
    labels (a later server-side apply that leaves them out must not remove them)."""
    spec = job.get("spec") if isinstance(job.get("spec"), dict) else None
    if spec is None or spec.get("manualSelector") is True:
        return job
    md = job.get("metadata") or {}
    generated = {LEGACY_NAME_LABEL: md.get("name"), NAME_LABEL: md.get("name"),
                 LEGACY_UID_LABEL: md.get("uid"), UID_LABEL: md.get("uid")}
    template = dict(spec.get("template") or {})
    tmeta = dict(template.get("metadata") or {})
    labels = {k: val for k, val in (tmeta.get("labels") or {}).items() if generated.get(k) != val}
    tmeta["labels"] = labels
    if not labels:
        tmeta.pop("labels")
    template["metadata"] = tmeta
    selector = dict(spec.get("selector") or {})
    match = {k: val for k, val in (selector.get("matchLabels") or {}).items() if generated.get(k) != val}
    selector["matchLabels"] = match
    if not match:
        selector.pop("matchLabels")
    out_spec = {**spec, "template": template, "selector": selector}
    if not selector:
        out_spec.pop("selector")
    return {**job, "spec": out_spec}


def validate(job: dict[str, Any]) -> list[Cause]:
    errs = v.object_meta(job.get("metadata"), namespaced=True)
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return errs + [field.required("spec")]
    for name in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
        errs += v.non_negative(f"spec.{name}", spec.get(name))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not v.is_int(deadline) or deadline <= 0):
        errs.append(field.invalid("spec.activeDeadlineSeconds", deadline, "must be greater than 0"))
    errs += v.one_of("spec.completionMode", spec.get("completionMode"), ("NonIndexed",), required=False)
    errs += _selector(job, spec)
    template = spec.get("template") if isinstance(spec.get("template"), dict) else None
    if template is None:
        return errs + [field.required("spec.template")]
    tspec = template.get("spec")
    errs += pod_spec("spec.template.spec", tspec)
    restart = tspec.get("restartPolicy") if isinstance(tspec, dict) else None
    if restart in (None, ""):
        errs.append(field.required("spec.template.spec.restartPolicy"))
    elif restart not in ("OnFailure", "Never"):
        errs.append(field.not_supported("spec.template.spec.restartPolicy", restart, ("OnFailure", "Never")))
    return errs


def _selector(job: dict, spec: dict) -> list[Cause]:
    sel = spec.get("selector")
    if sel is None:
        return [field.required("spec.selector")]
    errs = selectors.validate_label_selector("spec.selector", sel)
    tlabels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    errs += v.labels("spec.template.metadata.labels", tlabels)
    if errs:
        return errs
    if not selectors.from_label_selector(sel).matches(tlabels):
        errs.append(field.invalid("spec.template.metadata.labels", tlabels,
                                  "`selector` does not match template `labels`"))
    if spec.get("manualSelector") is not True:
        uid = (job.get("metadata") or {}).get("uid")
        if (sel.get("matchLabels") or {}).get(UID_LABEL) != uid or tlabels.get(UID_LABEL) != uid:
            errs.append(field.invalid("spec.selector", field.go_label_selector(sel), "`selector` not auto-generated"))
    return errs


def validate_update(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """ValidateJobSpecUpdate: selector, completions (unless scaled with parallelism) and the
    pod template (unless the Job is suspended) are immutable."""
    o, n = old.get("spec") or {}, new.get("spec") or {}
    errs: list[Cause] = []
    if o.get("selector") != n.get("selector"):
        errs.append(field.immutable("spec.selector", field.go_label_selector(n.get("selector"))))
    if o.get("completions") != n.get("completions"):
        errs.append(field.immutable("spec.completions", n.get("completions")))
    if o.get("template") != n.get("template") and not o.get("suspend"):
        errs.append(field.immutable("spec.template", n.get("template")))
    return errs
