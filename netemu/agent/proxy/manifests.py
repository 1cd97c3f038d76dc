"""Services and EndpointSlices from manifest files, for rendering rules without a cluster.

The files are read by the one manifest loader (netemu/api/manifests.py: multi-document YAML,
JSON, Lists, ``-`` for standard input, a folder and its subfolders in name order:
``kubectl get svc,endpointslices -A -o yaml | netemu proxy render -f -``). A file that cannot be
read or parsed is an error naming the file (and line): nothing is rendered from half a file.
An object that is not a Service or EndpointSlice is ignored; one that is malformed, or a
document that is not an object, is skipped with a reason naming the file and the object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, TextIO

from netemu.api import manifests as files
from netemu.api.manifests import ManifestError  # noqa: F401 (re-exported: what load raises)

log = logging.getLogger(__name__)


@dataclass
class Manifests:
    services: list[dict] = field(default_factory=list)
    endpoint_slices: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


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
    """Services and EndpointSlices from files and folders (recursively); "-" reads ``stdin``
    (YAML, which also reads JSON), as kubectl's ``-f -``."""
    loaded = files.load(paths, recursive=True, stdin=stdin)
    out = Manifests(problems=[f"{p}, skipped" for p in loaded.problems], files=loaded.files)
    for where, obj in loaded.objects:
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
            log.info("%s: ignoring %s %s (only Services and EndpointSlices matter)", where, kind, _name(obj))
    return out
