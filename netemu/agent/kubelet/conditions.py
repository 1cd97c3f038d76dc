"""Condition and timestamp helpers for the kubelet's objects.

The same rules as netemu.controllers.kube (lastTransitionTime moves only when the status
changes; metav1.Time / MicroTime text), kept here so the node agent does not import the control
plane's modules (their selectors and quantity parsers cost the agent ~1 MB of its 40 MB budget).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

Obj = dict[str, Any]


def rfc3339(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def parse_time(text: str | None) -> float | None:
    """metav1.Time / MicroTime text to seconds since the epoch (None when absent or bad)."""
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
