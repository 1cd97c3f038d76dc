"""Namespace lifecycle as upstream: Terminating, the namespace controller empties the namespace,
reports its progress in status conditions (upstream's reasons and messages, ported from
pkg/controller/namespace/deletion/status_condition_utils.go at v1.32), finalizes, and the API
server removes it. The controller runs against an in-process API server."""

from __future__ import annotations

import asyncio

import pytest

from netemu.api import errors, kinds
from netemu.controllers import namespace as nsc
from netemu.controllers.options import Settings
from netemu.controllers.runtime import Informers
from netemu.testing.apiserver import api_server

NS = kinds.by_resource("", "v1", "namespaces")
CM = kinds.by_resource("", "v1", "configmaps")
PODS = kinds.by_resource("", "v1", "pods")


def test_conditions_word_progress_like_upstream():
    left = nsc.Remaining()
    left.add(PODS, [{"metadata": {"name": "p"}}])
    left.add(CM, [{"metadata": {"name": "a", "finalizers": ["example.com/hold"]}},
                  {"metadata": {"name": "b", "finalizers": ["example.com/hold"]}}])
    out = nsc.conditions(left)
    assert out["NamespaceContentRemaining"] == (
        "True", "SomeResourcesRemain",
        "Some resources are remaining: configmaps. has 2 resource instances, pods. has 1 resource instances")
    assert out["NamespaceFinalizersRemaining"] == (
        "True", "SomeFinalizerRemain", "Some finalizers are remaining: example.com/hold in 2 resource instances")
    assert out["NamespaceDeletionContentFailure"] == (
        "False", "ContentDeleted", "All content successfully deleted, may be waiting on finalization")
    failed = nsc.Remaining(errors=["pods.: boom"])
    assert nsc.conditions(failed)["NamespaceDeletionContentFailure"] == (
        "True", "ContentDeletionFailed", "Failed to delete all resource types, 1 remaining: pods.: boom")
    assert all(s == "False" for s, _, _ in nsc.conditions(nsc.Remaining()).values())


def test_merge_keeps_transition_time_unless_status_flips():
    first = nsc.merge_conditions([], nsc.conditions(nsc.Remaining()), "T1")
    assert [c["type"] for c in first] == list(nsc.CONDITION_TYPES)
    assert nsc.merge_conditions(first, nsc.conditions(nsc.Remaining()), "T2") is None
    left = nsc.Remaining()
    left.add(PODS, [{"metadata": {"name": "p"}}])
    second = {c["type"]: c for c in nsc.merge_conditions(first, nsc.conditions(left), "T3")}
    assert second["NamespaceContentRemaining"]["lastTransitionTime"] == "T3"
    assert second["NamespaceDeletionDiscoveryFailure"]["lastTransitionTime"] == "T1"


@pytest.fixture
def quick_controller(monkeypatch):
    monkeypatch.setattr(nsc, "DELETION_GRACE", 0.0)
    monkeypatch.setattr(nsc, "RETRY", 0.1)


def _start_controller(c, stop: asyncio.Event) -> list:
    informers = Informers(c)
    ctrl = nsc.NamespaceController(c, informers, Settings(), None)
    ctrl.setup()
    return informers.start(stop) + [asyncio.ensure_future(ctrl.run(stop))]


async def _gone(c, name: str, failure: str) -> None:
    for _ in range(200):
        try:
            await c.get(NS, name)
        except errors.NotFound:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(failure)


def test_controller_empties_reports_and_removes_the_namespace(tmp_path, quick_controller):

    async def main():
        async with api_server(tmp_path) as srv:
            c = srv.client
            await c.create(NS, {"metadata": {"name": "team"}})
            await c.create(CM, {"metadata": {"name": "x", "namespace": "team"}})
            held = {"metadata": {"name": "held", "namespace": "team", "finalizers": ["example.com/hold"]}}
            await c.create(CM, held)
            pod = {"metadata": {"name": "p", "namespace": "team"},
                   "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}
            await c.create(PODS, pod)
            stop = asyncio.Event()
            tasks = _start_controller(c, stop)
            try:
                await c.delete(NS, "team")

                async def conditions_say(ctype, text):
                    for _ in range(100):
                        ns = await c.get(NS, "team")
                        for cond in (ns.get("status") or {}).get("conditions") or []:
                            if cond["type"] == ctype and text in cond["message"]:
                                return ns
                        await asyncio.sleep(0.05)
                    raise AssertionError(f"no {ctype} condition saying {text!r}: {ns.get('status')}")
                ns = await conditions_say("NamespaceContentRemaining",
                                          "configmaps. has 1 resource instances, pods. has 1 resource instances")
                await conditions_say("NamespaceFinalizersRemaining", "example.com/hold in 1 resource instances")
                assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
                assert [o["metadata"]["name"] for o in (await c.list(CM, "team")).items] == ["held"]
                assert (await c.get(PODS, "p", "team"))["metadata"]["deletionTimestamp"]   # stopping
                fin = await c.get(CM, "held", "team")
                fin["metadata"]["finalizers"] = []
                await c.update(CM, fin)
                await c.delete(PODS, "p", "team", grace_period_seconds=0)       # the kubelet's last word
                await _gone(c, "team", "namespace not removed once empty")
            finally:
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
    asyncio.run(asyncio.wait_for(main(), 60))


def test_finalize_checks_names_and_is_put_only(tmp_path):
    async def main():
        async with api_server(tmp_path) as srv:
            c = srv.client
            ns = await c.create(NS, {"metadata": {"name": "team"}})
            ns["spec"]["finalizers"] = ["not a name!"]
            with pytest.raises(errors.Invalid):
                await c.update(NS, ns, subresource="finalize")
            with pytest.raises(errors.MethodNotAllowed):
                await c.get(NS, "team", subresource="finalize")
            ns["spec"]["finalizers"] = []                    # not deleting: finalize only empties the list
            out = await c.update(NS, {**ns, "metadata": {"name": "team"}}, subresource="finalize")
            assert out["spec"]["finalizers"] == [] and out["status"]["phase"] == "Active"
    asyncio.run(asyncio.wait_for(main(), 60))


CRDS = kinds.by_resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
CRD = {"metadata": {"name": "gadgets.nslife.example.com"},
       "spec": {"group": "nslife.example.com", "scope": "Namespaced",
                "names": {"plural": "gadgets", "kind": "Gadget"},
                "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_the_controller_deletes_custom_resources_too(tmp_path, quick_controller):

    async def main():
        async with api_server(tmp_path) as srv:
            c = srv.client
            await c.create(CRDS, CRD)
            gadgets = kinds.by_resource("nslife.example.com", "v1", "gadgets")
            assert gadgets in nsc.deletable_kinds()
            await c.create(NS, {"metadata": {"name": "lab"}})
            await c.create(gadgets, {"apiVersion": "nslife.example.com/v1", "kind": "Gadget",
                                     "metadata": {"name": "g", "namespace": "lab"}, "size": 3})
            stop = asyncio.Event()
            tasks = _start_controller(c, stop)
            try:
                await c.delete(NS, "lab")
                await _gone(c, "lab", "namespace with a custom resource not removed")
                assert (await c.list(gadgets)).items == []
            finally:
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                kinds.register_custom(CRD["metadata"]["name"], ())
    asyncio.run(asyncio.wait_for(main(), 60))
