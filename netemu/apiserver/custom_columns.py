"""Table columns of custom resources: the CRD's additionalPrinterColumns (pure).

upstream's customresource tableconvertor: Name, then each printer column evaluated as a simple
JSONPath over the object (``.spec.replicas``, ``.status.conditions[0].type``,
``.status.conditions[?(@.type=="Ready")].status``), or only Age (``.metadata.creationTimestamp``,
type date) when the CRD names none. A string column's cell is the value as text, other types'
cells the JSON value, a date column's cell the age (kubectl 1.32 prints a date cell as it
comes); a missing value is a null cell (kubectl prints ``<none>``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from netemu.api.meta import Obj

AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_STEP = re.compile(r"""\.?([^.\[\]]+)|\[(\d+)\]|\[\?\(@\.([\w.-]+)\s*==\s*["']([^"']*)["']\)\]|\[\*\]""")


def columns(info) -> list[Obj]:
    return list(info.columns) or [AGE]


def definitions(info) -> list[Obj]:
    out = [{"name": "Name", "type": "string", "format": "name",
            "description": "Name must be unique within a namespace.", "priority": 0}]
    for col in columns(info):
        out.append({"name": col["name"], "type": col.get("type", "string"), "format": col.get("format", ""),
                    "description": col.get("description", ""), "priority": col.get("priority", 0)})
    return out


def evaluate(obj: Any, path: str) -> list[Any]:
    """The values a simple JSONPath finds (``{.a.b}`` braces allowed)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    current = [obj]
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if not m or m.end() == pos:
            return []
        pos = m.end()
        key, index, fkey, fval = m.groups()
        nxt: list[Any] = []
        for value in current:
            if key is not None and isinstance(value, dict) and key in value:
                nxt.append(value[key])
            elif index is not None and isinstance(value, list) and int(index) < len(value):
                nxt.append(value[int(index)])
            elif fkey is not None and isinstance(value, list):
                nxt += [v for v in value if isinstance(v, dict) and str(v.get(fkey)) == fval]
            elif key is None and index is None and fkey is None and isinstance(value, list):
                nxt += value
        current = nxt
    return current


def _since(value: Any, now: dt.datetime) -> Any:
    """A date cell as kubectl shows it: the age (``5m``), as upstream's AGE column reads."""
    try:
        then = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return value
    from netemu.apiserver.tables import human_duration
    return human_duration((now - then).total_seconds())


def cells(info, obj: Obj, now: dt.datetime) -> list[Any]:
    out: list[Any] = [(obj.get("metadata") or {}).get("name", "")]
    for col in columns(info):
        found = evaluate(obj, col.get("jsonPath", ""))
        if not found:
            out.append(None)
            continue
        value = found[0]
        if col.get("type") == "date":
            value = _since(value, now)
        elif col.get("type", "string") == "string" and not isinstance(value, str):
            value = json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) \
                else ("true" if value is True else "false" if value is False else str(value))
        out.append(value)
    return out
