"""Small readers of Kubernetes objects shared by the scheduler and the controllers.

Private to the control plane: quantities and label selectors (read with netemu.api's parsers,
cached, because the scheduler evaluates the same few thousands of times per cycle), node selector
terms (Gt/Lt, matchFields), owner references, conditions and timestamps.
"""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from typing import Any, Iterable

from netemu.api import errors
from netemu.api import quantity as api_quantity
from netemu.api import selectors as api_selectors
from netemu.api.conditions import condition, condition_true, set_condition  # noqa: F401 (re-exported)
from netemu.api.meta import Obj, parse_time, rfc3339, rfc3339_micro  # noqa: F401 (re-exported)


def quantity(value: Any) -> Decimal:
    """A resource.Quantity ("900m", "1Gi", "2", 3) as an exact Decimal; ValueError if malformed
    (netemu.api.quantity's reading, cached per distinct text)."""
    if isinstance(value, str):
        return _parse_quantity(value)
    return api_quantity.parse_decimal(value)


@functools.lru_cache(maxsize=4096)
def _parse_quantity(text: str) -> Decimal:
    """Parsed once per distinct text: a cluster repeats the same few quantities everywhere."""
    return api_quantity.parse_decimal(text)


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


def compile_selector(selector: Obj | None) -> Any:
    """A matcher (``.matches(labels)``) for a metav1.LabelSelector, built by netemu.api.selectors:
    empty matches everything, None or malformed nothing. Compile once, match many times."""
    if selector is None:
        return api_selectors.NOTHING
    try:
        return _compiled_selector(json.dumps(selector, sort_keys=True))
    except (errors.StatusError, KeyError, TypeError, ValueError):
        return api_selectors.NOTHING


def selector_matches(selector: Obj | None, labels: dict[str, str] | None) -> bool:
    return compile_selector(selector).matches(labels or {})


@functools.lru_cache(maxsize=4096)
def _compiled_selector(text: str) -> Any:
    return api_selectors.from_label_selector(json.loads(text))


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


def rv_of(obj: Obj) -> int:
    """The resourceVersion as a number (0 when unset or not a number): ordered, as the store's."""
    try:
        return int(meta(obj).get("resourceVersion") or 0)
    except ValueError:
        return 0


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

def pod_is_ready(pod: Obj) -> bool:
    return condition_true(pod, "Ready")


def pod_is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_is_active(pod: Obj) -> bool:
    """Counts toward a ReplicaSet's replicas: not finished and not being deleted (upstream)."""
    return not pod_is_terminal(pod) and not is_deleting(pod)
