"""Status conditions (metav1.Condition-style lists) as upstream keeps them.

One copy for the kubelet and the controllers: lastTransitionTime moves only when a condition's
status changes, which is what `kubectl describe` and rollout logic read.
"""

from __future__ import annotations

from netemu.api.meta import Obj


def condition(obj: Obj, ctype: str) -> Obj | None:
    """The condition of type ``ctype`` in ``obj.status.conditions``, or None."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def condition_true(obj: Obj, ctype: str) -> bool:
    c = condition(obj, ctype)
    return bool(c) and c.get("status") == "True"


def set_condition(conditions: list[Obj], new: Obj, now: str) -> list[Obj]:
    """``conditions`` with ``new`` merged in; lastTransitionTime kept unless the status changed."""
    out, found = [], False
    for c in conditions or []:
        if c.get("type") == new["type"]:
            found = True
            merged = dict(c, **new)
            same = c.get("status") == new.get("status")
            merged["lastTransitionTime"] = (c.get("lastTransitionTime") or now) if same else now
            out.append(merged)
        else:
            out.append(c)
    if not found:
        out.append(dict(new, lastTransitionTime=now))
    return out
