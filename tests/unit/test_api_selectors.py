"""Label selectors (string and LabelSelector forms), field selectors, quantities."""

import pytest

from netemu.api import errors, quantity, selectors

LABELS = {"app": "web", "tier": "fe", "env": "prod", "n": "5"}


@pytest.mark.parametrize("text, expected", [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app!=web", False),
    ("app!=db", True),
    ("missing!=x", True),
    ("tier in (fe,be)", True),
    ("tier in (be)", False),
    ("tier notin (be, db)", True),
    ("tier notin (fe)", False),
    ("missing notin (x)", True),
    ("app", True),
    ("!app", False),
    ("!missing", True),
    ("app=web,tier in (fe),!missing,env", True),
    ("app=web , env = prod", True),
    ("app=web,env=dev", False),
    ("n>4", True),
    ("n<5", False),
    ("example.com/role=x", False),
    ("app=", False),
])
def test_label_selector_strings(text, expected):
    assert selectors.parse(text).matches(LABELS) is expected


def test_empty_value_matches_empty_label():
    assert selectors.parse("a=").matches({"a": ""})
    assert selectors.parse("a=,b").matches({"a": "", "b": "x"})


@pytest.mark.parametrize("text", [
    "app=web,", "=web", "app in web", "app in (a", "app in ()", "app web", "a b=c",
    "app=we b", "Bad_Key_!=x", "app=in valid", "n>x", "!", "app=(x)", "-bad=x",
    "x=" + "v" * 64,
])
def test_malformed_label_selectors_are_bad_requests(text):
    with pytest.raises(errors.BadRequest) as exc:
        selectors.parse(text)
    assert exc.value.code == 400


def test_selector_string_round_trip():
    sel = selectors.parse("tier in (fe,be),app=web,!x,env")
    assert str(sel) == "app=web,env,tier in (be,fe),!x"
    assert selectors.parse(str(sel)) == sel


def test_label_selector_object():
    sel = {"matchLabels": {"app": "web"},
           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                                {"key": "gone", "operator": "DoesNotExist"}]}
    assert selectors.label_selector_matches(sel, LABELS)
    assert not selectors.label_selector_matches(sel, {"app": "web", "tier": "db"})
    assert selectors.label_selector_to_string(sel) == "app=web,!gone,tier in (be,fe)"
    assert selectors.from_label_selector({}).matches({"anything": "x"})
    assert not selectors.from_label_selector(None).matches({})
    assert selectors.from_set({"app": "web"}).matches(LABELS)
    assert selectors.from_set({}).matches({})


def test_label_selector_object_validation_causes():
    bad = {"matchLabels": {"app": "-x"},
           "matchExpressions": [{"key": "a", "operator": "In", "values": []},
                                {"key": "b", "operator": "Exists", "values": ["v"]},
                                {"key": "c", "operator": "Near", "values": ["v"]}]}
    causes = {c["field"]: c["message"] for c in selectors.validate_label_selector("spec.selector", bad)}
    assert causes["spec.selector.matchExpressions[0].values"] == \
        "Required value: must be specified when `operator` is 'In' or 'NotIn'"
    assert causes["spec.selector.matchExpressions[1].values"].startswith("Forbidden: may not be specified")
    assert causes["spec.selector.matchExpressions[2].operator"] == 'Invalid value: "Near": not a valid selector operator'
    assert causes["spec.selector.matchLabels"].startswith('Invalid value: "-x": a valid label must be')
    with pytest.raises(errors.Invalid):
        selectors.from_label_selector(bad)


POD = {"metadata": {"name": "p1", "namespace": "ns1"}, "spec": {"nodeName": "n1", "hostNetwork": False},
       "status": {"phase": "Running"}}


@pytest.mark.parametrize("text, expected", [
    ("metadata.name=p1", True),
    ("metadata.name==p1", True),
    ("metadata.name!=p1", False),
    ("metadata.namespace=ns1,spec.nodeName=n1", True),
    ("spec.nodeName=", False),
    ("spec.nodeName!=", True),
    ("status.phase=Pending", False),
    ("status.podIP=", True),
    ("spec.hostNetwork=false", True),
    ("", True),
])
def test_field_selectors(text, expected):
    assert selectors.fields_match(selectors.parse_fields(text), POD) is expected


def test_field_selector_escapes_and_errors():
    obj = {"metadata": {"name": "a,b=c"}}
    assert selectors.fields_match(selectors.parse_fields(r"metadata.name=a\,b\=c"), obj)
    for bad in ("metadata.name", "=x", "metadata.name=x,junk", r"metadata.name=a\q"):
        with pytest.raises(errors.BadRequest):
            selectors.parse_fields(bad)


@pytest.mark.parametrize("text, value", [
    ("100m", 0.1), ("1.5", 1.5), ("128Mi", 128 * 2 ** 20), ("1G", 1e9), ("1e3", 1000.0),
    ("2Ki", 2048), ("0", 0), ("500u", 0.0005), ("1E", 1e18), (2, 2), (0.25, 0.25), ("+1", 1), ("1.5E-3", 0.0015),
])
def test_quantities(text, value):
    assert quantity.parse(text) == pytest.approx(value)


def test_quantity_integer_views_round_up():
    assert quantity.milli_value("0.1") == 100 and quantity.milli_value("1m") == 1
    assert quantity.milli_value("0.0001") == 1
    assert quantity.value("1Gi") == 2 ** 30 and quantity.value("1.5") == 2


@pytest.mark.parametrize("bad", ["", "abc", "1Qi", "1.2.3Mi", "Mi", None, True, [], "1 Mi", "1Kii"])
def test_bad_quantities(bad):
    with pytest.raises(ValueError):
        quantity.parse(bad)
