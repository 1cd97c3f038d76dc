"""Which pod and slice changes make the EndpointSlice controller sync a Service, and when.

The trigger rules are upstream's (k8s.io/endpointslice util/controller_utils.go and
pkg/controller/endpointslice/endpointslice_controller.go, kubernetes/kubernetes 008b365 /
003e862); TestDetermineNeededServiceUpdates' table is ported below. The controller tests feed
real Informers watch events and look at the work queue, with no API server.
"""

from __future__ import annotations

import argparse
import asyncio
import copy

import pytest

from netemu.client.informer import Informer
from netemu.controllers import endpoint_triggers as triggers
from netemu.controllers import options
from netemu.controllers.endpoints_loop import EndpointSliceController
from netemu.controllers.runtime import rt


def pod(name="p", rv="1", labels=None, ip=None, ready=False, deleting=False, phase="Pending", **spec):
    p = {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "uid": f"u-{name}",
                      "labels": dict(labels if labels is not None else {"app": "web"})},
         "spec": {"nodeName": "n1", **spec}, "status": {"phase": phase, "conditions": []}}
    if ip:
        p["status"].update(podIP=ip, podIPs=[{"ip": ip}])
    if ready:
        p["status"]["conditions"].append({"type": "Ready", "status": "True"})
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return p


def bump(p, **changes):
    """The same pod, one write later, with ``changes`` applied by ``pod``'s rules."""
    new = pod(p["metadata"]["name"], str(int(p["metadata"]["resourceVersion"]) + 1),
              labels=changes.pop("labels", p["metadata"]["labels"]),
              ip=changes.pop("ip", p["status"].get("podIP")),
              ready=changes.pop("ready", any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in p["status"]["conditions"])),
              deleting=changes.pop("deleting", "deletionTimestamp" in p["metadata"]),
              phase=changes.pop("phase", p["status"]["phase"]))
    new["spec"].update(changes)
    return new


SELECTORS = {"ns/web": {"app": "web"}, "ns/all": {"tier": "x"}, "ns/other": {"app": "other"}}


def services_for(labels):
    return [k for k, sel in SELECTORS.items() if all(labels.get(a) == b for a, b in sel.items())]


@pytest.mark.parametrize("change, synced", [
    ({"ip": "10.0.0.5"}, True),                         # the sandbox's IP: a new endpoint
    ({"ready": True}, True),                            # readiness flips the endpoint's conditions
    ({"deleting": True}, True),                         # terminating
    ({"phase": "Failed"}, True),                        # leaves the slices (netemu's one addition)
    ({"phase": "Running"}, False),                      # containers started: same endpoint
    ({"priority": 5}, False),                           # a spec field no endpoint shows
    # hostname/subdomain count as a label change: only Services joined or left sync (none here;
    # upstream's determineNeededServiceUpdates, and a pod's hostname is immutable anyway)
    ({"hostname": "h0"}, False),
])
def test_only_changes_an_endpoint_shows_trigger_a_sync(change, synced):
    old = pod(ip="10.0.0.4") if "ip" not in change else pod()
    assert triggers.services_to_update(old, bump(old, **change), services_for) == ({"ns/web"} if synced else set())


def test_an_informer_resync_of_the_same_version_syncs_nothing():
    p = pod(ip="10.0.0.4")
    assert triggers.services_to_update(p, copy.deepcopy(p), services_for) == set()


def test_added_and_deleted_pods_sync_their_services():
    assert triggers.services_to_update(None, pod(labels={"app": "web", "tier": "x"}), services_for) == \
        {"ns/web", "ns/all"}


# upstream TestDetermineNeededServiceUpdates: (old services, new services, union, xor)
NEEDED = [
    ("no services changed", {"a", "b", "c"}, {"a", "b", "c"}, {"a", "b", "c"}, set()),
    ("all old services removed, new services added", {"a", "b", "c"}, {"d", "e", "f"},
     {"a", "b", "c", "d", "e", "f"}, {"a", "b", "c", "d", "e", "f"}),
    ("all old services removed, no new services added", {"a", "b", "c"}, set(), {"a", "b", "c"}, {"a", "b", "c"}),
    ("no old services, but new services added", set(), {"a", "b", "c"}, {"a", "b", "c"}, {"a", "b", "c"}),
    ("one service removed, one service added, two unchanged", {"a", "b", "c"}, {"b", "c", "d"},
     {"a", "b", "c", "d"}, {"a", "d"}),
    ("no services", set(), set(), set(), set()),
]


@pytest.mark.parametrize("name, before, after, union, xor", NEEDED, ids=[n[0] for n in NEEDED])
def test_label_changes_sync_the_union_or_the_difference_of_memberships(name, before, after, union, xor):
    """Labels changed alone: only the Services the pod joined or left; labels and the endpoint
    changed: every Service of both sets."""
    old = pod(labels={"set": "old"}, ip="10.0.0.4")

    def lookup(labels):
        return before if labels.get("set") == "old" else after
    assert triggers.services_to_update(old, bump(old, labels={"set": "new"}), lookup) == xor
    assert triggers.services_to_update(old, bump(old, labels={"set": "new"}, ready=True), lookup) == union


def test_slice_tracker_tells_own_writes_from_foreign_ones():
    t = triggers.SliceTracker()
    mine = {"metadata": {"name": "web-abc", "namespace": "ns", "resourceVersion": "7"}}
    assert t.should_sync(mine)                                   # never written by us: sync
    t.wrote(mine)
    assert not t.should_sync(mine)                               # our own write coming back
    assert not t.should_sync({"metadata": {**mine["metadata"], "resourceVersion": "6"}})
    assert t.should_sync({"metadata": {**mine["metadata"], "resourceVersion": "9"}})   # someone else's
    t.deleted(mine)
    assert t.handle_deletion(mine)                               # expected: no sync
    assert not t.handle_deletion(mine)                           # again: nobody expected it


# ---- the controller's handlers: real Informers fed watch events, the work queue observed ------

class _Informers(dict):
    def __missing__(self, kind):
        informer = self[kind] = Informer(None, rt(kind))
        return informer


def _controller(period=0.0):
    settings = options.Settings(endpointslice_updates_batch_period=period)
    ctrl = EndpointSliceController(None, _Informers(), settings, None)
    ctrl.setup()
    return ctrl


def _queued(ctrl):
    return set(ctrl.queue._queued), set(ctrl.queue._timers)


def _service(name="web", selector=None):
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": "1", "uid": "s1"},
            "spec": {"selector": selector or {"app": "web"}, "ports": [{"port": 80}]}}


def test_status_writes_that_do_not_change_the_endpoint_queue_nothing():
    async def body():
        ctrl = _controller()
        await ctrl.cache("Service").apply_event("ADDED", _service())
        ctrl.queue._queued.clear()
        ctrl.queue._queue = asyncio.Queue()
        p = pod(ip="10.0.0.4")
        await ctrl.cache("Pod").apply_event("ADDED", p)
        assert _queued(ctrl) == ({"ns/web"}, set())
        ctrl.queue._queued.clear()
        await ctrl.cache("Pod").apply_event("MODIFIED", bump(p, phase="Running"))
        assert _queued(ctrl) == (set(), set())
        await ctrl.cache("Pod").apply_event("MODIFIED", bump(bump(p, phase="Running"), ready=True))
        assert _queued(ctrl) == ({"ns/web"}, set())
        ctrl.queue.close()
    asyncio.run(body())


def test_batch_period_delays_pod_driven_syncs_and_joins_them():
    async def body():
        ctrl = _controller(period=0.3)
        await ctrl.cache("Service").apply_event("ADDED", _service())
        ctrl.queue._queued.clear()
        for i in range(5):
            await ctrl.cache("Pod").apply_event("ADDED", pod(f"p{i}", rv=str(10 + i), ip=f"10.0.0.{i + 1}"))
        assert _queued(ctrl) == (set(), {"ns/web"})             # one timer for the five pods
        await asyncio.sleep(0.45)
        assert _queued(ctrl) == ({"ns/web"}, set())
        ctrl.queue.close()
    asyncio.run(body())


def test_own_slice_writes_do_not_queue_foreign_ones_do_after_a_second():
    async def body():
        ctrl = _controller()
        s = {"metadata": {"name": "web-abc", "namespace": "ns", "resourceVersion": "20",
                          "labels": {"kubernetes.io/service-name": "web",
                                     "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
             "addressType": "IPv4", "endpoints": []}
        ctrl._wrote(s)
        await ctrl.cache("EndpointSlice").apply_event("ADDED", s)
        assert _queued(ctrl) == (set(), set())
        foreign = copy.deepcopy(s)
        foreign["metadata"]["resourceVersion"] = "21"
        loop = asyncio.get_running_loop()
        await ctrl.cache("EndpointSlice").apply_event("MODIFIED", foreign)
        assert _queued(ctrl) == (set(), {"ns/web"})
        assert ctrl.queue._timers["ns/web"].when() - loop.time() > 0.9
        ctrl.queue.close()
    asyncio.run(body())


def test_batch_period_flag_parses_like_upstream_and_is_bounded():
    p = argparse.ArgumentParser()
    options.add_arguments(p)
    assert options.settings_from_args(p.parse_args([])).endpointslice_updates_batch_period == 0
    assert options.settings_from_args(
        p.parse_args(["--endpointslice-updates-batch-period", "500ms"])).endpointslice_updates_batch_period == 0.5
    with pytest.raises(options.SettingsError, match="at most 1h"):
        options.settings_from_args(p.parse_args(["--endpointslice-updates-batch-period", "2h"]))
    with pytest.raises(SystemExit):
        p.parse_args(["--endpointslice-updates-batch-period", "-1s"])
