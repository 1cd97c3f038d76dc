"""CustomResourceDefinition defaults and validation (apiextensions.k8s.io/v1), pure.

After upstream's apiextensions-apiserver/pkg/apis/apiextensions/v1/defaults.go and
validation/validation.go (ValidateCustomResourceDefinition): the name is ``<plural>.<group>``,
the group a DNS subdomain with a dot, names lowercase DNS labels, scope Namespaced or Cluster,
versions unique with exactly one storage version and at least one served, a structural
``openAPIV3Schema`` for every version (v1 requires one: every node has a type, arrays have
items, the root is an object), subresource paths where upstream allows them.
"""

from __future__ import annotations

from typing import Any

from netemu.api import field
from netemu.api import schema as custom_schema
from netemu.api import validation as v
from netemu.api.field import Cause
from netemu.api.meta import Obj

SCOPES = ("Cluster", "Namespaced")
_TYPES = ("array", "boolean", "integer", "number", "object", "string")


def set_defaults(crd: Obj) -> None:
    """SetDefaults_CustomResourceDefinition: names.singular/listKind, conversion None,
    printer column priority."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and isinstance(names.get("kind"), str) and names["kind"]:
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    if not isinstance(spec.get("conversion"), dict):
        spec["conversion"] = {"strategy": "None"}


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _storage(crd: Obj) -> list[str]:
    versions = _dict(crd.get("spec")).get("versions")
    return [ver["name"] for ver in versions if isinstance(ver, dict) and ver.get("storage") and ver.get("name")] \
        if isinstance(versions, list) else []


def _condition(kind: str, reason: str, message: str, now: str) -> Obj:
    return {"type": kind, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message}


def initial_status(crd: Obj, now: str) -> None:
    """What upstream's naming and establishing controllers write right after a create: the
    names accepted (no other CRD can hold them: the object name is plural.group), Established."""
    names = _dict(_dict(crd.get("spec")).get("names"))
    crd["status"] = {
        "acceptedNames": dict(names),
        "conditions": [_condition("NamesAccepted", "NoConflicts", "no conflicts found", now),
                       _condition("Established", "InitialNamesAccepted", "the initial names have been accepted",
                                  now)],
        "storedVersions": _storage(crd)}


def update_status(crd: Obj, old: Obj) -> None:
    """After a spec update: the new names are accepted, the new storage version is recorded."""
    status = crd.get("status") if isinstance(crd.get("status"), dict) else {}
    status["acceptedNames"] = dict(_dict(_dict(crd.get("spec")).get("names")))
    stored = list(status.get("storedVersions") or [])
    stored += [s for s in _storage(crd) if s not in stored]
    status["storedVersions"] = stored
    crd["status"] = status


def validate(crd: Obj) -> list[Cause]:
    errs = v.object_meta(crd.get("metadata"), namespaced=False)
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return errs + [field.required("spec")]
    group, names = spec.get("group"), spec.get("names") if isinstance(spec.get("names"), dict) else {}
    plural = names.get("plural") or ""
    name = (crd.get("metadata") or {}).get("name")
    if name and name != f"{plural}.{group}":
        errs.append(field.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if not group:
        errs.append(field.required("spec.group"))
    elif not isinstance(group, str) or v.is_dns1123_subdomain(group):
        errs += v.check("spec.group", group, v.is_dns1123_subdomain) if isinstance(group, str) else \
            [field.invalid("spec.group", group, "must be a string")]
    elif "." not in group:
        errs.append(field.invalid("spec.group", group, "should be a domain with at least one dot"))
    errs += _names("spec.names", names)
    scope = spec.get("scope")
    if not scope:
        errs.append(field.required("spec.scope"))
    elif scope not in SCOPES:
        errs.append(field.not_supported("spec.scope", scope, SCOPES))
    errs += _versions(spec.get("versions"))
    if spec.get("preserveUnknownFields"):
        errs.append(field.invalid("spec.preserveUnknownFields", spec["preserveUnknownFields"],
                                  "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                                  "spec.versions[*].schema instead"))
    conversion = spec.get("conversion") or {}
    if isinstance(conversion, dict) and conversion.get("strategy") not in (None, "None"):
        errs.append(field.not_supported("spec.conversion.strategy", conversion.get("strategy"), ["None"]))
    return errs


def _names(path: str, names: Obj) -> list[Cause]:
    errs = []
    for key in ("plural", "singular"):
        value = names.get(key)
        if key == "plural" and not value:
            errs.append(field.required(f"{path}.{key}"))
        elif value:
            errs += v.check(f"{path}.{key}", value, v.is_dns1035_label)
    for i, short in enumerate(names.get("shortNames") or []):
        errs += v.check(f"{path}.shortNames[{i}]", short, v.is_dns1035_label)
    for key in ("kind", "listKind"):
        value = names.get(key)
        if key == "kind" and not value:
            errs.append(field.required(f"{path}.{key}"))
        elif value and (not isinstance(value, str) or v.is_dns1035_label(value.lower())):
            errs.append(field.invalid(f"{path}.{key}", value,
                                      "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errs.append(field.invalid(f"{path}.listKind", names["listKind"], "kind and listKind may not be the same"))
    return errs


def _versions(versions: Any) -> list[Cause]:
    if not isinstance(versions, list) or not versions:
        return [field.invalid("spec.versions", versions or [], "must have exactly one version marked as storage version")]
    errs: list[Cause] = []
    seen: set[str] = set()
    storage = served = 0
    for i, ver in enumerate(versions):
        p = f"spec.versions[{i}]"
        if not isinstance(ver, dict):
            errs.append(field.type_invalid(p, ver, "must be an object"))
            continue
        errs += v.unique_name(f"{p}.name", ver.get("name"), seen, v.is_dns1035_label,
                              lambda path, name: field.invalid(path, name, "must be unique"))
        storage += bool(ver.get("storage"))
        served += bool(ver.get("served"))
        schema = (ver.get("schema") or {}).get("openAPIV3Schema") if isinstance(ver.get("schema"), dict) else None
        if not isinstance(schema, dict):
            errs.append(field.required(f"{p}.schema.openAPIV3Schema", "schemas are required"))
        else:
            errs += structural(f"{p}.schema.openAPIV3Schema", schema)
        errs += _subresources(f"{p}.subresources", ver.get("subresources"))
        for j, col in enumerate(ver.get("additionalPrinterColumns") or []):
            errs += _column(f"{p}.additionalPrinterColumns[{j}]", col)
    if storage != 1:
        errs.append(field.invalid("spec.versions", [x.get("name") for x in versions if isinstance(x, dict)],
                                  "must have exactly one version marked as storage version"))
    if not served:
        errs.append(field.invalid("spec.versions", [x.get("name") for x in versions if isinstance(x, dict)],
                                  "must have at least one served version"))
    return errs


def structural(path: str, schema: Obj, *, root: bool = True, data: str = "") -> list[Cause]:
    """The structural-schema rules upstream enforces in v1 (a subset: types, items, root), and
    every ``default`` valid against its own node (``data``: the field's path in an object)."""
    errs: list[Cause] = []
    if "default" in schema:
        errs += [{**c, "field": f"{path}.default"} for c in custom_schema.validate(
            {k: v for k, v in schema.items() if k != "default"}, schema["default"], data, root=False)]
    typ = schema.get("type")
    int_or_string = schema.get("x-kubernetes-int-or-string")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    if root:
        if not typ:
            errs.append(field.required(f"{path}.type", "must not be empty at the root"))
        elif typ != "object":
            errs.append(field.invalid(f"{path}.type", typ, "must be object at the root"))
    elif not typ and not int_or_string and not preserve:
        errs.append(field.required(f"{path}.type", "must not be empty for specified object fields"))
    if typ and typ not in _TYPES:
        errs.append(field.not_supported(f"{path}.type", typ, _TYPES))
    if int_or_string and typ:
        errs.append(field.invalid(f"{path}.type", typ,
                                  "must be empty if x-kubernetes-int-or-string is true"))
    if typ == "array" and not isinstance(schema.get("items"), dict):
        errs.append(field.required(f"{path}.items", "must be specified"))
    extra = schema.get("additionalProperties")
    if schema.get("properties") and extra is not None and extra is not True:
        errs.append(field.forbidden(f"{path}.additionalProperties",
                                    "additionalProperties and properties are mutual exclusive"))
    for key, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            errs += structural(f"{path}.properties[{key}]", sub, root=False, data=f"{data}.{key}" if data else key)
    if isinstance(schema.get("items"), dict):
        errs += structural(f"{path}.items", schema["items"], root=False, data=f"{data}[0]")
    if isinstance(extra, dict):
        errs += structural(f"{path}.additionalProperties", extra, root=False, data=f"{data}[key]")
    if "$ref" in schema:
        errs.append(field.forbidden(f"{path}.$ref", "$ref is not supported"))
    return errs


def _subresources(path: str, subs: Any) -> list[Cause]:
    if not isinstance(subs, dict):
        return []
    scale = subs.get("scale")
    if not isinstance(scale, dict):
        return []
    errs = []
    spec_path, status_path = scale.get("specReplicasPath"), scale.get("statusReplicasPath")
    if not spec_path:
        errs.append(field.required(f"{path}.scale.specReplicasPath"))
    elif not str(spec_path).startswith(".spec."):
        errs.append(field.invalid(f"{path}.scale.specReplicasPath", spec_path, "should be a json path under .spec"))
    if not status_path:
        errs.append(field.required(f"{path}.scale.statusReplicasPath"))
    elif not str(status_path).startswith(".status."):
        errs.append(field.invalid(f"{path}.scale.statusReplicasPath", status_path,
                                  "should be a json path under .status"))
    selector = scale.get("labelSelectorPath")
    if selector and not (str(selector).startswith(".spec.") or str(selector).startswith(".status.")):
        errs.append(field.invalid(f"{path}.scale.labelSelectorPath", selector,
                                  "should be a json path under either .spec or .status"))
    return errs


def _column(path: str, col: Any) -> list[Cause]:
    if not isinstance(col, dict):
        return [field.type_invalid(path, col, "must be an object")]
    errs = []
    if not col.get("name"):
        errs.append(field.required(f"{path}.name"))
    if not col.get("type"):
        errs.append(field.required(f"{path}.type"))
    elif col["type"] not in ("integer", "number", "string", "boolean", "date"):
        errs.append(field.not_supported(f"{path}.type", col["type"], ["boolean", "date", "integer", "number", "string"]))
    if not col.get("jsonPath"):
        errs.append(field.required(f"{path}.jsonPath"))
    return errs


def mark_terminating(crd: Obj, now: str) -> None:
    """The condition upstream's CRD REST Delete sets before the cleanup finalizer runs."""
    status = crd.get("status") if isinstance(crd.get("status"), dict) else {}
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Terminating"]
    conditions.append({"type": "Terminating", "status": "True", "lastTransitionTime": now,
                       "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress"})
    status["conditions"] = conditions
    crd["status"] = status


def validate_update(old: Obj, new: Obj) -> list[Cause]:
    """ValidateCustomResourceDefinitionUpdate: the group and scope cannot change, and every
    version objects may be stored in (status.storedVersions) must stay in spec.versions."""
    errs = []
    ospec, nspec = _dict(old.get("spec")), _dict(new.get("spec"))
    for key in ("group", "scope"):
        if ospec.get(key) != nspec.get(key):
            errs.append(field.immutable(f"spec.{key}", nspec.get(key)))
    names = {ver.get("name") for ver in nspec.get("versions") or [] if isinstance(ver, dict)}
    for i, stored in enumerate(_dict(new.get("status")).get("storedVersions") or []):
        if stored not in names:
            errs.append(field.invalid(f"status.storedVersions[{i}]", stored, "must appear in spec.versions"))
    return errs
