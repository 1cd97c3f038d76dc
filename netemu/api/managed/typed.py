"""Values walked with their schema: structured-merge-diff's ``typed`` package (tofieldset.go,
compare.go, merge.go, remove.go) over plain JSON data.

- ``to_field_set``: the paths a value sets (what an applier claims);
- ``compare``: which paths an update added, modified and removed (what an updater takes);
- ``merge``: an applied configuration merged into the live object (maps by key, associative
  lists by their keys, sets by value, atomic lists and scalars replaced);
- ``remove_items``: a value without the paths of a set (pruning what an applier dropped).

Malformed values (an associative list item without its key, a duplicate key in an applied
configuration) raise ``TypedError`` with the path, as upstream's validation names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Any

from netemu.api import meta
from netemu.api.managed import fieldpath as fp
from netemu.api.managed.fieldpath import FieldSet, Path
from netemu.api.managed.schema import KEY_DEFAULTS, SCALAR, UNTYPED, Atom

MISSING: Any = object()
DEDUCED_MAP = Atom("map", elem=UNTYPED)
DEDUCED_LIST = Atom("list", elem=UNTYPED, atomic=True)


class TypedError(ValueError):
    """A value that does not fit its schema (the message starts with the path)."""


def _effective(atom: Atom, v: Any) -> Atom:
    """The atom that applies to ``v``: untyped values deduce theirs; a value of the wrong shape
    (or null) is handled as a leaf."""
    if atom.kind == "untyped":
        return DEDUCED_MAP if isinstance(v, dict) else DEDUCED_LIST if isinstance(v, list) else SCALAR
    if atom.kind in ("struct", "map") and isinstance(v, dict):
        return atom
    if atom.kind == "list" and isinstance(v, list):
        return atom
    return SCALAR


def item_element(atom: Atom, item: Any, i: int, where: Path = ()) -> fp.PathElement:
    """The path element of list item ``i``: its keys, its value, or its index."""
    if atom.list_type == "map":
        if not isinstance(item, dict):
            raise TypedError(f"{fp.path_str(where)}: element {i}: associative list with keys "
                             "has an element that is not a map")
        keys = {}
        for name in atom.keys:
            if item.get(name) is not None:
                keys[name] = item[name]
            elif name in KEY_DEFAULTS:
                keys[name] = KEY_DEFAULTS[name]
            else:
                raise TypedError(f"{fp.path_str(where)}: element {i}: associative list with keys has an "
                                 f'element that omits key field "{name}" (and doesn\'t have default value)')
        return fp.key(keys)
    if atom.list_type == "set":
        if isinstance(item, (dict, list)):
            raise TypedError(f"{fp.path_str(where)}: element {i}: a set holds only scalars")
        return fp.value(item)
    return fp.index(i)


def _items(atom: Atom, values: list, where: Path, allow_duplicates: bool) -> list[tuple[fp.PathElement, Any]]:
    out, seen = [], set()
    for i, item in enumerate(values):
        pe = item_element(atom, item, i, where)
        if pe in seen and not allow_duplicates:
            raise TypedError(f"{fp.path_str(where)}: duplicate entries for key {fp.element_str(pe)}")
        seen.add(pe)
        out.append((pe, item))
    return out


# -- ToFieldSet -------------------------------------------------------------------------------

def to_field_set(v: Any, atom: Atom) -> FieldSet:
    """Every path ``v`` sets: leaves, list items, empty or null fields, map entries."""
    out = FieldSet()
    _to_set(v, atom, (), out)
    return out


def _to_set(v: Any, atom: Atom, path: Path, out: FieldSet) -> None:
    atom = _effective(atom, v)
    if atom.kind == "scalar" or atom.atomic:
        out.insert(path)
        return
    if atom.kind == "list":
        for pe, item in _items(atom, v, path, allow_duplicates=False):
            _to_set(item, atom.elem, path + (pe,), out)
            out.insert(path + (pe,))
        return
    for name, val in v.items():
        child, declared = atom.child(name)
        sub = path + (fp.field(name),)
        _to_set(val, child, sub, out)
        if val is None or val == {} or not declared:
            out.insert(sub)


def ensure_named_fields_are_members(s: FieldSet, atom: Atom) -> FieldSet:
    """Upstream ``EnsureNamedFieldsAreMembers``: a struct field with children is a member too
    (so pruning it removes the field, not only what is below)."""
    out = FieldSet()
    out.members = set(s.members)
    for pe, sub in s.children.items():
        child = UNTYPED
        if pe[0] == "f" and atom.kind in ("struct", "map"):
            child, declared = atom.child(pe[1])
            if declared:
                out.members.add(pe)
        elif pe[0] in ("k", "v", "i") and atom.kind == "list" and atom.elem is not None:
            child = atom.elem
        out.children[pe] = ensure_named_fields_are_members(sub, child)
    return out


# -- Compare ----------------------------------------------------------------------------------

@dataclass
class Comparison:
    added: FieldSet = dc_field(default_factory=FieldSet)
    modified: FieldSet = dc_field(default_factory=FieldSet)
    removed: FieldSet = dc_field(default_factory=FieldSet)

    def exclude(self, fields: FieldSet) -> "Comparison":
        return Comparison(self.added.recursive_difference(fields), self.modified.recursive_difference(fields),
                          self.removed.recursive_difference(fields))

    def changed(self) -> FieldSet:
        return self.modified.union(self.added)


def compare(lhs: Any, rhs: Any, atom: Atom) -> Comparison:
    c = Comparison()
    _compare(lhs, rhs, atom, (), c)
    return c


def _leaf(lhs: Any, rhs: Any, path: Path, c: Comparison) -> None:
    if lhs is MISSING:
        c.added.insert(path)
    elif rhs is MISSING:
        c.removed.insert(path)
    elif lhs != rhs:
        c.modified.insert(path)


def _both_empty(lhs: Any, rhs: Any) -> bool:
    return lhs in (MISSING, None, {}, []) and rhs in (MISSING, None, {}, [])


def _add_all(v: Any, atom: Atom, parent: FieldSet, pe: fp.PathElement) -> None:
    """``v`` is new at ``parent``/``pe``: it and everything below it are added (what
    ``_compare`` finds for a missing left side, built without walking from the root)."""
    parent.members.add(pe)
    atom = _effective(atom, v)
    if atom.kind == "scalar" or atom.atomic or not v:
        return
    node = parent.children.setdefault(pe, FieldSet())
    if atom.kind == "list":
        items = _items(atom, v, (), allow_duplicates=True)
        seen: dict[fp.PathElement, int] = {}
        for sub, _ in items:
            seen[sub] = seen.get(sub, 0) + 1
        for sub, item in items:
            if seen[sub] == 1:
                _add_all(item, atom.elem, node, sub)
            else:
                node.members.add(sub)
        return
    for name, val in v.items():
        _add_all(val, atom.child(name)[0], node, fp.field(name))


def _compare(lhs: Any, rhs: Any, atom: Atom, path: Path, c: Comparison) -> None:
    if lhs is MISSING and path:
        _add_all(rhs, atom, c.added.node(path[:-1]), path[-1])
        return
    if lhs is not MISSING and rhs is not MISSING and type(lhs) is type(rhs) and lhs == rhs:
        return                         # the common case, decided in C: nothing below changed
    # null is an empty value of any shape (Go's nil slice or map), not a missing field
    la = _effective(atom, lhs) if lhs is not MISSING and lhs is not None else None
    ra = _effective(atom, rhs) if rhs is not MISSING and rhs is not None else None
    kind = ra or la or SCALAR
    if (la is not None and ra is not None and la is not ra) or kind.kind == "scalar" or kind.atomic \
            or _both_empty(lhs, rhs):
        _leaf(lhs, rhs, path, c)
        return
    if kind.kind == "list":
        _compare_lists(lhs if la else [], rhs if ra else [], kind, path, c)
    else:
        l_map, r_map = lhs if la else {}, rhs if ra else {}
        for name in list(l_map) + [k for k in r_map if k not in l_map]:
            child, _ = kind.child(name)
            _compare(l_map.get(name, MISSING), r_map.get(name, MISSING), child, path + (fp.field(name),), c)
    if lhs is MISSING:
        c.added.insert(path)
    elif rhs is MISSING:
        c.removed.insert(path)


def _compare_lists(lhs: list, rhs: list, atom: Atom, path: Path, c: Comparison) -> None:
    groups: dict[fp.PathElement, tuple[list, list]] = {}
    for side, values in ((0, lhs), (1, rhs)):
        for pe, item in _items(atom, values, path, allow_duplicates=True):
            groups.setdefault(pe, ([], []))[side].append(item)
    for pe, (ls, rs) in groups.items():
        sub = path + (pe,)
        if len(ls) <= 1 and len(rs) <= 1:
            _compare(ls[0] if ls else MISSING, rs[0] if rs else MISSING, atom.elem, sub, c)
        elif len(ls) >= 2 and len(rs) >= 2:
            if ls != rs:
                c.modified.insert(sub)
        elif len(ls) >= 2:
            if rs:
                _compare(MISSING, rs[0], atom.elem, sub, c)
            c.removed.insert(sub)
        else:
            if ls:
                _compare(ls[0], MISSING, atom.elem, sub, c)
            c.added.insert(sub)


# -- Merge ------------------------------------------------------------------------------------

def merge(lhs: Any, rhs: Any, atom: Atom) -> Any:
    """``rhs`` (an applied configuration) merged into ``lhs`` (the live object); both kept."""
    out = _merge(lhs, rhs, atom, ())
    return None if out is MISSING else out


def _merge(lhs: Any, rhs: Any, atom: Atom, path: Path) -> Any:
    if rhs is MISSING:
        return meta.json_copy(lhs)
    ra = _effective(atom, rhs)
    la = _effective(atom, lhs) if lhs is not MISSING else ra
    if la is not ra or ra.kind == "scalar" or ra.atomic or _both_empty(lhs, rhs):
        if ra.kind == "list" and not ra.atomic:
            _items(ra, rhs, path, allow_duplicates=False)        # a bad applied list is an error
        return meta.json_copy(rhs)
    if ra.kind == "list":
        return _merge_lists(lhs if lhs is not MISSING else [], rhs, ra, path)
    l_map = lhs if lhs is not MISSING else {}
    out = {}
    for name in list(l_map) + [k for k in rhs if k not in l_map]:
        child, _ = ra.child(name)
        merged = _merge(l_map.get(name, MISSING), rhs.get(name, MISSING), child, path + (fp.field(name),))
        if merged is not MISSING:
            out[name] = merged
    return out


def _merge_lists(lhs: list, rhs: list, atom: Atom, path: Path) -> list:
    """Upstream's order: the live items in place, the applied items in their order, an
    applied item that is also live taking the place of the next shared item."""
    r_items = _items(atom, rhs, path, allow_duplicates=False)
    l_items = _items(atom, lhs, path, allow_duplicates=True)
    r_index = dict(r_items)
    l_index: dict[fp.PathElement, Any] = {}
    for pe, item in l_items:
        l_index[pe] = MISSING if pe in l_index else item     # duplicates merge as absent
    shared = [pe for pe, _ in r_items if pe in l_index]
    out, done = [], set()

    def take(pe: fp.PathElement, lv: Any, rv: Any) -> None:
        merged = _merge(lv, rv, atom.elem, path + (pe,))
        if merged is not MISSING:
            out.append(merged)

    li = ri = 0
    next_shared = shared.pop(0) if shared else None
    while li < len(l_items) or ri < len(r_items):
        if li < len(l_items) and ri < len(r_items):
            pe = l_items[li][0]
            if pe == r_items[ri][0]:
                done.add(pe)
                take(pe, l_index.get(pe, MISSING), r_index[pe])
                li, ri = li + 1, ri + 1
                next_shared = shared.pop(0) if shared else None
                continue
            if pe in r_index and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(l_items):
            pe, item = l_items[li]
            if pe not in r_index:
                take(pe, item, MISSING)
                li += 1
                continue
            if pe in done:
                li += 1
        if ri < len(r_items):
            pe = r_items[ri][0]
            done.add(pe)
            take(pe, l_index.get(pe, MISSING), r_index[pe])
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop(0) if shared else None
    return out


# -- RemoveItems ------------------------------------------------------------------------------

def remove_items(v: Any, fields: FieldSet, atom: Atom) -> Any:
    """``v`` without the paths in ``fields`` (a member removes its whole subtree); a map or
    list left empty becomes null, as upstream's walker leaves it."""
    atom = _effective(atom, v)
    if atom.kind == "scalar" or atom.atomic or not v:
        return meta.json_copy(v)
    if atom.kind == "list":
        out = []
        for i, item in enumerate(v):
            pe = item_element(atom, item, i)
            if pe in fields.members:
                continue
            sub = fields.children.get(pe)
            out.append(remove_items(item, sub, atom.elem) if sub is not None else meta.json_copy(item))
        return out or None
    out_map = {}
    for name, val in v.items():
        pe = fp.field(name)
        if pe in fields.members:
            continue
        sub = fields.children.get(pe)
        out_map[name] = remove_items(val, sub, atom.child(name)[0]) if sub is not None else meta.json_copy(val)
    return out_map or None

