"""Custom resources through an in-process API server: server-side apply by the CRD's list types,
and a second API server in the process serving only its own store's CRDs."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from netemu.api import kinds
from netemu.testing.apiserver import api_server

CRDS = kinds.by_resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
PORTS = {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
         "items": {"type": "object", "required": ["name"], "properties": {
             "name": {"type": "string"}, "port": {"type": "integer"}}}}
CRD = {"metadata": {"name": "gizmos.ssa.example.com"},
       "spec": {"group": "ssa.example.com", "scope": "Namespaced", "names": {"plural": "gizmos", "kind": "Gizmo"},
                "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                    "type": "object", "properties": {"spec": {"type": "object", "properties": {
                        "ports": PORTS, "tags": {"type": "array", "items": {"type": "string"}}}}}}}}]}}


def test_server_side_apply_merges_list_maps_by_key_and_keeps_other_lists_atomic(tmp_path):
    async def main():
        async with api_server(tmp_path) as srv:
            await srv.client.create(CRDS, CRD)
            url = f"{srv.url}/apis/ssa.example.com/v1/namespaces/default/gizmos/g"
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {srv.token}"}) as http:
                async def apply(manager: str, spec: dict) -> aiohttp.ClientResponse:
                    body = {"apiVersion": "ssa.example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"},
                            "spec": spec}
                    return await http.patch(f"{url}?fieldManager={manager}", data=json.dumps(body),
                                            headers={"Content-Type": "application/apply-patch+yaml"})
                assert (await apply("a", {"ports": [{"name": "http", "port": 80}], "tags": ["a"]})).status == 201
                assert (await apply("b", {"ports": [{"name": "dns", "port": 53}]})).status == 200
                clash = await apply("b", {"tags": ["b"]})
                assert clash.status == 409
                assert (await clash.json())["message"] == 'Apply failed with 1 conflict: conflict with "a": .spec.tags'
                obj = await (await http.get(url)).json()
            assert obj["spec"] == {"ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53}],
                                   "tags": ["a"]}
            owned = {e["manager"]: e["fieldsV1"]["f:spec"] for e in obj["metadata"]["managedFields"]}
            assert list(owned["b"]["f:ports"]) == ['k:{"name":"dns"}']
            assert set(owned["a"]) == {"f:ports", "f:tags"}
        (tmp_path / "other").mkdir()
        async with api_server(tmp_path / "other") as other:    # its store holds no CRD: nothing served
            assert kinds.by_resource("ssa.example.com", "v1", "gizmos") is None
            assert "ssa.example.com" not in kinds.group_versions()
            assert other.url
    asyncio.run(asyncio.wait_for(main(), 60))
