"""Generic validation (apimachinery util/validation and apivalidation.ValidateObjectMeta).

Each function returns a list of field causes (see ``netemu.api.field``) and never raises on odd
input: a client may send anything, and the answer must be a 422 naming the field, not a crash.
The per-kind validators in ``validate_*`` modules are built from these.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from netemu.api import field
from netemu.api.field import Cause

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
ENV_VAR_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"

_RE = {k: re.compile("^" + v + "$") for k, v in {
    "label": DNS1123_LABEL_FMT, "subdomain": DNS1123_SUBDOMAIN_FMT, "1035": DNS1035_LABEL_FMT,
    "qname": QUALIFIED_NAME_FMT, "lvalue": LABEL_VALUE_FMT, "env": ENV_VAR_FMT,
    "ckey": CONFIG_KEY_FMT}.items()}

DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                     "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                     f"regex used for validation is '{DNS1123_LABEL_FMT}')")
DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                         "'-' or '.', and must start and end with an alphanumeric character (e.g. "
                         f"'example.com', regex used for validation is '{DNS1123_SUBDOMAIN_FMT}')")
DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
                     "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
                     f"'abc-123', regex used for validation is '{DNS1035_LABEL_FMT}')")
QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                      "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
                      f"for validation is '{QUALIFIED_NAME_FMT}')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
                   "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
                   f"'my_value',  or '12345', regex used for validation is '{LABEL_VALUE_FMT}')")
ENV_VAR_MSG = ("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
               "or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
               f"'MyEnvName1', regex used for validation is '{ENV_VAR_FMT}')")
CONFIG_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
                  f"'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '{CONFIG_KEY_FMT}')")

PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"
PROTOCOLS = ("SCTP", "TCP", "UDP")
TOTAL_ANNOTATION_SIZE = 256 * 1024


def _max_len(value: str, n: int) -> list[str]:
    return [f"must be no more than {n} characters"] if len(value) > n else []


# -- the string checks: each returns the list of upstream messages (empty = valid) --------------

def is_dns1123_label(value: str) -> list[str]:
    return _max_len(value, 63) + ([] if _RE["label"].match(value) else [DNS1123_LABEL_MSG])


def is_dns1123_subdomain(value: str) -> list[str]:
    return _max_len(value, 253) + ([] if _RE["subdomain"].match(value) else [DNS1123_SUBDOMAIN_MSG])


def is_dns1035_label(value: str) -> list[str]:
    return _max_len(value, 63) + ([] if _RE["1035"].match(value) else [DNS1035_LABEL_MSG])


def is_path_segment_name(value: str) -> list[str]:
    """RBAC and Event names: anything usable as one URL path segment."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def is_qualified_name(value: str) -> list[str]:
    """Label and annotation keys: ``[prefix/]name``."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        errs = ["prefix part " + m for m in is_dns1123_subdomain(prefix)]
        if errs:
            return errs
    else:
        return ["a qualified name " + QUALIFIED_NAME_MSG + " with an optional DNS subdomain prefix and "
                "'/' (e.g. 'example.com/MyName')"]
    if not name:
        return ["name part must be non-empty"]
    errs = ["name part must be no more than 63 characters"] if len(name) > 63 else []
    if not _RE["qname"].match(name):
        errs.append("name part " + QUALIFIED_NAME_MSG)
    return errs


def is_label_value(value: str) -> list[str]:
    return _max_len(value, 63) + ([] if _RE["lvalue"].match(value) else [LABEL_VALUE_MSG])


def is_env_var_name(value: str) -> list[str]:
    return [] if _RE["env"].match(value) else [ENV_VAR_MSG]


def is_config_key(value: str) -> list[str]:
    errs = _max_len(value, 253) + ([] if _RE["ckey"].match(value) else [CONFIG_KEY_MSG])
    if value in (".", "..") or value.startswith(".."):
        errs.append("must not be '.'" if value == "." else "must not start with '..'")
    return errs


def is_port_name(value: str) -> list[str]:
    """IANA service names (container and Service port names used as targetPort)."""
    errs = []
    if len(value) > 15:
        errs.append("must be no more than 15 characters")
    if not re.match(r"^[-a-z0-9]+$", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_ipv4(value: Any) -> bool:
    try:
        ipaddress.IPv4Address(value)
        return True
    except (ValueError, TypeError):
        return False


def is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except (ValueError, TypeError):
        return False


def is_cidr(value: Any) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
        return isinstance(value, str) and "/" in value
    except (ValueError, TypeError):
        return False


# -- field-level helpers ----------------------------------------------------------------------

def check(path: str, value: Any, checker: Callable[[str], list[str]]) -> list[Cause]:
    """Run a string check and turn each message into an Invalid cause at ``path``."""
    if not isinstance(value, str):
        return [field.invalid(path, value, "must be a string")]
    return [field.invalid(path, value, msg) for msg in checker(value)]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def port_number(path: str, value: Any, *, required: bool = True) -> list[Cause]:
    if value is None or value == 0:
        return [field.required(path)] if required and value is None else (
            [field.invalid(path, value, PORT_RANGE_MSG)] if required else [])
    if not is_int(value) or not 1 <= value <= 65535:
        return [field.invalid(path, value, PORT_RANGE_MSG)]
    return []


def port_num_or_name(path: str, value: Any) -> list[Cause]:
    """An IntOrString port (targetPort, probe ports)."""
    if isinstance(value, str):
        return [field.invalid(path, value, m) for m in is_port_name(value)]
    return port_number(path, value)


def protocol(path: str, value: Any) -> list[Cause]:
    if not value:
        return [field.required(path)]
    return [] if value in PROTOCOLS else [field.not_supported(path, value, PROTOCOLS)]


def one_of(path: str, value: Any, supported: tuple[str, ...], *, required: bool = True) -> list[Cause]:
    if value in (None, ""):
        return [field.required(path)] if required else []
    return [] if value in supported else [field.not_supported(path, value, supported)]


def non_negative(path: str, value: Any) -> list[Cause]:
    if value is None:
        return []
    if not is_int(value) or value < 0:
        return [field.invalid(path, value, "must be greater than or equal to 0")]
    return []


def string_map(path: str, value: Any) -> list[Cause]:
    """A map[string]string field (labels, selectors, data)."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [field.type_invalid(path, value, "must be an object of strings")]
    return [field.type_invalid(f"{path}[{k}]", v, "must be a string")
            for k, v in value.items() if not isinstance(v, str)]


def labels(path: str, value: Any) -> list[Cause]:
    """``ValidateLabels``: each key a qualified name, each value a label value."""
    errs = string_map(path, value)
    if errs or not value:
        return errs
    for k, v in value.items():
        errs += [field.invalid(path, k, m) for m in is_qualified_name(k)]
        errs += [field.invalid(path, v, m) for m in is_label_value(v)]
    return errs


def annotations(path: str, value: Any) -> list[Cause]:
    errs = string_map(path, value)
    if errs or not value:
        return errs
    total = 0
    for k, v in value.items():
        errs += [field.invalid(path, k, m) for m in is_qualified_name(k.lower())]
        total += len(k) + len(v)
    if total > TOTAL_ANNOTATION_SIZE:
        errs.append(field.too_long(path, TOTAL_ANNOTATION_SIZE))
    return errs


def list_of_dicts(path: str, value: Any) -> tuple[list[dict], list[Cause]]:
    """Elements of a list-of-objects field, plus causes for a wrong shape."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], [field.type_invalid(path, value, "must be a list")]
    errs = [field.type_invalid(f"{path}[{i}]", v, "must be an object")
            for i, v in enumerate(value) if not isinstance(v, dict)]
    return [v if isinstance(v, dict) else {} for v in value], errs


# -- ObjectMeta -------------------------------------------------------------------------------

NAME_CHECKS: dict[str, Callable[[str], list[str]]] = {
    "subdomain": is_dns1123_subdomain, "label": is_dns1123_label,
    "dns1035": is_dns1035_label, "segment": is_path_segment_name,
}


def object_meta(meta: Any, *, namespaced: bool, name_check: str = "subdomain") -> list[Cause]:
    """``ValidateObjectMeta``: name, namespace, labels, annotations, ownerReferences, finalizers."""
    if not isinstance(meta, dict):
        return [field.required("metadata")]
    errs: list[Cause] = []
    name = meta.get("name")
    if not name:
        errs.append(field.required("metadata.name", "name or generateName is required"))
    else:
        errs += check("metadata.name", name, NAME_CHECKS[name_check])
    ns = meta.get("namespace")
    if namespaced:
        if not ns:
            errs.append(field.required("metadata.namespace"))
        else:
            errs += check("metadata.namespace", ns, is_dns1123_label)
    elif ns:
        errs.append(field.forbidden("metadata.namespace", "not allowed on this type"))
    errs += labels("metadata.labels", meta.get("labels"))
    errs += annotations("metadata.annotations", meta.get("annotations"))
    errs += owner_refs("metadata.ownerReferences", meta.get("ownerReferences"))
    errs += finalizers("metadata.finalizers", meta.get("finalizers"))
    errs += non_negative("metadata.generation", meta.get("generation"))
    return errs


def owner_refs(path: str, value: Any) -> list[Cause]:
    refs, errs = list_of_dicts(path, value)
    controllers = 0
    for i, ref in enumerate(refs):
        p = f"{path}[{i}]"
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                errs.append(field.invalid(f"{p}.{key}", ref.get(key, ""), f"{key} must not be empty"))
        controllers += bool(ref.get("controller"))
    if controllers > 1:
        errs.append(field.invalid(path, value, "Only one reference can have Controller set to true"))
    return errs


def finalizers(path: str, value: Any) -> list[Cause]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
        return [field.type_invalid(path, value, "must be a list of strings")]
    errs = []
    for i, f in enumerate(value):
        errs += [field.invalid(f"{path}[{i}]", f, m) for m in is_qualified_name(f)]
    return errs


def unique_name(path: str, name: Any, seen: set, checker: Callable[[str], list[str]],
                duplicate: Callable[[str, Any], Cause] = field.duplicate) -> list[Cause]:
    """A list item's name: required, well-formed, and not one an earlier item has (``seen``)."""
    if not name:
        return [field.required(path)]
    errs = check(path, name, checker)
    if name in seen:
        errs.append(duplicate(path, name))
    seen.add(name)
    return errs
