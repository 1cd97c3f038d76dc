"""Small readers of Kubernetes objects shared by the scheduler and the controllers.

Private to the control plane: quantities, label/node selectors, owner references, conditions and
timestamps. The object model (netemu/api) was being written in parallel when these were needed;
they are kept minimal and pure so swapping them for netemu.api helpers changes no behaviour.
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from decimal import Decimal
from typing import Any, Iterable

Obj = dict[str, Any]

_SUFFIX = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QTY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def quantity(value: Any) -> Decimal:
    """A resource.Quantity ("900m", "1Gi", "2", 3) as an exact Decimal; ValueError if malformed."""
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    return _parse_quantity(str(value))


@functools.lru_cache(maxsize=4096)
def _parse_quantity(text: str) -> Decimal:
    """Parsed once per distinct text: a cluster repeats the same few quantities everywhere."""
    m = _QTY.match(text.strip())
    if not m:
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    return Decimal(m.group(1)) * _SUFFIX[m.group(2) or ""]


def milli(value: Any) -> int:
    """A cpu quantity in millicores (rounded up like Quantity.MilliValue)."""
    q = quantity(value) * 1000
    return int(q.to_integral_value(rounding="ROUND_CEILING"))


def whole(value: Any) -> int:
    """A quantity as an integer (bytes, pods), rounded up like Quantity.Value."""
    return int(quantity(value).to_integral_value(rounding="ROUND_CEILING"))


# ---- label selectors -------------------------------------------------------------------------

def _expr_matches(labels: dict[str, str], key: str, op: str, values: Iterable[str]) -> bool:
    values = list(values or [])
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, IndexError, ValueError):
            return False
        return have > want if op == "Gt" else have < want
    raise ValueError(f"unknown selector operator {op!r}")


def selector_matches(selector: Obj | None, labels: dict[str, str] | None) -> bool:
    """metav1.LabelSelector semantics: an empty selector matches everything, None nothing."""
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    return all(_expr_matches(labels, e["key"], e["operator"], e.get("values"))
               for e in selector.get("matchExpressions") or [])


def map_selector_matches(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    """A Service/ReplicationController style map selector; empty or None selects nothing here."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def node_selector_term_matches(term: Obj, node: Obj) -> bool:
    """One NodeSelectorTerm: all matchExpressions (labels) and matchFields (metadata.name)."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no objects (upstream)
    labels = labels_of(node)
    if not all(_expr_matches(labels, e["key"], e["operator"], e.get("values")) for e in exprs):
        return False
    name_fields = {"metadata.name": name_of(node)}
    return all(_expr_matches(name_fields, f["key"], f["operator"], f.get("values")) for f in fields)


# ---- metadata ----------------------------------------------------------------------------------

def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def name_of(obj: Obj) -> str:
    return meta(obj).get("name", "")


def ns_of(obj: Obj) -> str:
    return meta(obj).get("namespace", "")


def labels_of(obj: Obj) -> dict[str, str]:
    return meta(obj).get("labels") or {}


def uid_of(obj: Obj) -> str:
    return meta(obj).get("uid", "")


def key_of(obj: Obj) -> str:
    ns = ns_of(obj)
    return f"{ns}/{name_of(obj)}" if ns else name_of(obj)


def controller_ref(obj: Obj) -> Obj | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_ref(owner: Obj, *, controller: bool = True, block: bool = True) -> Obj:
    """The ownerReference a controller writes on what it creates (upstream NewControllerRef)."""
    return {"apiVersion": owner.get("apiVersion", ""), "kind": owner.get("kind", ""),
            "name": name_of(owner), "uid": uid_of(owner), "controller": controller,
            "blockOwnerDeletion": block}


def is_deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


# ---- conditions and time ----------------------------------------------------------------------

def condition(obj: Obj, ctype: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def condition_true(obj: Obj, ctype: str) -> bool:
    c = condition(obj, ctype)
    return bool(c) and c.get("status") == "True"


def set_condition(conditions: list[Obj], new: Obj, now: str) -> list[Obj]:
    """Return conditions with ``new`` merged in; lastTransitionTime moves only when status changes."""
    out, found = [], False
    for c in conditions or []:
        if c.get("type") == new["type"]:
            found = True
            merged = dict(c, **new)
            if c.get("status") != new.get("status"):
                merged["lastTransitionTime"] = now
            else:
                merged["lastTransitionTime"] = c.get("lastTransitionTime") or now
            out.append(merged)
        else:
            out.append(c)
    if not found:
        out.append(dict(new, lastTransitionTime=now))
    return out


def rfc3339(t: float) -> str:
    """Seconds since the epoch as Kubernetes' metav1.Time text (second precision, UTC)."""
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: float) -> str:
    """metav1.MicroTime text, used by Lease renewTime and Event eventTime."""
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float | None:
    """metav1.Time or MicroTime text to seconds since the epoch (None when absent or bad)."""
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pod_is_ready(pod: Obj) -> bool:
    return condition_true(pod, "Ready")


def pod_is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_is_active(pod: Obj) -> bool:
    """Counts toward a ReplicaSet's replicas: not finished and not being deleted (upstream)."""
    return not pod_is_terminal(pod) and not is_deleting(pod)
