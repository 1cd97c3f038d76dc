"""Load Services and EndpointSlices from manifest files, for rendering rules without a cluster.

Accepts what users have at hand: a YAML file with several documents, a JSON file, a
``kubectl get -o yaml`` List (``kind: List`` or ``ServiceList``/``EndpointSliceList``), a
folder of such files (``*.yaml``, ``*.yml``, ``*.json``, recursively, in name order), or
``-`` for standard input (``kubectl get svc,endpointslices -A -o yaml | netemu proxy render -f -``).

A file that cannot be read or parsed is an error naming the file (and line): nothing is
rendered from half a file. An object that is not a Service or EndpointSlice is ignored; one
that is malformed is skipped with a reason naming the file and the object.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TextIO

import yaml

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(Exception):
    """A file or folder that cannot be used at all; the message names it."""


@dataclass
class Manifests:
    services: list[dict] = field(default_factory=list)
    endpoint_slices: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not found:
            raise ManifestError(f"{path}: folder has no *.yaml, *.yml or *.json files")
        return found
    if not path.exists():
        raise ManifestError(f"{path}: no such file or folder")
    return [path]


def _documents(path: Path, stdin: TextIO | None = None) -> list[Any]:
    try:
        text = stdin.read() if stdin is not None else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
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


def _objects(doc: Any, where: str, problems: list[str]) -> Iterable[tuple[str, dict]]:
    """Flatten Lists; yield (location, object) for every object dict."""
    if doc is None:
        return
    if not isinstance(doc, dict):
        problems.append(f"{where}: not a Kubernetes object (a {type(doc).__name__}), skipped")
        return
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        for i, item in enumerate(doc["items"]):
            yield from _objects(item, f"{where} items[{i}]", problems)
        return
    yield where, doc


def _name(obj: dict) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or '<no name>'}"


def _check(obj: dict, kind: str, where: str, problems: list[str]) -> bool:
    """Shape checks the model cannot make itself (it sees objects, not files)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        problems.append(f"{where}: {kind} without metadata.name, skipped")
        return False
    body = obj.get("spec") if kind == "Service" else obj
    if not isinstance(body, dict):
        problems.append(f"{where}: {kind} {_name(obj)} has no spec, skipped")
        return False
    for key in ("ports",) if kind == "Service" else ("ports", "endpoints"):
        if body.get(key) is not None and not isinstance(body.get(key), list):
            problems.append(f"{where}: {kind} {_name(obj)}: {key} is not a list, skipped")
            return False
    return True


def load(paths: Iterable[str | Path], stdin: TextIO | None = None) -> Manifests:
    """Services and EndpointSlices from files and folders (see module docstring); "-" reads
    ``stdin`` (YAML, which also reads JSON), as kubectl's ``-f -``."""
    out = Manifests()
    for raw in paths:
        from_stdin = str(raw) == "-"
        for path in [Path("<stdin>")] if from_stdin else _files(Path(raw)):
            out.files.append(path)
            docs = _documents(path, (stdin or sys.stdin) if from_stdin else None)
            for n, doc in enumerate(docs, 1):
                for where, obj in _objects(doc, f"{path} document {n}", out.problems):
                    kind = obj.get("kind")
                    if kind == "Service":
                        if _check(obj, kind, where, out.problems):
                            out.services.append(obj)
                    elif kind == "EndpointSlice":
                        if _check(obj, kind, where, out.problems):
                            out.endpoint_slices.append(obj)
                    elif not kind:
                        out.problems.append(f"{where}: object {_name(obj)} has no kind, skipped")
                    else:
                        log.info("%s: ignoring %s %s (only Services and EndpointSlices matter)",
                                 where, kind, _name(obj))
    return out
