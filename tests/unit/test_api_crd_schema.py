"""Structural-schema validation, pruning and defaulting of custom resources, and CRD validation.

The pruning cases are ported from upstream's
staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning/algorithm_test.go
(kubernetes/kubernetes@04791b4906602ffda5ccf9bc4c84d3329f1d7080, TestPrune); the validation
messages are kube-openapi's (pkg/validation/errors/schema.go) as kubeOpenAPIResultToFieldErrors
turns them into field errors.
"""

from __future__ import annotations

import copy
import json

import pytest

from netemu.api import custom, errors, kinds, schema, schema_prune, strategy, validate_crd

S = {"type": "object", "properties": {"spec": {"type": "object", "required": ["image"], "properties": {
    "image": {"type": "string", "pattern": "^[a-z0-9./:-]+$", "minLength": 2, "maxLength": 20},
    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
    "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
    "tier": {"type": "string", "enum": ["frontend", "backend"]},
    "port": {"x-kubernetes-int-or-string": True},
    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "note": {"type": "string", "nullable": True},
    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "since": {"type": "string", "format": "date-time"},
    "address": {"type": "string", "format": "ipv4"},
}}}}


def messages(obj):
    return sorted(f"{c['field']}: {c['message']}" for c in schema.validate(S, obj))


def test_a_valid_object_has_no_errors():
    assert messages({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
                     "spec": {"image": "nginx:1", "replicas": 3, "ratio": 0.5, "tier": "backend", "port": "http",
                              "tags": ["a"], "labels": {"a": "b"}, "note": None, "extra": {"any": [1]},
                              "since": "2026-01-02T03:04:05Z", "address": "10.0.0.1"}}) == []


@pytest.mark.parametrize("spec,expected", [
    ({"image": "nginx", "replicas": 0},
     "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"),
    ({"image": "nginx", "replicas": 11},
     "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"),
    ({"image": "nginx", "replicas": "3"},
     'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"'),
    ({"image": "nginx", "ratio": 0},
     "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0"),
    ({"image": "nginx", "tier": "middle"},
     'spec.tier: Unsupported value: "middle": supported values: "frontend", "backend"'),
    ({"image": "Nginx"}, "spec.image: Invalid value: \"Nginx\": spec.image in body should match '^[a-z0-9./:-]+$'"),
    ({"image": "n"}, 'spec.image: Invalid value: "n": spec.image in body should be at least 2 chars long'),
    ({"image": "n" * 21}, "spec.image: Too long: must have at most 20 bytes"),
    ({}, "spec.image: Required value"),
    ({"image": "nginx", "port": 1.5},
     'spec.port: Invalid value: "number": spec.port in body must be of type integer,string: "number"'),
    ({"image": "nginx", "tags": []}, "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"),
    ({"image": "nginx", "tags": ["a", "b", "c"]}, "spec.tags: Too many: 3: must have at most 2 items"),
    ({"image": "nginx", "tags": [1]},
     'spec.tags[0]: Invalid value: "integer": spec.tags[0] in body must be of type string: "integer"'),
    ({"image": "nginx", "since": "yesterday"},
     'spec.since: Invalid value: "yesterday": spec.since in body must be of type date-time: "yesterday"'),
    ({"image": "nginx", "address": "10.0.0.300"},
     'spec.address: Invalid value: "10.0.0.300": spec.address in body must be of type ipv4: "10.0.0.300"'),
    ({"image": "nginx", "labels": {"a": 1}},
     'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"'),
])
def test_each_rule_fails_with_upstreams_message(spec, expected):
    assert messages({"spec": spec}) == [expected]


def test_list_type_map_items_are_unique_by_their_keys():
    sch = {"type": "object", "properties": {"ports": {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}}}
    errs = schema.validate(sch, {"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 8080}]})
    assert [f"{c['field']}: {c['message']}" for c in errs] == [
        'ports[1]: Duplicate value: map[string]interface {}{"name":"http"}']


def test_int_or_string_takes_both_and_nullable_takes_null():
    assert messages({"spec": {"image": "nginx", "port": 80, "note": None}}) == []
    assert messages({"spec": {"image": "nginx", "port": "http"}}) == []
    assert messages({"spec": {"image": "nginx", "tier": None}}) == [
        'spec.tier: Invalid value: "null": spec.tier in body must be of type string: "null"']


def prune(sch, obj):
    obj = json.loads(json.dumps(obj))
    pruned = sorted(schema_prune.prune(sch, obj))
    return obj, pruned


def test_prune_object_array_object_upstream_case():
    obj, pruned = prune({"properties": {"array": {"items": {"properties": {"a": {}, "c": {}}}},
                                        "specified": {"properties": {"a": {}, "c": {}}}}},
                        {"array": [{"a": 1}, {"b": 1}, {"a": 1, "b": 2, "c": 3}], "unspecified": {"a": 1},
                         "specified": {"a": 1, "b": 2, "c": 3}})
    assert obj == {"array": [{"a": 1}, {}, {"a": 1, "c": 3}], "specified": {"a": 1, "c": 3}}
    assert pruned == ["array[1].b", "array[2].b", "specified.b", "unspecified"]


def test_prune_nested_preserve_unknown_fields_upstream_case():
    sch = {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
        "alpha": {"type": "string"}, "beta": {"type": "number"},
        "pruning": {"type": "object", "properties": {
            "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "pruning": {"type": "object"}}},
        "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
            "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "pruning": {"type": "object"}}},
        "preservingAdditionalPropertiesKeyPruneValues": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"specified": {"type": "object"}}}}}}
    obj, pruned = prune(sch, {
        "unspecified": "bar", "alpha": "abc", "beta": 42.0, "unspecifiedObject": {"unspecified": "bar"},
        "pruning": {"unspecified": "bar", "unspecifiedObject": {"unspecified": "bar"}, "pruning": {"unspecified": "bar"},
                    "apiVersion": "unknown", "preserving": {"unspecified": "bar"}},
        "preserving": {"unspecified": "bar", "unspecifiedObject": {"unspecified": "bar"},
                       "pruning": {"unspecified": "bar"}, "preserving": {"unspecified": "bar"}},
        "preservingAdditionalPropertiesKeyPruneValues": {"foo": {"specified": {"unspecified": "bar"},
                                                                 "unspecified": "bar"}}})
    assert obj == {
        "unspecified": "bar", "alpha": "abc", "beta": 42.0, "unspecifiedObject": {"unspecified": "bar"},
        "pruning": {"pruning": {}, "preserving": {"unspecified": "bar"}},
        "preserving": {"unspecified": "bar", "unspecifiedObject": {"unspecified": "bar"}, "pruning": {},
                       "preserving": {"unspecified": "bar"}},
        "preservingAdditionalPropertiesKeyPruneValues": {"foo": {"specified": {}}}}
    assert pruned == ["preserving.pruning.unspecified",
                      "preservingAdditionalPropertiesKeyPruneValues.foo.specified.unspecified",
                      "preservingAdditionalPropertiesKeyPruneValues.foo.unspecified",
                      "pruning.apiVersion", "pruning.pruning.unspecified", "pruning.unspecified",
                      "pruning.unspecifiedObject"]


def test_prune_additional_properties_with_schema_upstream_case():
    obj, pruned = prune({"properties": {"a": {}, "c": {"additionalProperties": {"type": "integer"}}}},
                        {"a": 1, "b": 1, "c": {"a": 1, "b": 2, "c": {"a": 1}}})
    assert obj == {"a": 1, "c": {"a": 1, "b": 2, "c": {}}}
    assert pruned == ["b", "c.c.a"]


def test_the_roots_api_fields_are_never_pruned():
    obj, pruned = prune({"type": "object", "properties": {"spec": {"type": "object"}}},
                        {"apiVersion": "a/v1", "kind": "A", "metadata": {"name": "x"}, "spec": {}, "junk": 1})
    assert obj == {"apiVersion": "a/v1", "kind": "A", "metadata": {"name": "x"}, "spec": {}} and pruned == ["junk"]


def test_defaults_fill_missing_and_non_nullable_null_fields_in_nested_objects_and_items():
    sch = {"type": "object", "properties": {"spec": {"type": "object", "default": {}, "properties": {
        "replicas": {"type": "integer", "default": 1},
        "ports": {"type": "array", "items": {"type": "object", "properties": {
            "protocol": {"type": "string", "default": "TCP"}, "port": {"type": "integer"}}}},
        "note": {"type": "string", "nullable": True, "default": "x"}}}}}
    obj = {"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}], "note": None}}
    schema_prune.drop_nulls(sch, obj)
    schema_prune.apply_defaults(sch, obj)
    assert obj == {"spec": {"replicas": 1, "note": None,
                            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}}
    empty: dict = {}
    schema_prune.apply_defaults(sch, empty)
    assert empty == {"spec": {"replicas": 1, "note": "x"}}       # defaults inside a defaulted object too
    nulls = {"spec": {"replicas": None}}
    schema_prune.drop_nulls(sch, nulls)
    schema_prune.apply_defaults(sch, nulls)
    assert nulls["spec"]["replicas"] == 1


CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "webapps.demo.example.com"},
       "spec": {"group": "demo.example.com", "scope": "Namespaced",
                "names": {"plural": "webapps", "kind": "WebApp", "shortNames": ["wa"]},
                "versions": [{"name": "v1", "served": True, "storage": True,
                              "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                                      "statusReplicasPath": ".status.replicas"}},
                              "schema": {"openAPIV3Schema": {**S, "properties": {
                                  **S["properties"],
                                  "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}},
                             {"name": "v1beta1", "served": True, "storage": False,
                              "schema": {"openAPIV3Schema": {"type": "object",
                                                             "x-kubernetes-preserve-unknown-fields": True}}}]}}
CRDS = kinds.by_resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NOW = "2026-01-01T00:00:00Z"


def crd_errors(mutate):
    crd = copy.deepcopy(CRD)
    mutate(crd)
    with pytest.raises(errors.Invalid) as exc:
        strategy.prepare_create(CRDS, crd, now=NOW)
    return exc.value.status()["message"]


def test_a_crd_is_defaulted_and_established_on_create():
    out = strategy.prepare_create(CRDS, copy.deepcopy(CRD), now=NOW)
    assert out["spec"]["names"]["singular"] == "webapp" and out["spec"]["names"]["listKind"] == "WebAppList"
    assert out["spec"]["conversion"] == {"strategy": "None"}
    status = {c["type"]: c["status"] for c in out["status"]["conditions"]}
    assert status == {"NamesAccepted": "True", "Established": "True"}
    assert out["status"]["storedVersions"] == ["v1"] and out["metadata"]["generation"] == 1


@pytest.mark.parametrize("mutate,expected", [
    (lambda c: c["metadata"].update(name="wrong.demo.example.com"),
     'metadata.name: Invalid value: "wrong.demo.example.com": must be spec.names.plural+"."+spec.group'),
    (lambda c: c["spec"].update(scope="Global"),
     'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"'),
    (lambda c: c["spec"]["versions"][1].update(storage=True),
     "spec.versions: Invalid value: [\"v1\",\"v1beta1\"]: must have exactly one version marked as storage version"
     .replace('[\"v1\",\"v1beta1\"]', '[]string{"v1", "v1beta1"}')),
    (lambda c: c["spec"]["versions"][0].pop("schema"),
     "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].pop("type"),
     "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: "
     "must not be empty for specified object fields"),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
     ["replicas"].update(default=0),
     "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].default: Invalid value: 0: "
     "spec.replicas in body should be greater than or equal to 1"),
    (lambda c: c["spec"].update(preserveUnknownFields=True),
     "spec.preserveUnknownFields: Invalid value: true: cannot set to true"),
    (lambda c: c["spec"]["versions"][0]["subresources"]["scale"].update(specReplicasPath=".replicas"),
     'spec.versions[0].subresources.scale.specReplicasPath: Invalid value: ".replicas": '
     "should be a json path under .spec"),
])
def test_bad_crds_are_refused_with_upstreams_message(mutate, expected):
    assert expected in crd_errors(mutate)


def served_rt():
    crd = strategy.prepare_create(CRDS, copy.deepcopy(CRD), now=NOW)
    return {rt.version: rt for rt in custom.served(crd)}


def test_custom_resources_are_stored_under_the_storage_version_and_status_is_a_subresource():
    rts = served_rt()
    v1, beta = rts["v1"], rts["v1beta1"]
    assert v1.key("ns", "a") == beta.key("ns", "a") == "/registry/demo.example.com/webapps/ns/a"
    obj = custom.prepare_create(beta, {"metadata": {"name": "a", "namespace": "ns"},
                                       "spec": {"image": "x"}, "status": {"phase": "kept"}}, now=NOW)
    assert obj["apiVersion"] == "demo.example.com/v1" and obj["status"] == {"phase": "kept"}   # no subresource
    created = custom.prepare_create(v1, {"metadata": {"name": "a", "namespace": "ns"}, "spec": {"image": "nginx"},
                                         "status": {"phase": "dropped"}}, now=NOW)
    assert "status" not in created and created["spec"]["replicas"] == 1 and created["metadata"]["generation"] == 1
    created["metadata"]["resourceVersion"] = "5"
    status = custom.prepare_update(v1, created, {**created, "spec": {"image": "ignored"},
                                                 "status": {"phase": "Running"}}, subresource="status")
    assert status["spec"]["image"] == "nginx" and status["status"] == {"phase": "Running"}
    assert status["metadata"]["generation"] == 1                    # status writes never bump it
    main = custom.prepare_update(v1, status, {**status, "spec": {"image": "nginx2"}, "status": {}},
                                 subresource=None)
    assert main["status"] == {"phase": "Running"} and main["metadata"]["generation"] == 2
    same = custom.prepare_update(v1, main, copy.deepcopy(main), subresource=None)
    assert same["metadata"]["generation"] == 2
    with pytest.raises(errors.Invalid) as exc:
        custom.prepare_update(v1, main, {**main, "spec": {"image": "nginx", "replicas": 0}}, subresource=None)
    assert exc.value.status()["message"] == (
        'WebApp.demo.example.com "a" is invalid: spec.replicas: Invalid value: 0: '
        "spec.replicas in body should be greater than or equal to 1")


def test_a_crds_group_scope_and_stored_versions_stay():
    stored = strategy.prepare_create(CRDS, copy.deepcopy(CRD), now=NOW)
    stored["metadata"]["resourceVersion"] = "3"
    for mutate, expected in (
            (lambda c: c["spec"].update(scope="Cluster"), 'spec.scope: Invalid value: "Cluster": field is immutable'),
            (lambda c: c["spec"].update(versions=[{**c["spec"]["versions"][1], "storage": True}]),
             'status.storedVersions[0]: Invalid value: "v1": must appear in spec.versions')):
        changed = copy.deepcopy(stored)
        mutate(changed)
        with pytest.raises(errors.Invalid) as exc:
            strategy.prepare_update(CRDS, stored, changed)
        assert expected in exc.value.status()["message"]
    renamed = copy.deepcopy(stored)
    renamed["spec"]["versions"][1]["storage"], renamed["spec"]["versions"][0]["storage"] = True, False
    updated = strategy.prepare_update(CRDS, stored, renamed)
    assert updated["status"]["storedVersions"] == ["v1", "v1beta1"] and updated["metadata"]["generation"] == 2


def test_reads_default_old_objects_and_rewrite_only_the_api_version():
    v1, beta = served_rt()["v1"], served_rt()["v1beta1"]
    stored = {"apiVersion": "demo.example.com/v1", "kind": "WebApp", "metadata": {"name": "old"},
              "spec": {"image": "nginx"}}                     # written before replicas had a default
    assert custom.as_served(v1, stored)["spec"] == {"image": "nginx", "replicas": 1}
    assert stored["spec"] == {"image": "nginx"}                 # the stored object is not touched
    assert custom.as_served(beta, stored) == {**stored, "apiVersion": "demo.example.com/v1beta1"}
