"""Condition and timestamp helpers for the kubelet's objects (from the object model).

netemu.api.meta and netemu.api.conditions are light (no selectors or quantity parsers), so the
node agent shares them with the controllers without paying for the control plane's modules.
"""

from __future__ import annotations

from netemu.api.conditions import Obj, set_condition
from netemu.api.meta import parse_time, rfc3339, rfc3339_micro

__all__ = ["Obj", "parse_time", "rfc3339", "rfc3339_micro", "set_condition"]
