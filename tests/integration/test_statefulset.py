"""StatefulSets in a real ``netemu apiserver`` with its controllers, nodes from the fake kubelet
(netemu.testing.fakenodes), driven with real kubectl: ordered creation, scaling, a deleted pod
coming back under its name, rolling update order, ``kubectl rollout status/history/undo`` and the headless
Service's EndpointSlice hostnames that give web-0.nginx.<ns>.svc its DNS name."""

from __future__ import annotations

import asyncio
import json

import pytest

from netemu.controllers.kube import is_deleting, name_of, pod_is_ready
from netemu.controllers.runtime import rt
from netemu.testing.fakenodes import node_object
from tests.integration.test_controlplane import Cluster, eventually, namespace, run

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

MANIFEST = """
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: nginx}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers: [{name: nginx, image: "nginx:1", ports: [{name: web, containerPort: 80}]}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""


async def _live(c: Cluster, ns: str) -> dict[str, dict]:
    return {name_of(p): p for p in await c.pods(ns) if not is_deleting(p)}


async def _names(c: Cluster, ns: str, want: set[str], ready: bool = True) -> bool:
    live = await _live(c, ns)
    return set(live) == want and (not ready or all(pod_is_ready(p) for p in live.values()))


async def _apply(c: Cluster, ns: str, text: str) -> None:
    path = c.proc.state_dir / f"sts-{ns}.yaml"
    path.write_text(text)
    rc, out = await c.kubectl("apply", "-n", ns, "-f", str(path))
    assert rc == 0, out


def test_statefulset_lifecycle_with_kubectl(tmp_path):
    nodes = [node_object(f"n{i}", cpu="8") for i in range(2)]

    async def body(c: Cluster):
        ns = await namespace(c, "sts")
        c.kubelet.not_ready_pods.add(f"{ns}/web-0")     # web-0 stays unready: web-1 must not appear
        await _apply(c, ns, MANIFEST)
        await eventually(lambda: _names(c, ns, {"web-0"}, ready=False), what="web-0 only")
        await asyncio.sleep(1.0)
        assert set(await _live(c, ns)) == {"web-0"}
        await c.kubelet.set_pod_ready(ns, "web-0", True)
        rc, out = await c.kubectl("rollout", "status", "sts/web", "-n", ns, "--timeout=60s")
        # kubectl's words for a RollingUpdate with a partition (defaulted to 0, as upstream)
        assert rc == 0 and "partitioned roll out complete: 3 new pods have been updated" in out, out
        pods = await _live(c, ns)
        created = sorted(pods, key=lambda n: pods[n]["metadata"]["creationTimestamp"] + n)
        assert created == ["web-0", "web-1", "web-2"], created
        p1 = pods["web-1"]
        assert p1["spec"]["hostname"] == "web-1" and p1["spec"]["subdomain"] == "nginx"
        assert p1["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
        assert p1["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"

        rc, out = await c.kubectl("get", "sts", "-n", ns)
        assert rc == 0 and out.split("\n")[0].split() == ["NAME", "READY", "AGE"] and "3/3" in out, out

        # the headless Service's slice names each endpoint by the pod's hostname
        async def hostnames():
            slices = (await c.client.list(rt("EndpointSlice"), ns)).items
            got = {e["targetRef"]["name"]: e.get("hostname") for s in slices for e in s.get("endpoints") or []}
            return got if got == {f"web-{i}": f"web-{i}" for i in range(3)} else None
        await eventually(hostnames, what="endpoint hostnames")

        # a deleted pod comes back with its name
        old_uid = p1["metadata"]["uid"]
        rc, out = await c.kubectl("delete", "pod", "web-1", "-n", ns, "--wait=false")
        assert rc == 0, out

        async def replaced():
            p = (await _live(c, ns)).get("web-1")
            return p is not None and p["metadata"]["uid"] != old_uid and pod_is_ready(p)
        await eventually(replaced, what="web-1 recreated")

        # scale with kubectl, up (in order) and down (highest first)
        rc, out = await c.kubectl("scale", "sts/web", "-n", ns, "--replicas=5")
        assert rc == 0, out
        await eventually(lambda: _names(c, ns, {f"web-{i}" for i in range(5)}), what="5 pods")
        rc, out = await c.kubectl("scale", "sts/web", "-n", ns, "--replicas=2")
        assert rc == 0, out
        await eventually(lambda: _names(c, ns, {"web-0", "web-1"}), what="2 pods")

        # rolling update: highest ordinal first, rollout status waits for it
        order: list[str] = []
        listed = await c.client.list(rt("Pod"), ns)

        async def watch():
            async for kind, obj in c.client.watch(rt("Pod"), ns, resource_version=listed.resource_version):
                if kind == "ADDED":
                    order.append(name_of(obj))
        watcher = asyncio.ensure_future(watch())
        rc, out = await c.kubectl("set", "image", "sts/web", "nginx=nginx:2", "-n", ns)
        assert rc == 0, out
        rc, out = await c.kubectl("rollout", "status", "sts/web", "-n", ns, "--timeout=60s")
        assert rc == 0 and "partitioned roll out complete: 2 new pods have been updated" in out, out
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        assert order == ["web-1", "web-0"], order
        live = await _live(c, ns)
        assert {p["spec"]["containers"][0]["image"] for p in live.values()} == {"nginx:2"}
        sts = await c.client.get(rt("StatefulSet"), "web", ns)
        st = sts["status"]
        assert st["currentRevision"] == st["updateRevision"] and st["updatedReplicas"] == st["readyReplicas"] == 2
        assert st["observedGeneration"] == sts["metadata"]["generation"]

        # the history is ControllerRevisions: kubectl rollout history and undo work on them
        rc, out = await c.kubectl("rollout", "history", "sts/web", "-n", ns)
        assert rc == 0 and [line.split()[0] for line in out.splitlines()[2:] if line.strip()] == ["1", "2"], out
        rc, out = await c.kubectl("rollout", "undo", "sts/web", "-n", ns)
        assert rc == 0, out
        rc, out = await c.kubectl("rollout", "status", "sts/web", "-n", ns, "--timeout=60s")
        assert rc == 0 and "partitioned roll out complete: 2 new pods have been updated" in out, out
        live = await _live(c, ns)
        assert {p["spec"]["containers"][0]["image"] for p in live.values()} == {"nginx:1"}
        revs = {r["metadata"]["name"]: r["revision"] for r in (await c.client.list(rt("ControllerRevision"), ns)).items}
        assert sorted(revs.values()) == [2, 3] and revs[st["currentRevision"]] == 2, revs

        # an immutable field is refused with upstream's message
        rc, out = await c.kubectl("patch", "sts/web", "-n", ns, "-p", json.dumps({"spec": {"serviceName": "x"}}))
        assert rc != 0 and "updates to statefulset spec for fields other than 'replicas'" in out, out

        # deleting the set removes its pods (garbage collector)
        await c.client.delete(rt("StatefulSet"), "web", ns)
        await eventually(lambda: _names(c, ns, set(), ready=False), what="pods collected")

        async def revisions_gone():
            return not (await c.client.list(rt("ControllerRevision"), ns)).items
        await eventually(revisions_gone, what="ControllerRevisions collected")
    run(body, tmp_path, nodes)
