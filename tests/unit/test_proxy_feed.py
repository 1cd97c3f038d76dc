"""kube-proxy's feed lists and watches through cmd/kube-proxy's label selector (kubernetes v1.32
cmd/kube-proxy/app/server.go, ProxyServer.Run: ``!service.kubernetes.io/service-proxy-name,
!service.kubernetes.io/headless`` on both the Service and the EndpointSlice informer).

A Service or EndpointSlice with either label (any value, even "") never reaches the proxier; a
label added later reaches it as a deletion, and removing it as an addition -- what upstream's e2e
"should implement service.kubernetes.io/service-proxy-name" / ".../headless" rely on.
"""

from __future__ import annotations

import asyncio

from netemu.agent.proxy.feed import feed_proxier
from netemu.api import kinds
from netemu.testing.apiserver import api_server

SVC = kinds.by_kind("v1", "Service")
SLICE = kinds.by_kind("discovery.k8s.io/v1", "EndpointSlice")
PROXY_NAME = "service.kubernetes.io/service-proxy-name"
HEADLESS = "service.kubernetes.io/headless"


class Recorder:
    """The proxier contract feed_proxier drives, recording what reaches it."""

    def __init__(self):
        self.services: set[str] = set()
        self.slices: set[str] = set()
        self.synced = asyncio.Event()

    def on_service_add(self, svc):
        self.services.add(svc["metadata"]["name"])

    def on_service_update(self, old, new):
        self.services.add(new["metadata"]["name"])

    def on_service_delete(self, svc):
        self.services.discard(svc["metadata"]["name"])

    def on_slice_add(self, sl):
        self.slices.add(sl["metadata"]["name"])

    def on_slice_update(self, old, new):
        self.slices.add(new["metadata"]["name"])

    def on_slice_delete(self, sl):
        self.slices.discard(sl["metadata"]["name"])

    def on_services_synced(self):
        pass

    def on_slices_synced(self):
        pass

    def sync_loop(self):
        self.synced.set()


def service(name, labels=None):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}


def endpoint_slice(name, svc, labels=None):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/service-name": svc, **(labels or {})}},
            "addressType": "IPv4", "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}}]}


async def until(what, probe, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if probe():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_labelled_services_and_slices_never_reach_the_proxier(tmp_path):
    async def scenario():
        async with api_server(tmp_path) as srv:
            c = srv.client
            await c.create(SVC, service("plain"), "default")
            await c.create(SVC, service("other-proxy", {PROXY_NAME: "foo-bar"}), "default")
            await c.create(SVC, service("empty-value", {PROXY_NAME: ""}), "default")
            await c.create(SVC, service("headless-label", {HEADLESS: ""}), "default")
            await c.create(SLICE, endpoint_slice("plain-1", "plain"), "default")
            await c.create(SLICE, endpoint_slice("other-proxy-1", "other-proxy", {PROXY_NAME: "foo-bar"}), "default")
            await c.create(SLICE, endpoint_slice("headless-1", "x", {HEADLESS: ""}), "default")
            rec, stop = Recorder(), asyncio.Event()
            task = asyncio.ensure_future(feed_proxier(c, rec, stop))
            try:
                await asyncio.wait_for(rec.synced.wait(), 10)
                assert rec.services == {"kubernetes", "plain"}
                assert rec.slices == {"plain-1"}

                await c.patch(SVC, "plain", {"metadata": {"labels": {HEADLESS: ""}}}, "default")
                await until("the labelled Service to leave the proxier", lambda: "plain" not in rec.services)
                await c.patch(SVC, "plain", {"metadata": {"labels": {HEADLESS: None}}}, "default")
                await until("the unlabelled Service to come back", lambda: "plain" in rec.services)

                await c.patch(SLICE, "plain-1", {"metadata": {"labels": {PROXY_NAME: "foo-bar"}}}, "default")
                await until("the labelled slice to leave the proxier", lambda: "plain-1" not in rec.slices)
                await c.patch(SVC, "other-proxy", {"metadata": {"labels": {PROXY_NAME: None}}}, "default")
                await until("a Service that drops the label to arrive", lambda: "other-proxy" in rec.services)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
    asyncio.run(scenario())
