"""A DaemonSet's template generation, as upstream's registry keeps it (pkg/registry/apps/daemonset
strategy.go and the apps/v1 conversion, Kubernetes v1.32).

apps/v1 has no ``spec.templateGeneration``: the server keeps it in the annotation
``deprecated.daemonset.template.generation``, 1 on create (or the value given), +1 each time the
pod template changes, never what a client writes on update. The DaemonSet controller labels its
pods ``pod-template-generation`` with it, and a pod carrying the current one counts as updated
even when its revision hash differs (a hash collision bump restarts nothing).
"""

from __future__ import annotations

from netemu.api import errors
from netemu.api.meta import Obj

ANNOTATION = "deprecated.daemonset.template.generation"


def template_generation(ds: Obj) -> int:
    """The stored value (a malformed one is a 400, as upstream's conversion fails)."""
    value = ((ds.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.BadRequest(f'invalid value for annotation {ANNOTATION}: "{value}"') from None


def _store(ds: Obj, generation: int) -> None:
    md = ds.setdefault("metadata", {})
    md["annotations"] = {**(md.get("annotations") or {}), ANNOTATION: str(generation)}


def on_create(ds: Obj) -> None:
    _store(ds, max(template_generation(ds), 1))


def on_update(ds: Obj, old: Obj) -> None:
    """Spec updates: the old value, +1 when the template changed. Status updates: the old value."""
    generation = template_generation(old) or 1
    if (ds.get("spec") or {}).get("template") != (old.get("spec") or {}).get("template"):
        generation += 1
    _store(ds, generation)
