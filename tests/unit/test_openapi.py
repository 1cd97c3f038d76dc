"""The OpenAPI documents: every served kind's schema (from the python client's models) with
its group-version-kind, upstream's definition names, references, patch metadata for client-side
apply, and the v2 form."""

from __future__ import annotations

from netemu.api import kinds
from netemu.apiserver import openapi


def test_v3_documents_have_every_kind_with_its_gvk_and_references():
    for group, versions in kinds.group_versions().items():
        for version in versions:
            doc = openapi.document(group, version)
            schemas = doc["components"]["schemas"]
            gvks = {s["x-kubernetes-group-version-kind"][0]["kind"] for s in schemas.values()
                    if "x-kubernetes-group-version-kind" in s}
            assert {rt.kind for rt in kinds.resources_in(group, version)} <= gvks
            for schema in schemas.values():                     # every reference resolves
                for prop in schema.get("properties", {}).values():
                    for ref in [r["$ref"] for r in (prop.get("allOf") or prop.get("items", {}).get("allOf") or [])]:
                        assert ref.removeprefix("#/components/schemas/") in schemas


def test_names_descriptions_and_patch_metadata_are_upstreams():
    schemas = openapi.document("", "v1")["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["description"].startswith("Pod is a collection of containers")
    assert pod["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name" and containers["x-kubernetes-patch-strategy"] == "merge"
    assert schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"]["x-kubernetes-patch-strategy"] == \
        "merge,retainKeys"
    assert "containers" in schemas["io.k8s.api.core.v1.PodSpec"]["required"]
    assert schemas["io.k8s.api.core.v1.ServicePort"]["properties"]["targetPort"]["x-kubernetes-int-or-string"]
    paths = openapi.document("apps", "v1")["paths"]
    patch = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}} in \
        patch["parameters"]


def test_v2_document_uses_definitions():
    doc = openapi.document_v2()
    spec = doc["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["template"]
    assert spec["$ref"] == "#/definitions/io.k8s.api.core.v1.PodTemplateSpec"
    assert doc["definitions"]["io.k8s.api.core.v1.ServicePort"]["properties"]["targetPort"]["format"] == "int-or-string"
