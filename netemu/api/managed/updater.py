"""Who owns which fields after an update or an apply: structured-merge-diff's
``merge.Updater`` (merge/update.go) for objects of one version.

``update``: a write (create, PUT, JSON/merge/strategic patch) takes every field it added or
changed, from whoever had it; fields it removed leave every manager. It never conflicts.

``apply``: the applied configuration is merged into the live object; the applier owns exactly
the fields of its configuration; a field it applied last time and no longer applies is removed
from the object unless someone else still owns it (``prune``); changing a field another manager
owns is a conflict unless forced, and forcing takes the field away from that manager.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netemu.api.managed import typed
from netemu.api.managed.fieldpath import FieldSet, Path
from netemu.api.managed.schema import Atom


@dataclass(frozen=True, order=True)
class ManagerKey:
    """What identifies a managedFields entry (upstream ``BuildManagerIdentifier``; one version
    per kind here, so the apiVersion is not part of it)."""

    manager: str
    operation: str                   # "Apply" or "Update"
    subresource: str = ""

    @property
    def applied(self) -> bool:
        return self.operation == "Apply"


Managers = dict[ManagerKey, FieldSet]


class Conflicts(Exception):
    """An apply would change fields other managers own: (manager, path) pairs."""

    def __init__(self, conflicts: list[tuple[ManagerKey, Path]]):
        super().__init__(f"{len(conflicts)} conflicts")
        self.conflicts = conflicts


def _update(old: Any, new: Any, atom: Atom, managers: Managers, workflow: ManagerKey, force: bool,
            ignored: FieldSet) -> tuple[Managers, typed.Comparison]:
    comparison = typed.compare(old, new, atom).exclude(ignored)
    changed = comparison.changed()
    conflicts: dict[ManagerKey, FieldSet] = {}
    for key, owned in managers.items():
        if key == workflow:
            continue
        clash = owned.intersection(changed)
        if not clash.empty():
            conflicts[key] = clash
    if conflicts and not force:
        raise Conflicts([(key, p) for key in sorted(conflicts) for p in conflicts[key].paths()])
    out: Managers = {}
    for key, owned in managers.items():
        if key != workflow:
            if key in conflicts:
                owned = owned.difference(conflicts[key])
            owned = owned.difference(comparison.removed)
        if not owned.empty():
            out[key] = owned
    return out, comparison


def update(live: Any, new: Any, atom: Atom, managers: Managers, manager: ManagerKey,
           ignored: FieldSet) -> tuple[Managers, bool]:
    """Managers after a non-apply write of ``new`` over ``live``; also whether ``manager``
    took or lost anything (upstream then stamps its entry with the time)."""
    out, comparison = _update(live, new, atom, dict(managers), manager, True, ignored)
    before = out.get(manager, FieldSet())
    owned = before.difference(comparison.removed).union(comparison.modified).union(comparison.added)
    owned = owned.recursive_difference(ignored)
    if owned.empty():
        out.pop(manager, None)
    else:
        out[manager] = owned
    touched = not (comparison.added.empty() and comparison.modified.empty() and comparison.removed.empty())
    return out, touched


def apply(live: Any, config: Any, atom: Atom, managers: Managers, manager: ManagerKey, force: bool,
          ignored: FieldSet) -> tuple[Any, Managers]:
    """(the object after applying ``config``, the managers); raises ``Conflicts`` and
    ``typed.TypedError``."""
    merged = typed.merge(live, config, atom)
    last = managers.get(manager)
    managers = dict(managers)
    managers[manager] = typed.to_field_set(config, atom).recursive_difference(ignored)
    merged = _prune(merged, managers, manager, last, atom)
    out, _ = _update(live, merged, atom, managers, manager, force, ignored)
    return merged, out


def _members(s: FieldSet, atom: Atom) -> FieldSet:
    return typed.ensure_named_fields_are_members(s, atom)


def _prune(merged: Any, managers: Managers, applier: ManagerKey, last: FieldSet | None, atom: Atom) -> Any:
    """Remove what ``applier`` applied last time and not now, unless another manager (or the
    new configuration) owns it (upstream prune, addBackOwnedItems, addBackDanglingItems)."""
    if last is None or last.empty():
        return merged
    pruned = typed.remove_items(merged, _members(last, atom), atom) or {}
    owned = FieldSet()
    for s in managers.values():
        owned = owned.union(s)
    merged_set = _members(typed.to_field_set(merged, atom), atom)
    pruned_set = _members(typed.to_field_set(pruned, atom), atom)
    pruned = typed.remove_items(merged, merged_set.difference(pruned_set.union(_members(owned, atom))), atom) or {}
    pruned_set = _members(typed.to_field_set(pruned, atom), atom)
    dangling = merged_set.difference(pruned_set).intersection(_members(last, atom))
    return typed.remove_items(merged, dangling, atom) or {}
