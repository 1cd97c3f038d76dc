"""Field ownership (server-side apply and managedFields), pure.

The merge cases are ported from sigs.k8s.io/structured-merge-diff at commit 15d0754
(merge/leaf_test.go, merge/set_test.go, merge/multiple_appliers_test.go, merge/nested_test.go):
the same operations on the same schemas must give the same object and the same owners. The
rest checks the FieldsV1 wire form, the kinds' list semantics (containers by name, ports by
containerPort+protocol) and the conflict Status that kubectl turns into its message.
"""

from __future__ import annotations

import pytest
import yaml

from netemu.api import errors
from netemu.api.managed import entries, schema, typed, updater
from netemu.api.managed import fieldpath as fp
from netemu.api.managed.fieldpath import FieldSet, path
from netemu.api.managed.schema import SCALAR, list_of, struct
from netemu.api.managed.updater import ManagerKey
from netemu.apiserver import fieldmanager

LEAF = struct(numeric=SCALAR, string=SCALAR, bool=SCALAR)
SETS = struct(list=list_of(SCALAR, "set"))
KEYED = struct(list=list_of(struct(name=SCALAR, value=SCALAR), "map", ("name",)))
NOTHING = FieldSet()


class State:
    """Upstream's test fixture: a live object and its managers, driven by Apply and Update."""

    def __init__(self, atom):
        self.atom, self.live, self.managers = atom, {}, {}

    def apply(self, manager: str, doc: str, force: bool = False) -> None:
        self.live, self.managers = updater.apply(self.live, yaml.safe_load(doc), self.atom, self.managers,
                                                 ManagerKey(manager, "Apply"), force, NOTHING)

    def update(self, manager: str, doc: str) -> None:
        new = yaml.safe_load(doc)
        self.managers, _ = updater.update(self.live, new, self.atom, self.managers,
                                          ManagerKey(manager, "Update"), NOTHING)
        self.live = new

    def owners(self) -> dict[str, list[str]]:
        return {k.manager: [fp.path_str(p) for p in s.paths()] for k, s in self.managers.items()}


# -- leaf_test.go ---------------------------------------------------------------------------------

def test_leaf_apply_twice():
    s = State(LEAF)
    s.apply("default", "{numeric: 1, string: string}")
    s.apply("default", "{numeric: 2, string: string, bool: false}")
    assert s.live == {"numeric": 2, "string": "string", "bool": False}
    assert s.owners() == {"default": [".bool", ".numeric", ".string"]}


def test_leaf_apply_update_apply_no_conflict():
    s = State(LEAF)
    s.apply("default", "{numeric: 1, string: string}")
    s.update("controller", "{numeric: 1, string: string, bool: true}")
    s.apply("default", "{numeric: 2, string: string}")
    assert s.live == {"numeric": 2, "string": "string", "bool": True}
    assert s.owners() == {"default": [".numeric", ".string"], "controller": [".bool"]}


def test_leaf_apply_update_apply_with_conflict_then_force():
    s = State(LEAF)
    s.apply("default", "{numeric: 1, string: string}")
    s.update("controller", "{numeric: 1, string: controller string, bool: true}")
    with pytest.raises(updater.Conflicts) as exc:
        s.apply("default", "{numeric: 2, string: user string}")
    assert [(k.manager, fp.path_str(p)) for k, p in exc.value.conflicts] == [("controller", ".string")]
    assert s.live["string"] == "controller string"                  # a conflict changes nothing
    s.apply("default", "{numeric: 2, string: user string}", force=True)
    assert s.live == {"numeric": 2, "string": "user string", "bool": True}
    assert s.owners() == {"default": [".numeric", ".string"], "controller": [".bool"]}


def test_leaf_apply_same_value_as_other_applier_shares_ownership():
    s = State(LEAF)
    s.apply("one", "{numeric: 1}")
    s.apply("two", "{numeric: 1}")                                  # same value: no conflict
    assert s.owners() == {"one": [".numeric"], "two": [".numeric"]}
    s.apply("one", "{string: x}")                                   # one lets go: two keeps it
    assert s.live == {"numeric": 1, "string": "x"}


# -- set_test.go ----------------------------------------------------------------------------------

@pytest.mark.parametrize("ops, live, owners", [
    ([("apply", "default", "list: [a, c]"), ("apply", "default", "list: [a, b, c, d]")],
     ["a", "b", "c", "d"], {"default": ["a", "b", "c", "d"]}),
    ([("apply", "default", "list: [a, c]"), ("update", "controller", "list: [a, b, c, d]"),
      ("apply", "default", "list: [a, aprime, c, cprime]")],
     ["a", "b", "aprime", "c", "d", "cprime"],
     {"default": ["a", "aprime", "c", "cprime"], "controller": ["b", "d"]}),
    ([("apply", "default", "list: [a, c]"), ("update", "controller", "list: [a, b, c, d]"),
      ("apply", "default", "list: [a, b, c]")],
     ["a", "b", "c", "d"], {"default": ["a", "b", "c"], "controller": ["b", "d"]}),
    ([("apply", "default", "list: [a, b, c, d]"), ("apply", "default", "list: [a, d, c, b]")],
     ["a", "d", "c", "b"], {"default": ["a", "b", "c", "d"]}),
    ([("apply", "default", "list: [a, b, c, d]"), ("update", "controller", "list: [a, d, c, b]"),
      ("apply", "default", "list: [a, b, c, d]")],
     ["a", "b", "c", "d"], {"default": ["a", "b", "c", "d"]}),
    ([("apply", "default", "list: [a, b, c, d]"), ("apply", "default", "list: [a, c]")],
     ["a", "c"], {"default": ["a", "c"]}),
], ids=["apply_twice", "apply_update_apply_no_overlap", "apply_update_apply_with_overlap",
        "apply_twice_reorder", "apply_update_apply_reorder", "apply_twice_remove"])
def test_sets(ops, live, owners):
    s = State(SETS)
    for op, manager, doc in ops:
        getattr(s, op)(manager, doc)
    assert s.live == {"list": live}
    want = {m: sorted(f'.list[="{v}"]' for v in values) for m, values in owners.items()}
    assert {m: sorted(p) for m, p in s.owners().items()} == want


# -- multiple_appliers_test.go: an associative list owned item by item ----------------------------

def test_multiple_appliers_remove_one_keep_one():
    s = State(KEYED)
    s.apply("apply-one", "list: [{name: a}, {name: b}, {name: c}]")
    s.apply("apply-two", "list: [{name: c}, {name: d}]")
    s.apply("apply-one", "list: [{name: a}]")
    assert s.live == {"list": [{"name": "a"}, {"name": "c"}, {"name": "d"}]}
    assert s.owners() == {
        "apply-one": ['.list[name="a"]', '.list[name="a"].name'],
        "apply-two": ['.list[name="c"]', '.list[name="c"].name', '.list[name="d"]', '.list[name="d"].name']}


def test_multiple_appliers_conflict_on_an_item_field():
    s = State(KEYED)
    s.apply("one", "list: [{name: a, value: '1'}]")
    with pytest.raises(updater.Conflicts) as exc:
        s.apply("two", "list: [{name: a, value: '2'}]")
    assert [fp.path_str(p) for _, p in exc.value.conflicts] == ['.list[name="a"].value']
    s.apply("two", "list: [{name: a, value: '2'}]", force=True)
    assert s.live == {"list": [{"name": "a", "value": "2"}]}
    assert s.owners()["one"] == ['.list[name="a"]', '.list[name="a"].name']


def test_updater_owned_field_survives_the_appliers_removal():
    """A field an applier stops applying stays when an updater changed it since (upstream
    addBackDanglingItems / addBackOwnedItems)."""
    s = State(LEAF)
    s.apply("default", "{numeric: 1, string: a}")
    s.update("controller", "{numeric: 1, string: b}")
    s.apply("default", "{numeric: 1}")
    assert s.live == {"numeric": 1, "string": "b"}
    assert s.owners() == {"default": [".numeric"], "controller": [".string"]}


# -- the kinds' own schemas --------------------------------------------------------------------

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP}]
"""


def test_deployment_field_set_uses_upstream_list_keys():
    fields = typed.to_field_set(yaml.safe_load(DEPLOYMENT), schema.for_kind("Deployment")).to_fields_v1()
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert set(container["f:ports"]) == {'k:{"containerPort":80,"protocol":"TCP"}',
                                         'k:{"containerPort":53,"protocol":"UDP"}'}
    assert container["."] == {} and container["f:image"] == {}
    assert fields["f:spec"]["f:selector"] == {}                    # LabelSelector is atomic
    assert fields["f:metadata"]["f:labels"] == {"f:app": {}}


def test_fields_v1_round_trip_and_path_strings():
    doc = {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
           "f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}},
                      "f:podCIDRs": {'v:"10.0.0.0/24"': {}}, "f:args": {"i:0": {}}}}
    parsed = FieldSet.from_fields_v1(doc)
    assert parsed.to_fields_v1() == doc
    assert parsed.has(path("metadata", "labels")) and not parsed.has(path("metadata"))
    assert [fp.path_str(p) for p in parsed.paths()] == [
        ".metadata.labels", ".metadata.labels.app", ".spec.args[0]", '.spec.podCIDRs[="10.0.0.0/24"]',
        '.spec.ports[port=80,protocol="TCP"]', '.spec.ports[port=80,protocol="TCP"].port']
    for bad in ({"x:y": {}}, {"f:a": []}, {'k:[1]': {}}, []):
        with pytest.raises(ValueError):
            FieldSet.from_fields_v1(bad)


def test_applied_list_without_its_key_or_with_a_duplicate_is_an_error():
    atom = schema.for_kind("Deployment")
    no_name = {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}
    with pytest.raises(typed.TypedError, match='omits key field "name"'):
        updater.apply({}, no_name, atom, {}, ManagerKey("m", "Apply"), False, NOTHING)
    twice = {"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}
    with pytest.raises(typed.TypedError, match="duplicate entries for key"):
        updater.apply({}, twice, atom, {}, ManagerKey("m", "Apply"), False, NOTHING)


def test_conflict_status_is_upstreams():
    one = fieldmanager.conflict_error([(ManagerKey("kubectl-client-side-apply", "Update"),
                                        path("spec", "replicas"))], "apps/v1")
    assert one.code == 409 and one.reason == "Conflict"
    assert one.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using '
                           "apps/v1: .spec.replicas")
    assert one.details["causes"] == [{"reason": "FieldManagerConflict", "field": ".spec.replicas",
                                      "message": 'conflict with "kubectl-client-side-apply" using apps/v1'}]
    two = fieldmanager.conflict_error([(ManagerKey("b", "Apply"), path("x")), (ManagerKey("a", "Apply"), path("y")),
                                       (ManagerKey("a", "Apply"), path("z"))], "v1")
    assert two.message == 'Apply failed with 3 conflicts: conflicts with "a":\n- .y\n- .z\nconflicts with "b":\n- .x'


def test_manager_names_are_validated():
    assert fieldmanager.manager_name(None, "kubectl/v1.32.0 (linux/amd64)", apply=False) == "kubectl"
    with pytest.raises(errors.Invalid, match="fieldManager: Required value"):
        fieldmanager.manager_name("", "kubectl/v1.32", apply=True)
    with pytest.raises(errors.Invalid, match="Too long"):
        fieldmanager.manager_name("m" * 129, None, apply=False)
    with pytest.raises(errors.Invalid, match="invalid character"):
        fieldmanager.manager_name("a\x00b", None, apply=True)


def test_update_managers_are_capped_and_sorted():
    managed = entries.Managed()
    for i in range(12):
        key = ManagerKey(f"m{i:02}", "Update")
        managed.fields[key] = FieldSet.of(path("data", f"k{i}"))
        managed.times[key] = f"2026-01-01T00:00:{i:02}Z"
    managed.fields[ManagerKey("applier", "Apply")] = FieldSet.of(path("data", "a"))
    out = entries.encode(managed, "v1")
    # upstream capManagersManager: the oldest merged until 10 are left, into a new bucket
    assert [e["manager"] for e in out] == ["applier", "ancient-changes"] + [f"m{i:02}" for i in range(2, 12)]
    assert set(out[1]["fieldsV1"]["f:data"]) == {"f:k0", "f:k1"}
    assert out[1]["time"] == "2026-01-01T00:00:01Z"
