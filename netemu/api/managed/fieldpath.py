"""Sets of field paths, and their FieldsV1 wire form: sigs.k8s.io/structured-merge-diff's
``fieldpath`` package (Set, PathElement, serialize.go), as the API server stores them in
``metadata.managedFields``.

A path element is one of four steps into a value:

- ``("f", name)``  a field of a map or struct                 FieldsV1 ``f:name``
- ``("k", keys)``  an item of an associative list, by its keys ``k:{"name":"web"}``
- ``("v", value)`` an item of a set (a list of scalars)        ``v:"10.0.0.0/24"``
- ``("i", n)``     an item of a list by position               ``i:3``

``keys`` and ``value`` are kept as canonical JSON text (sorted keys, no spaces), which is at
once hashable and exactly the FieldsV1 spelling. A ``FieldSet`` is upstream's tree: at each
node the elements that are themselves members (``members``) and the subtrees below elements
(``children``); a path is in the set when its last element is a member of its parent node, so
``.spec`` having children does not make ``.spec`` itself managed.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

PathElement = tuple[str, Any]
Path = tuple[PathElement, ...]
_ORDER = {"f": 0, "k": 1, "v": 2, "i": 3}


def canonical(value: Any) -> str:
    """JSON the way FieldsV1 keys spell values: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def field(name: str) -> PathElement:
    return ("f", name)


def key(fields: dict[str, Any]) -> PathElement:
    return ("k", canonical(fields))


def value(v: Any) -> PathElement:
    return ("v", canonical(v))


def index(i: int) -> PathElement:
    return ("i", i)


def path(*names: str) -> Path:
    """A path of field names: ``path("spec", "replicas")``."""
    return tuple(field(n) for n in names)


def _sort_key(pe: PathElement) -> tuple[int, Any]:
    return (_ORDER[pe[0]], pe[1] if pe[0] != "i" else int(pe[1]))


def element_str(pe: PathElement) -> str:
    """``PathElement.String()``: ``.name``, ``[name="web"]``, ``[="x"]``, ``[3]``."""
    kind, v = pe
    if kind == "f":
        return "." + v
    if kind == "k":
        return "[" + ",".join(f"{k}={canonical(x)}" for k, x in json.loads(v).items()) + "]"
    if kind == "v":
        return f"[={v}]"
    return f"[{v}]"


def path_str(p: Path) -> str:
    """``Path.String()`` as conflict messages print it: ``.spec.containers[name="web"].image``."""
    return "".join(element_str(pe) for pe in p)


def element_to_wire(pe: PathElement) -> str:
    return f"{pe[0]}:{pe[1]}"


def element_from_wire(text: str) -> PathElement:
    """One FieldsV1 key; raises ValueError for anything that is not one."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in _ORDER:
        raise ValueError(f"unknown path element {text!r}")
    if kind == "f":
        return ("f", rest)
    if kind == "i":
        return ("i", int(rest))
    parsed = json.loads(rest)
    if kind == "k" and not isinstance(parsed, dict):
        raise ValueError(f"a key path element must hold an object: {text!r}")
    return (kind, canonical(parsed))


class FieldSet:
    """A set of paths as a tree (upstream ``fieldpath.Set``). Operations return new sets."""

    __slots__ = ("members", "children", "wire")

    def __init__(self) -> None:
        self.members: set[PathElement] = set()
        self.children: dict[PathElement, FieldSet] = {}
        self.wire: dict[str, Any] | None = None       # the FieldsV1 this set was parsed from

    @classmethod
    def of(cls, *paths: Path) -> "FieldSet":
        out = cls()
        for p in paths:
            out.insert(p)
        return out

    def copy(self) -> "FieldSet":
        out = FieldSet()
        out.members = set(self.members)
        out.children = {pe: c.copy() for pe, c in self.children.items()}
        return out

    def insert(self, p: Path) -> None:
        if not p:
            return
        self.wire = None
        node = self
        for pe in p[:-1]:
            node = node.children.setdefault(pe, FieldSet())
        node.members.add(p[-1])

    def node(self, prefix: Path) -> "FieldSet":
        """The subtree at ``prefix`` (created empty when missing), to insert below it."""
        self.wire = None
        node = self
        for pe in prefix:
            node = node.children.setdefault(pe, FieldSet())
        return node

    def has(self, p: Path) -> bool:
        node = self
        for pe in p[:-1]:
            node = node.children.get(pe)
            if node is None:
                return False
        return bool(p) and p[-1] in node.members

    def child(self, pe: PathElement) -> "FieldSet":
        """``WithPrefix``: the paths below ``pe`` (relative), empty when none."""
        return self.children.get(pe) or FieldSet()

    def empty(self) -> bool:
        return not self.members and all(c.empty() for c in self.children.values())

    def __bool__(self) -> bool:
        return not self.empty()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSet) and sorted(self.paths()) == sorted(other.paths())

    def __repr__(self) -> str:
        return "FieldSet(" + ", ".join(path_str(p) for p in self.paths()) + ")"

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        for pe in sorted(self.members | set(self.children), key=_sort_key):
            if pe in self.members:
                yield prefix + (pe,)
            if pe in self.children:
                yield from self.children[pe].paths(prefix + (pe,))

    # Set operations return new sets that may share unchanged subtrees with their inputs:
    # only sets being built (``insert``) are ever mutated.

    def union(self, other: "FieldSet") -> "FieldSet":
        if other.empty():
            return self
        out = FieldSet()
        out.members = self.members | other.members
        out.children = dict(self.children)
        for pe, c in other.children.items():
            out.children[pe] = out.children[pe].union(c) if pe in out.children else c
        return out

    def intersection(self, other: "FieldSet") -> "FieldSet":
        out = FieldSet()
        out.members = self.members & other.members
        for pe, c in self.children.items():
            if pe in other.children:
                sub = c.intersection(other.children[pe])
                if not sub.empty():
                    out.children[pe] = sub
        return out

    def difference(self, other: "FieldSet") -> "FieldSet":
        """Members of ``other`` removed at every level (a member does not remove its subtree)."""
        if other.empty():
            return self
        out = FieldSet()
        out.members = self.members - other.members
        for pe, c in self.children.items():
            sub = c.difference(other.children[pe]) if pe in other.children else c
            if not sub.empty():
                out.children[pe] = sub
        return out

    def recursive_difference(self, other: "FieldSet") -> "FieldSet":
        """Like ``difference``, and a member of ``other`` also removes everything below it."""
        if other.empty():
            return self
        out = FieldSet()
        out.members = self.members - other.members
        for pe, c in self.children.items():
            if pe in other.members:
                continue
            sub = c.recursive_difference(other.children[pe]) if pe in other.children else c
            if not sub.empty():
                out.children[pe] = sub
        return out

    # -- FieldsV1 -----------------------------------------------------------------------------

    def to_fields_v1(self) -> dict[str, Any]:
        """The FieldsV1 object: ``{"f:spec": {"f:replicas": {}}}``, ``"."`` marking a member
        that also has children (the parsed document itself for a set parsed and not changed)."""
        if self.wire is not None:
            return self.wire
        out: dict[str, Any] = {}
        for pe in sorted(self.members | set(self.children), key=_sort_key):
            sub = self.children.get(pe)
            body = sub.to_fields_v1() if sub is not None and not sub.empty() else {}
            if pe in self.members and body:
                body = {".": {}, **body}
            if pe in self.members or body:
                out[element_to_wire(pe)] = body
        return out

    @classmethod
    def from_fields_v1(cls, doc: Any) -> "FieldSet":
        """Parse FieldsV1; raises ValueError on anything malformed."""
        out = cls._parse(doc)
        out.wire = doc
        return out

    @classmethod
    def _parse(cls, doc: Any) -> "FieldSet":
        if not isinstance(doc, dict):
            raise ValueError("fieldsV1 must be a JSON object")
        out = cls()
        for text, body in doc.items():
            if text == ".":
                continue
            pe = element_from_wire(text)
            if not isinstance(body, dict):
                raise ValueError(f"the value of {text!r} must be a JSON object")
            if not body or "." in body:
                out.members.add(pe)
            sub = cls._parse(body)
            if not sub.empty():
                out.children[pe] = sub
        return out
