"""Kubernetes objects from manifest files: the one loader behind ``netemu apply/delete -f`` and
``netemu proxy render -f``.

Accepts what users have at hand, as kubectl's ``-f`` does: a YAML file with several documents, a
JSON file, a ``kubectl get -o yaml`` List (``kind: List``, ``PodList``, ...: its items), a
directory of such files (``*.yaml``, ``*.yml``, ``*.json``, in name order; its subdirectories
too only when asked, as ``kubectl -R``), or ``-`` for standard input.

A file or directory that cannot be used at all (missing, unreadable, not valid YAML or JSON, a
directory with no manifests) is a ``ManifestError`` naming it (and the line): nothing is loaded
from half a file. A document that is not an object is a *problem* naming the file and the
document; each caller decides what a problem is (``apply`` refuses to send anything, ``proxy
render`` skips it and says so). What the objects must contain is the caller's business too.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

import yaml

from netemu.api.meta import Obj

SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"


class ManifestError(Exception):
    """A file or directory that cannot be used at all; the message names it."""


@dataclass
class Loaded:
    """``objects``: (where, object) in file and document order, ``where`` naming the file, the
    document and the List item (``web.yaml document 2 items[0]``); ``problems``: documents that
    are not objects, each naming where; ``files``: what was read."""

    objects: list[tuple[str, Obj]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def manifest_files(path: Path, recursive: bool = False) -> list[Path]:
    """The manifests ``path`` names: itself, or a directory's ``*.yaml``/``*.yml``/``*.json``
    files in name order (and its subdirectories' with ``recursive``)."""
    if path.is_dir():
        found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir())
                       if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not found:
            below = " or below it" if recursive else ""
            raise ManifestError(f"{path}: no *.yaml, *.yml or *.json files in this directory{below}")
        return found
    if not path.exists():
        raise ManifestError(f"{path}: no such file or directory")
    return [path]


def documents(path: Path, text: str) -> list[Any]:
    """The documents of one file's text: JSON for ``*.json``, YAML (which reads JSON too) else."""
    if path.suffix.lower() == ".json":
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"{path}: invalid YAML{where}: {problem}") from None


def objects(doc: Any, where: str, problems: list[str]) -> Iterator[tuple[str, Obj]]:
    """Flatten Lists; yield (where, object) for every object, note every non-object."""
    if doc is None:
        return
    if not isinstance(doc, dict):
        problems.append(f"{where}: not an object (a {type(doc).__name__})")
        return
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        for i, item in enumerate(doc["items"]):
            yield from objects(item, f"{where} items[{i}]", problems)
        return
    yield where, doc


def _read(path: Path, stdin: TextIO | str | None) -> str:
    try:
        if stdin is not None:
            return stdin if isinstance(stdin, str) else stdin.read()
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None


def load(targets: Iterable[str | Path], *, recursive: bool = False, stdin: TextIO | str | None = None) -> Loaded:
    """Every object of every target (file, directory or ``-``), read and parsed before the
    caller acts on any. ``-`` reads ``stdin`` (default: the process's standard input)."""
    out = Loaded()
    for target in targets:
        from_stdin = str(target) == STDIN
        for path in [Path("<stdin>")] if from_stdin else manifest_files(Path(target), recursive):
            out.files.append(path)
            text = _read(path, (stdin if stdin is not None else sys.stdin) if from_stdin else None)
            for n, doc in enumerate(documents(path, text), 1):
                out.objects.extend(objects(doc, f"{path} document {n}", out.problems))
    return out
