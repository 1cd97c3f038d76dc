"""A DaemonSet's revision history with real kubectl 1.32 against ``netemu apiserver`` and its
controllers (one fake node, netemu.testing.fakenodes): ``kubectl rollout history ds`` lists the
ControllerRevisions, ``--revision=N`` shows that template, ``kubectl rollout undo --to-revision``
brings it back (pods replaced by the rolling update), and a DaemonSet or StatefulSet deleted with
``--cascade=orphan`` and created again adopts its old pods and revisions instead of replacing them.

Upstream: pkg/controller/daemon/update.go and staging/src/k8s.io/kubectl/pkg/polymorphichelpers
(history.go, rollback.go) at v1.32.0 (commit 70d3cc986aa8221cd1dfb1121852688902d3bf53).
"""

from __future__ import annotations

import pytest

from netemu.controllers.kube import is_deleting, pod_is_ready
from netemu.controllers.runtime import rt
from netemu.testing.fakenodes import node_object
from tests.integration.test_controlplane import Cluster, eventually, namespace, run
from tests.integration.test_daemonset_job import daemonset

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]


async def _image(c: Cluster, ns: str) -> dict | None:
    """The one live, ready daemon pod (None while the rollout is under way)."""
    pods = [p for p in await c.pods(ns) if not is_deleting(p)]
    return pods[0] if len(pods) == 1 and pod_is_ready(pods[0]) else None


async def _rolled_to(c: Cluster, ns: str, image: str) -> dict:
    rc, out = await c.kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s")
    assert rc == 0 and "successfully rolled out" in out, out

    async def on_image():
        pod = await _image(c, ns)
        return pod if pod and pod["spec"]["containers"][0]["image"] == image else None
    return await eventually(on_image, what=f"pod on {image}")


def _history_rows(out: str) -> list[str]:
    header, *rows = out.strip().splitlines()[1:]          # line 0: "daemonset.apps/agent" (or sts)
    assert header.split() == ["REVISION", "CHANGE-CAUSE"], out
    return [r.split()[0] for r in rows]


def test_daemonset_rollout_history_undo_and_adoption_with_kubectl(tmp_path):
    async def body(c: Cluster):
        ns = await namespace(c, "dsh")
        await c.client.create(rt("DaemonSet"), daemonset("agent", "agent:1"), ns)
        first = await _rolled_to(c, ns, "agent:1")
        for image in ("agent:2", "agent:3"):
            rc, out = await c.kubectl("set", "image", "ds/agent", f"c={image}", "-n", ns)
            assert rc == 0, out
            await _rolled_to(c, ns, image)
        rc, out = await c.kubectl("rollout", "history", "ds/agent", "-n", ns)
        assert rc == 0 and _history_rows(out) == ["1", "2", "3"], out
        rc, out = await c.kubectl("rollout", "history", "ds/agent", "-n", ns, "--revision=2")
        assert rc == 0 and "daemonset.apps/agent with revision #2" in out and "Image:\tagent:2" in out, out
        # the revisions: one per template, named and labelled by its hash, owned by the DaemonSet
        revs = (await c.client.list(rt("ControllerRevision"), ns)).items
        ds = await c.client.get(rt("DaemonSet"), "agent", ns)
        assert sorted(r["revision"] for r in revs) == [1, 2, 3]
        for r in revs:
            h = r["metadata"]["labels"]["controller-revision-hash"]
            assert r["metadata"]["name"] == f"agent-{h}" and r["metadata"]["labels"]["app"] == "agent"
            assert r["metadata"]["ownerReferences"][0]["uid"] == ds["metadata"]["uid"]
        assert first["metadata"]["labels"]["controller-revision-hash"] == next(
            r["metadata"]["labels"]["controller-revision-hash"] for r in revs if r["revision"] == 1)
        # undo to revision 1: the first template comes back, the pod is replaced (RollingUpdate),
        # and its revision is renumbered as the newest, as upstream
        rc, out = await c.kubectl("rollout", "undo", "ds/agent", "-n", ns, "--to-revision=1")
        assert rc == 0 and "daemonset.apps/agent rolled back" in out, out
        back = await _rolled_to(c, ns, "agent:1")
        assert back["metadata"]["uid"] != first["metadata"]["uid"]
        assert back["metadata"]["labels"]["controller-revision-hash"] == first["metadata"]["labels"][
            "controller-revision-hash"]
        rc, out = await c.kubectl("rollout", "history", "ds/agent", "-n", ns)
        assert rc == 0 and _history_rows(out) == ["2", "3", "4"], out
        # kubectl compares the revision's data bytes with its own patch of the live template
        rc, out = await c.kubectl("rollout", "undo", "ds/agent", "-n", ns, "--to-revision=4")
        assert rc == 0 and "skipped rollback (current template already matches revision 4)" in out, out
        rc, out = await c.kubectl("rollout", "undo", "ds/agent", "-n", ns, "--to-revision=9")
        assert rc != 0 and "unable to find specified revision 9 in history" in out, out
        ds = await c.client.get(rt("DaemonSet"), "agent", ns)
        assert ds["status"]["observedGeneration"] == ds["metadata"]["generation"] == 4
        # the template generation (apps/v1 keeps it in an annotation) labels the pods, as upstream
        assert ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "4"
        assert back["metadata"]["labels"]["pod-template-generation"] == "4"
        # orphaned, then adopted by a new DaemonSet of the same selector and template
        rc, out = await c.kubectl("delete", "ds/agent", "-n", ns, "--cascade=orphan")
        assert rc == 0, out

        async def orphaned():
            objs = await c.pods(ns) + (await c.client.list(rt("ControllerRevision"), ns)).items
            return all(not o["metadata"].get("ownerReferences") for o in objs)
        await eventually(orphaned, what="pod and revisions orphaned")
        again = daemonset("agent", "agent:1")
        made = await c.client.create(rt("DaemonSet"), again, ns)

        async def adopted():
            objs = await c.pods(ns) + (await c.client.list(rt("ControllerRevision"), ns)).items
            return all([ref["uid"] for ref in o["metadata"].get("ownerReferences") or []] == [made["metadata"]["uid"]]
                       for o in objs)
        await eventually(adopted, what="pod and revisions adopted")
        pod = await _rolled_to(c, ns, "agent:1")
        assert pod["metadata"]["uid"] == back["metadata"]["uid"]      # adopted, not replaced
        rc, out = await c.kubectl("rollout", "history", "ds/agent", "-n", ns)
        assert rc == 0 and _history_rows(out) == ["2", "3", "4"], out
        # deleting the DaemonSet collects its history with its pods (garbage collector)
        rc, out = await c.kubectl("delete", "ds/agent", "-n", ns, "--wait=false")
        assert rc == 0, out

        async def collected():
            return not await c.pods(ns) and not (await c.client.list(rt("ControllerRevision"), ns)).items
        await eventually(collected, what="pods and revisions collected")
    run(body, tmp_path, [node_object("n0")])


STS = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
       "spec": {"serviceName": "web", "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "web:1"}]}}}}


def test_statefulset_adopts_orphaned_pods_and_revisions_and_releases_a_relabelled_pod(tmp_path):
    async def body(c: Cluster):
        ns = await namespace(c, "stsa")
        await c.client.create(rt("StatefulSet"), STS, ns)
        rc, out = await c.kubectl("rollout", "status", "sts/web", "-n", ns, "--timeout=60s")
        assert rc == 0, out
        before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in await c.pods(ns)}
        rc, out = await c.kubectl("delete", "sts/web", "-n", ns, "--cascade=orphan")
        assert rc == 0, out

        async def owners():
            objs = await c.pods(ns) + (await c.client.list(rt("ControllerRevision"), ns)).items
            return {o["metadata"]["name"]: [r["uid"] for r in o["metadata"].get("ownerReferences") or []]
                    for o in objs}

        async def all_owned_by(uids):
            got = await owners()
            return got if set(map(tuple, got.values())) == {tuple(uids)} else None
        await eventually(lambda: all_owned_by([]), what="orphaned")
        made = await c.client.create(rt("StatefulSet"), STS, ns)
        await eventually(lambda: all_owned_by([made["metadata"]["uid"]]), what="adopted")
        assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in await c.pods(ns)} == before
        rc, out = await c.kubectl("rollout", "history", "sts/web", "-n", ns)
        assert rc == 0 and _history_rows(out) == ["1"], out
        rc, out = await c.kubectl("rollout", "undo", "sts/web", "-n", ns, "--to-revision=1")
        assert rc == 0 and "skipped rollback (current template already matches revision 1)" in out, out
        # a pod relabelled out of the selector is released (as upstream, its name stays taken)
        rc, out = await c.kubectl("label", "pod/web-1", "app=other", "--overwrite", "-n", ns)
        assert rc == 0, out

        async def released():
            got = await owners()
            return got.get("web-1") == [] or None
        await eventually(released, what="web-1 released")
    run(body, tmp_path, [node_object("n0")])
