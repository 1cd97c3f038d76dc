"""Reading typed fields out of located YAML, collecting every problem with its line.

The scenario parser (schema.py) and the event kinds (eventspec.py) read their mappings through a
``Fields`` view: ``f.int("replicas", minimum=0)`` returns the value or records "replicas: must
be a whole number >= 0, not 'x'" at the value's line and returns None. Unknown keys are
reported too (with the known ones), so a typo never passes silently as "not given".
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from netemu.experiments.located import LMap, Problem, line_of

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def seconds(value: Any) -> float | None:
    """30, 2.5, "30s", "500ms", "2m" -> seconds; None when not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        return None
    return float(m[1]) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m[2]]


class Problems:
    """The problems found so far in one scenario file."""

    def __init__(self, file: str):
        self.file = file
        self.items: list[Problem] = []

    def add(self, line: int | None, reason: str) -> None:
        self.items.append(Problem(self.file, line, reason))


class Fields:
    """A mapping's fields, read once each; ``where`` prefixes messages (e.g. "timeline[2].scale")."""

    def __init__(self, data: Any, where: str, problems: Problems, line: int | None = None):
        self.where, self.problems = where, problems
        self.line = line_of(data) or line
        if not isinstance(data, dict):
            problems.add(self.line, f"{where}: must be a mapping (key: value), not {_show(data)}")
            data = LMap()
        self.data = data

    def here(self, key: str) -> int | None:
        return self.data.line_of(key) if isinstance(self.data, LMap) else self.line

    def bad(self, key: str | None, reason: str) -> None:
        name = f"{self.where}.{key}" if key else self.where
        self.problems.add(self.here(key) if key else self.line, f"{name}: {reason}")

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def only(self, known: Iterable[str], extensions: bool = False) -> None:
        """Report unknown keys; ``extensions``: keys named x-... are the user's (YAML anchors)."""
        known = list(known)
        for key in self.data:
            if key not in known and not (extensions and str(key).startswith("x-")):
                line = self.data.key_lines.get(key) if isinstance(self.data, LMap) else self.line
                self.problems.add(line, f"{self.where}: unknown field {key!r} (known: {', '.join(known)})")

    def raw(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key)
        return default if value is None else value

    def str(self, key: str, default: str | None = None, *, required: bool = False,
            choices: Iterable[str] | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.bad(None, f"{key} is required")
            return default
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            self.bad(key, f"must be text, not {_show(value)}")
            return default
        value = str(value)
        choices = list(choices) if choices is not None else None
        if choices is not None and value not in choices:
            self.bad(key, f"{value!r}: choose one of {', '.join(choices)}")
            return default
        return value

    def int(self, key: str, default: int | None = None, *, required: bool = False, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.bad(None, f"{key} is required")
            return default
        if not isinstance(value, int) or isinstance(value, bool) or \
                (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            limits = " and ".join(filter(None, [f">= {minimum}" if minimum is not None else "",
                                                f"<= {maximum}" if maximum is not None else ""]))
            self.bad(key, f"must be a whole number{' ' + limits if limits else ''}, not {_show(value)}")
            return default
        return value

    def number(self, key: str, default: float | None = None, *, required: bool = False, positive: bool = False,
               minimum: float | None = None, maximum: float | None = None) -> float | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.bad(None, f"{key} is required")
            return default
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and positive and not value > 0:
            ok = False
        if ok and ((minimum is not None and value < minimum) or (maximum is not None and value > maximum)):
            ok = False
        if not ok:
            want = "a number > 0" if positive else "a number" + (f" from {minimum} to {maximum}"
                                                                  if minimum is not None and maximum is not None else "")
            self.bad(key, f"must be {want}, not {_show(value)}")
            return default
        return float(value)

    def duration(self, key: str, default: float | None = None, *, required: bool = False,
                 positive: bool = False) -> float | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.bad(None, f"{key} is required")
            return default
        secs = seconds(value)
        if secs is None or (positive and not secs > 0) or secs < 0:
            self.bad(key, f"must be {'a positive ' if positive else 'a '}duration in seconds (30, 2.5, \"500ms\", "
                          f"\"2m\"), not {_show(value)}")
            return default
        return secs

    def bool(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.bad(key, f"must be true or false, not {_show(value)}")
            return default
        return value

    def strings(self, key: str) -> list[str]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                                  for v in value):
            self.bad(key, f"must be a list of text values, not {_show(value)}")
            return []
        return [str(v) for v in value]

    def mapping(self, key: str) -> Fields | None:
        if not self.has(key):
            return None
        return Fields(self.data[key], f"{self.where}.{key}", self.problems, self.here(key))


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
