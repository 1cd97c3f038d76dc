"""Label and field selectors, as apimachinery's ``labels`` and ``fields`` packages read them.

Two label-selector forms meet here: the string of ``?labelSelector=`` (``a=b,c!=d,e in (x,y),
f notin (z),g,!h``) and the LabelSelector object of Deployments (matchLabels/matchExpressions).
Both become one ``Selector`` so the API server, controllers and kube-proxy match the same way.
A malformed string is the client's mistake: ``BadRequest`` (400), never a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from netemu.api import errors, field, validation as v
from netemu.api.field import Cause

EXISTS, NOT_EXISTS, EQ, NEQ, IN, NOTIN, GT, LT = "exists", "!", "=", "!=", "in", "notin", "gt", "lt"
EXPRESSION_OPS = {"In": IN, "NotIn": NOTIN, "Exists": EXISTS, "DoesNotExist": NOT_EXISTS}


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        val = labels.get(self.key)
        if self.op in (EQ, IN):
            return has and val in self.values
        if self.op in (NEQ, NOTIN):
            return not has or val not in self.values
        if self.op == EXISTS:
            return has
        if self.op == NOT_EXISTS:
            return not has
        try:
            num, bound = int(val or ""), int(self.values[0])
        except ValueError:
            return False
        return num > bound if self.op == GT else num < bound

    def __str__(self) -> str:
        if self.op == EXISTS:
            return self.key
        if self.op == NOT_EXISTS:
            return "!" + self.key
        if self.op in (IN, NOTIN):
            return f"{self.key} {self.op} ({','.join(sorted(self.values))})"
        op = {GT: ">", LT: "<"}.get(self.op, self.op)
        return f"{self.key}{op}{self.values[0]}"


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements. ``Selector(())`` matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def matches_object(self, obj: dict[str, Any]) -> bool:
        return self.matches((obj.get("metadata") or {}).get("labels"))

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _selector(reqs: Iterable[Requirement]) -> Selector:
    """Canonical form, as upstream's internalSelector: sorted by key, set values sorted."""
    canon = [Requirement(r.key, r.op, tuple(sorted(set(r.values))) if r.op in (IN, NOTIN) else r.values)
             for r in reqs]
    return Selector(tuple(sorted(canon, key=lambda r: r.key)))


class _Nothing(Selector):
    """What a nil LabelSelector means: matches no object (``labels.Nothing()``)."""

    def matches(self, labels: dict[str, str] | None) -> bool:
        return False


NOTHING = _Nothing()
EVERYTHING = Selector()


# -- the string form ----------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|<|>|[^\s,=!()<>]+)")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:  # only trailing whitespace can fail to match
            break
        out.append(m.group(1))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str | None:
        tok = self.peek()
        self.i += 1
        return tok

    def fail(self, found: str | None, expected: str) -> errors.BadRequest:
        return errors.BadRequest(f"unable to parse requirement: found '{found or ''}', expected: {expected}")

    def identifier(self, what: str) -> str:
        tok = self.take()
        if tok is None or tok in ("==", "!=", "=", "!", "(", ")", ",", "<", ">"):
            raise self.fail(tok, what)
        return tok

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return _checked(Requirement(self.identifier("identifier after '!'"), NOT_EXISTS))
        key = self.identifier("identifier")
        op = self.peek()
        if op in (None, ","):
            return _checked(Requirement(key, EXISTS))
        self.take()
        if op in ("=", "==", "!="):
            value = "" if self.peek() in (None, ",") else self.identifier("identifier")
            return _checked(Requirement(key, NEQ if op == "!=" else EQ, (value,)))
        if op in (IN, NOTIN):
            return _checked(Requirement(key, op, tuple(self.value_list())))
        if op in ("<", ">"):
            return _checked(Requirement(key, GT if op == ">" else LT, (self.identifier("integer"),)))
        raise self.fail(op, "=, !=, ==, in, notin, <, >")

    def value_list(self) -> list[str]:
        if self.take() != "(":
            raise self.fail(self.toks[self.i - 1] if self.i <= len(self.toks) else None, "'('")
        values: list[str] = []
        while True:
            tok = self.peek()
            if tok == ")":
                self.take()
                return values
            if tok == ",":
                self.take()
                if not values:
                    values.append("")
                continue
            values.append(self.identifier("identifier or ')'"))
            if self.peek() not in (",", ")"):
                raise self.fail(self.peek(), "',' or ')'")

    def parse(self) -> Selector:
        reqs = []
        while self.peek() is not None:
            reqs.append(self.requirement())
            tok = self.take()
            if tok not in (None, ","):
                raise self.fail(tok, "','")
            if tok == "," and self.peek() is None:
                raise self.fail(None, "identifier")
        return _selector(reqs)


def _checked(req: Requirement) -> Requirement:
    """Upstream ``NewRequirement``: key, values and operator arity are validated."""
    msgs = v.is_qualified_name(req.key)
    if msgs:
        raise errors.BadRequest(f"unable to parse requirement: {field.invalid('key', req.key, msgs[0])['message']}")
    if req.op in (IN, NOTIN) and not req.values:
        raise errors.BadRequest("unable to parse requirement: for 'in', 'notin' operators, values set can't be empty")
    for val in req.values:
        if req.op in (GT, LT):
            if not re.fullmatch(r"-?[0-9]+", val):
                raise errors.BadRequest(f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {val!r}")
        elif v.is_label_value(val):
            raise errors.BadRequest("unable to parse requirement: " +
                                    field.invalid("values", val, v.is_label_value(val)[0])["message"])
    return req


def parse(text: str | None) -> Selector:
    """Parse ``?labelSelector=``; empty or None selects everything."""
    if not text or not text.strip():
        return EVERYTHING
    return _Parser(text).parse()


def from_set(labels: dict[str, str] | None) -> Selector:
    """A Service's ``spec.selector`` map: every key equal (an empty map selects everything)."""
    return _selector(Requirement(k, EQ, (val,)) for k, val in (labels or {}).items())


# -- the LabelSelector object -------------------------------------------------------------------

def validate_label_selector(path: str, sel: Any) -> list[Cause]:
    """``ValidateLabelSelector`` for matchLabels / matchExpressions."""
    if sel is None:
        return []
    if not isinstance(sel, dict):
        return [field.type_invalid(path, sel, "must be an object")]
    errs = v.labels(f"{path}.matchLabels", sel.get("matchLabels"))
    exprs, lerrs = v.list_of_dicts(f"{path}.matchExpressions", sel.get("matchExpressions"))
    errs += lerrs
    for i, e in enumerate(exprs):
        p = f"{path}.matchExpressions[{i}]"
        op, values = e.get("operator"), e.get("values") or []
        if op in ("In", "NotIn") and not values:
            errs.append(field.required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            errs.append(field.forbidden(f"{p}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        elif op not in EXPRESSION_OPS:
            errs.append(field.invalid(f"{p}.operator", op, "not a valid selector operator"))
        key = e.get("key")
        errs += [field.required(f"{p}.key")] if not key else v.check(f"{p}.key", key, v.is_qualified_name)
        if not isinstance(values, list):
            errs.append(field.type_invalid(f"{p}.values", values, "must be a list of strings"))
        else:
            for j, val in enumerate(values):
                errs += v.check(f"{p}.values[{j}]", val, v.is_label_value)
    return errs


def from_label_selector(sel: dict[str, Any] | None) -> Selector:
    """``metav1.LabelSelectorAsSelector``: nil selects nothing, ``{}`` everything.

    Raises ``errors.Invalid`` for a malformed selector (validate first to get causes).
    """
    if sel is None:
        return NOTHING
    causes = validate_label_selector("selector", sel)
    if causes:
        raise errors.Invalid(causes[0]["message"], causes=causes)
    reqs = [Requirement(k, EQ, (val,)) for k, val in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        reqs.append(Requirement(e["key"], EXPRESSION_OPS[e["operator"]], tuple(e.get("values") or ())))
    return _selector(reqs)


def label_selector_matches(sel: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    return from_label_selector(sel).matches(labels)


def label_selector_to_string(sel: dict[str, Any] | None) -> str:
    """The string form (the Scale subresource's ``status.selector``, ``kubectl get -o wide``)."""
    return str(from_label_selector(sel)) if sel is not None else ""


# -- field selectors ------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldRequirement:
    path: str
    op: str          # "=" or "!="
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        got = field_value(obj, self.path)
        return (got == self.value) if self.op == EQ else (got != self.value)


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string a field selector compares: a missing field reads as ``""``, bools lower-case."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return cur if isinstance(cur, str) else str(cur)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur += text[i:i + 2]
            i += 2
            continue
        if ch == sep:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return parts


def _unescape(value: str) -> str:
    out, i = "", 0
    while i < len(value):
        if value[i] == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=!":
                raise errors.BadRequest(f"invalid field selector: invalid escape sequence in {value!r}")
            out += value[i + 1]
            i += 2
        else:
            out += value[i]
            i += 1
    return out


def parse_fields(text: str | None) -> tuple[FieldRequirement, ...]:
    """``?fieldSelector=``: ``path=value``, ``path==value``, ``path!=value``, comma-joined."""
    if not text or not text.strip():
        return ()
    reqs = []
    for part in _split_unescaped(text, ","):
        m = re.match(r"^\s*([A-Za-z0-9_.\-/]+)\s*(!=|==|=)(.*)$", part)
        if not m:
            raise errors.BadRequest(f"invalid selector: '{text}'; can't understand '{part}'")
        path, op, value = m.groups()
        reqs.append(FieldRequirement(path, NEQ if op == "!=" else EQ, _unescape(value)))
    return tuple(reqs)


def fields_match(reqs: Iterable[FieldRequirement], obj: dict[str, Any]) -> bool:
    return all(r.matches(obj) for r in reqs)
