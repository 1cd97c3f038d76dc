"""The field manager of each write: server-side apply and the managedFields of every write,
as upstream's FieldManager chain (k8s.io/apimachinery/pkg/util/managedfields/internal) records
them, over the pure ownership logic of ``netemu.api.managed``.

One ``FieldManager`` serves one request. Who the manager is comes from ``?fieldManager=``
(required for apply; otherwise the User-Agent up to its first ``/``, as upstream defaults it).
What it owns is computed from the stored object and the object about to be stored, after
defaulting and validation (``record``, for create/update/patch: operation ``Update``), or from
the applied configuration before defaulting (``apply``: operation ``Apply``, conflicts a 409
with one cause per conflicting field, as kubectl expects them).
"""

from __future__ import annotations

import json
import logging
import unicodedata
from typing import Any, Callable

from netemu.api import errors, meta, validate_job
from netemu.api.kinds import ResourceType
from netemu.api.managed import crd_schema, entries, typed, updater
from netemu.api.managed import schema as managed_schema
from netemu.api.managed.fieldpath import FieldSet, path, path_str
from netemu.api.managed.updater import ManagerKey
from netemu.api.meta import Obj

log = logging.getLogger(__name__)
MAX_MANAGER_LENGTH = 128
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
REPLICAS = path("spec", "replicas")


def _patch_options_invalid(causes: list[dict[str, str]]) -> errors.Invalid:
    text = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    return errors.Invalid(f'PatchOptions.meta.k8s.io "" is invalid: {text}',
                          details={"group": "meta.k8s.io", "kind": "PatchOptions", "causes": causes})


def manager_name(query_manager: str | None, user_agent: str | None, *, apply: bool) -> str:
    """The manager of a write; raises Invalid (422) as upstream's ValidateFieldManager does."""
    name = query_manager or ""
    if not name:
        if apply:
            raise _patch_options_invalid([errors.field_cause("fieldManager", "Required value: is required for "
                                                             "apply patch", "FieldValueRequired")])
        name = (user_agent or "").split("/", 1)[0][:MAX_MANAGER_LENGTH]
    causes = []
    if len(name.encode()) > MAX_MANAGER_LENGTH:
        causes.append(errors.field_cause("fieldManager", f"Too long: may not be more than {MAX_MANAGER_LENGTH} "
                                         "bytes", "FieldValueTooLong"))
    for i, ch in enumerate(name):
        if not ch.isprintable() and unicodedata.category(ch) != "Zs":
            causes.append(errors.field_cause("fieldManager", f"Invalid value: {name!r}: invalid character "
                                             f"U+{ord(ch):04X} (at position {i})"))
            break
    if causes:
        raise _patch_options_invalid(causes)
    return name


def _ignored(rt: ResourceType, subresource: str | None) -> FieldSet:
    """Upstream's reset fields: what a write of this endpoint does not own."""
    if subresource == "status":
        return FieldSet.of(path("spec"))
    if "status" in rt.subresources:
        return FieldSet.of(path("status"))
    return FieldSet()


def _comparable(obj: Obj | None) -> Obj:
    """The object without its managedFields (not part of anyone's fields)."""
    if not obj:
        return {}
    md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return {**obj, "metadata": {k: v for k, v in md.items() if k != "managedFields"}}


def _empty_object(kind: str) -> Obj:
    """What a create is compared with: the Go zero value of the kind (its struct fields present
    and empty, slices null), so a created object's structs are not "added" (upstream's
    ``f:spec`` and ``f:strategy`` have no ``.``, ``f:containers`` neither)."""
    atom = managed_schema.for_kind(kind)
    out: Obj = {"metadata": {}}
    for name in ("spec", "status"):
        sub = atom.field(name)
        if sub is None or sub.kind != "struct":
            continue
        out[name] = {}
        if sub.field("template") is not None:
            out[name]["template"] = {"metadata": {}, "spec": {"containers": None}}
        if sub.field("strategy") is not None:
            out[name]["strategy"] = {}
        if sub.field("containers") is not None:
            out[name]["containers"] = None
        if sub.field("loadBalancer") is not None:
            out[name]["loadBalancer"] = {}
    return out


def conflict_error(conflicts: list[tuple[ManagerKey, Any]], api_version: str) -> errors.Conflict:
    """409 with upstream's message and one FieldManagerConflict cause per field."""
    def who(key: ManagerKey) -> str:
        text = f'"{key.manager}"'
        if key.subresource:
            text += f' with subresource "{key.subresource}"'
        return text if key.applied else f"{text} using {api_version}"
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who(k)}", "field": path_str(p)}
              for k, p in conflicts]
    if len(conflicts) == 1:
        key, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {who(key)}: {path_str(p)}"
    else:
        lines = []
        for key in sorted({k for k, _ in conflicts}, key=lambda k: k.manager):
            lines.append(f"conflicts with {who(key)}:")
            lines.extend(f"- {path_str(p)}" for k, p in conflicts if k == key)
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return errors.Conflict(message, details={"causes": causes})


class FieldManager:
    """The managedFields work of one write by ``manager`` on ``rt`` (``subresource`` or the
    main resource); ``now`` gives the RFC 3339 time stamped on changed entries."""

    def __init__(self, rt: ResourceType, manager: str, *, subresource: str | None = None,
                 now: Callable[[], str] = lambda: meta.now_rfc3339()):
        self.rt, self.now = rt, now
        self.subresource = subresource if subresource in ("status", "scale", "ephemeralcontainers") else None
        self.atom = (crd_schema.for_custom(rt.custom.schema) if rt.custom is not None
                     else managed_schema.for_kind(rt.kind))
        self.ignored = _ignored(rt, self.subresource)
        self.manager = manager
        self._applied: tuple[Obj, entries.Managed] | None = None

    # -- Update operations ---------------------------------------------------------------------

    def record(self, old: Obj | None, new: Obj, prepared: Obj) -> None:
        """Set ``prepared``'s managedFields for a create/update/patch of ``old`` (None: create)
        into ``prepared``; ``new`` is the object as the client sent it (its managedFields, when
        given, replace the stored ones, as upstream's decodeLiveOrNew)."""
        if self._applied is not None:
            return self._finish_apply(old, prepared)
        managed = self._starting_point(old, new)
        key = ManagerKey(self.manager, "Update", self.subresource or "")
        before = _comparable(old) if old is not None else (
            {"metadata": {}} if self.rt.custom is not None else _empty_object(self.rt.kind))
        after = validate_job.without_generated(prepared) if old is None and self.rt.kind == "Job" else prepared
        try:
            fields, touched = updater.update(before, _comparable(after), self.atom, managed.fields, key,
                                             self.ignored)
        except typed.TypedError as exc:        # upstream UpdateNoErrors: never fail a write for this
            log.warning("managedFields of %s not updated: %s", self.rt.kind, exc)
            fields, touched = managed.fields, False
        self._strip(fields, key)
        if touched and key in fields:
            managed.times[key] = self.now()
        managed.fields = fields
        self._store(prepared, managed)

    def _starting_point(self, old: Obj | None, new: Obj) -> entries.Managed:
        sent = (new.get("metadata") or {}).get("managedFields") if isinstance(new.get("metadata"), dict) else None
        stored = ((old or {}).get("metadata") or {}).get("managedFields")
        if self.subresource is None and entries.is_reset(sent):
            return entries.Managed()
        if self.subresource is None and sent:
            try:
                managed = entries.decode(sent)
                if managed.fields:
                    return managed
            except entries.BadManagedFields as exc:
                log.info("ignoring managedFields sent with a %s write: %s", self.rt.kind, exc)
        try:
            return entries.decode(stored)
        except entries.BadManagedFields:
            return entries.Managed()

    def _strip(self, fields: updater.Managers, key: ManagerKey) -> None:
        if key in fields:
            fields[key] = fields[key].difference(entries.STRIPPED)
            if fields[key].empty():
                del fields[key]

    def _store(self, prepared: Obj, managed: entries.Managed) -> None:
        md = meta.metadata(prepared)
        encoded = entries.encode(managed, self.rt.api_version)
        if encoded:
            md["managedFields"] = encoded
        else:
            md.pop("managedFields", None)

    # -- Apply ---------------------------------------------------------------------------------

    def apply(self, live: Obj | None, config: Obj, force: bool) -> Obj:
        """The object after applying ``config`` over ``live`` (None: the object is created);
        raises Conflict (409) or BadRequest (400). ``record`` then stores the owners."""
        md = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
        if md.get("managedFields") is not None:
            raise errors.BadRequest("metadata.managedFields must be nil")
        try:
            managed = entries.decode(((live or {}).get("metadata") or {}).get("managedFields"))
        except entries.BadManagedFields:
            managed = entries.Managed()
        key = ManagerKey(self.manager, "Apply", self.subresource or "")
        base = _comparable(live) if live is not None else {}
        try:
            try:
                merged, fields = updater.apply(base, config, self.atom, managed.fields, key, force, self.ignored)
            except updater.Conflicts as exc:
                left = self._not_allowed_by_last_applied(live, exc.conflicts)
                if left:
                    raise conflict_error(left, self.rt.api_version) from None
                merged, fields = updater.apply(base, config, self.atom, managed.fields, key, True, self.ignored)
        except typed.TypedError as exc:
            raise errors.BadRequest(f"failed to create typed patch object ({self.rt.api_version}, "
                                    f"Kind={self.rt.kind}): {exc}") from None
        self._strip(fields, key)
        managed.fields = fields
        self._applied = (merged, managed)
        return merged

    def apply_scale(self, live: Obj, view: Obj, config: Obj, force: bool) -> Obj:
        """Server-side apply of an autoscaling/v1 Scale to the scale subresource of ``live``,
        whose Scale ``view`` it is; the Scale after the apply. As upstream's ScaleHandler: the
        parent's owners of ``.spec.replicas`` are the Scale's owners of its ``.spec.replicas``
        (a conflict names them), and afterwards the applier (subresource scale) owns the
        parent's ``.spec.replicas``, taken from whoever a forced apply took it from."""
        try:
            managed = entries.decode(meta.metadata(live).get("managedFields"))
        except entries.BadManagedFields:
            managed = entries.Managed()
        owners = {k: FieldSet.of(REPLICAS) for k, owned in managed.fields.items() if owned.has(REPLICAS)}
        key = ManagerKey(self.manager, "Apply", "scale")
        try:
            merged, fields = updater.apply(_comparable(view), config, managed_schema.for_kind("Scale"), owners, key,
                                           force, FieldSet.of(path("status")))
        except updater.Conflicts as exc:
            raise conflict_error(exc.conflicts, self.rt.api_version) from None
        except typed.TypedError as exc:
            raise errors.BadRequest(f"failed to create typed patch object (autoscaling/v1, Kind=Scale): {exc}") from None
        for owner in owners:
            if owner != key and not fields.get(owner, FieldSet()).has(REPLICAS):
                managed.fields[owner] = managed.fields[owner].difference(FieldSet.of(REPLICAS))
                if managed.fields[owner].empty():
                    del managed.fields[owner]
                    managed.times.pop(owner, None)
        if fields.get(key, FieldSet()).has(REPLICAS):
            managed.fields[key] = FieldSet.of(REPLICAS)
        else:
            managed.fields.pop(key, None)
        self._applied = (merged, managed)
        return merged

    def _not_allowed_by_last_applied(self, live: Obj | None, conflicts: list) -> list:
        """Upstream's lastAppliedManager: kubectl's first server-side apply of an object it
        applied client-side may take the fields of its last-applied-configuration that nobody
        changed since; any other conflict stands."""
        annotation = meta.annotations_of(live or {}).get(LAST_APPLIED) if self.manager == "kubectl" else None
        if not annotation:
            return conflicts
        try:
            last = json.loads(annotation)
            allowed = typed.to_field_set(last, self.atom).difference(
                typed.compare(last, _comparable(live), self.atom).modified)
        except (ValueError, typed.TypedError):
            return conflicts
        return [(k, p) for k, p in conflicts if not allowed.has(p)]

    def _finish_apply(self, old: Obj | None, prepared: Obj) -> None:
        _, managed = self._applied
        key = ManagerKey(self.manager, "Apply", self.subresource or "")
        if old is None or _comparable(old) != _comparable(prepared) or key not in managed.times:
            managed.times[key] = self.now()
        self._store(prepared, managed)
