"""YAML that remembers where each value was written, so every error names FILE:LINE.

Why not plain ``yaml.safe_load``: a scenario error ("unknown event 'scael'", "at 90 is after the
end (60 s)") is only useful with the line it is on. We compose the YAML node tree (which carries
marks) and build ordinary dicts and lists from it; ``LMap``/``LList`` are dict/list subclasses
that also know their own line and each member's line. Scalars stay plain Python values.

``ScenarioError`` collects every problem found (file, line, reason) and prints them one a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}" if self.line else f"{self.file}: {self.reason}"


class ScenarioError(ValueError):
    """One or more problems in a scenario file; raised before anything starts."""

    partial = None        # schema.parse sets what it could read, for further checks

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class LMap(dict):
    """A mapping from YAML: ``line`` (its own), ``lines[key]`` (each value's), ``file``."""

    line: int | None = None
    file: str = "?"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines: dict[Any, int] = {}
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int | None:
        return self.lines.get(key, self.line)


class LList(list):
    """A sequence from YAML: ``line`` (its own), ``lines[i]`` (each item's), ``file``."""

    line: int | None = None
    file: str = "?"

    def __init__(self, *args):
        super().__init__(*args)
        self.lines: list[int] = []

    def line_of(self, index: int) -> int | None:
        return self.lines[index] if 0 <= index < len(self.lines) else self.line


def line_of(value: Any, key: Any = None) -> int | None:
    """The line of ``value[key]`` (or of ``value`` itself) when it came from YAML."""
    if key is not None and isinstance(value, (LMap, LList)):
        return value.line_of(key)
    return getattr(value, "line", None)


class _Loader(yaml.SafeLoader):
    pass


def _build(loader: _Loader, node: yaml.Node, file: str) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)          # YAML merge keys (<<) as safe_load does
        merged = len(node.value) - explicit   # the first `merged` pairs came from <<: a key given may override them
        out = LMap()
        out.line, out.file = line, file
        explicit_keys: set = set()
        for i, (key_node, value_node) in enumerate(node.value):
            key = _build(loader, key_node, file)
            if isinstance(key, (LMap, LList)):
                raise ScenarioError([Problem(file, key_node.start_mark.line + 1, "a mapping key must be a plain value")])
            if i >= merged:
                if key in explicit_keys:
                    raise ScenarioError([Problem(file, key_node.start_mark.line + 1, f"{key!r} is given twice")])
                explicit_keys.add(key)
            out[key] = _build(loader, value_node, file)
            out.lines[key] = value_node.start_mark.line + 1
            out.key_lines[key] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        out = LList()
        out.line, out.file = line, file
        for item in node.value:
            out.append(_build(loader, item, file))
            out.lines.append(item.start_mark.line + 1)
        return out
    return loader.construct_object(node, deep=True)


def load_text(text: str, file: str) -> Any:
    """The YAML document in ``text`` with lines; ScenarioError (with the line) for bad YAML."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError([Problem(file, None, "the file is empty")])
        return _build(loader, node, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(filter(None, [exc.context, exc.problem])) or str(exc)
        raise ScenarioError([Problem(file, mark.line + 1 if mark else None, f"bad YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(file, None, f"bad YAML: {exc}")]) from None
    finally:
        loader.dispose()


def load_file(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(str(path), None, f"cannot read: {exc}")]) from None
    return load_text(text, str(path))


def plain(value: Any) -> Any:
    """A located value as plain dicts and lists (for JSON and for the API)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
