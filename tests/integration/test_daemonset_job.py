"""DaemonSets (and Jobs) against a real ``netemu apiserver`` with its controllers and scheduler,
nodes played by the fake kubelet (netemu.testing.fakenodes), kubectl 1.32 as the client.

One cluster per test; each test walks a whole story (upstream e2e apps/daemon_set.go shapes):
one pod per eligible node, a node added and deleted, a rolling update node by node that
``kubectl rollout status`` follows.
"""

from __future__ import annotations

import asyncio

import pytest

from netemu.controllers.kube import is_deleting, pod_is_ready
from netemu.controllers.runtime import rt
from netemu.testing.fakenodes import node_object
from tests.integration.test_controlplane import Cluster, eventually, namespace, run

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

TAINT = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}


def daemonset(name: str, image: str = "agent:1", **pod_spec) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": image}], **pod_spec}}}}


async def _placement(c: Cluster, ns: str, app: str) -> dict[str, str]:
    """node -> image of the live, ready pods of ``app`` (None while any is unbound/unready)."""
    pods = [p for p in await c.pods(ns) if p["metadata"]["labels"].get("app") == app and not is_deleting(p)]
    if not all(p["spec"].get("nodeName") and pod_is_ready(p) for p in pods):
        return {}
    nodes = [p["spec"]["nodeName"] for p in pods]
    if len(nodes) != len(set(nodes)):
        return {}
    return {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"] for p in pods}


async def _placed(c: Cluster, ns: str, app: str, want: dict[str, str]):
    got = await _placement(c, ns, app)
    return got if got == want else None


def test_daemonset_one_pod_per_eligible_node_follows_nodes_and_rolls(tmp_path):
    nodes = [node_object("n0", labels={"role": "edge"}), node_object("n1", labels={"role": "edge"}, taints=[TAINT]),
             node_object("n2")]

    async def body(c: Cluster):
        ns = await namespace(c, "ds")
        await c.client.create(rt("DaemonSet"), daemonset("agent"), ns)
        tol = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
        await c.client.create(rt("DaemonSet"), daemonset("edge", nodeSelector={"role": "edge"}, tolerations=tol), ns)
        # the tainted node is skipped unless tolerated; the nodeSelector keeps edge off n2
        await eventually(lambda: _placed(c, ns, "agent", {"n0": "agent:1", "n2": "agent:1"}), what="agent placed")
        await eventually(lambda: _placed(c, ns, "edge", {"n0": "agent:1", "n1": "agent:1"}), what="edge placed")
        rc, out = await c.kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s")
        assert rc == 0 and 'daemon set "agent" successfully rolled out' in out, out
        rc, out = await c.kubectl("get", "ds", "-n", ns)
        assert rc == 0, out
        header, *rows = out.splitlines()
        assert header.split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
                                  "SELECTOR", "AGE"], out
        assert rows[1].split()[:7] == ["edge", "2", "2", "2", "2", "2", "role=edge"], out
        pod = next(p for p in await c.pods(ns) if p["metadata"]["labels"]["app"] == "agent")
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
        # a node joins: it gets its daemon pod; it leaves: the pod is collected
        await c.kubelet.add_node(node_object("n3"))
        three = {"n0": "agent:1", "n2": "agent:1", "n3": "agent:1"}
        await eventually(lambda: _placed(c, ns, "agent", three), what="agent on the new node")
        await c.client.delete(rt("Node"), "n3")
        await eventually(lambda: _placed(c, ns, "agent", {"n0": "agent:1", "n2": "agent:1"}),
                         what="pod of the deleted node collected")
        # rolling update, maxUnavailable 1: never more than one node without a ready pod
        low: list[int] = []
        stop = asyncio.Event()

        async def sample():
            while not stop.is_set():
                pods = [p for p in await c.pods(ns) if p["metadata"]["labels"]["app"] == "agent"]
                low.append(len({p["spec"].get("nodeName") for p in pods if pod_is_ready(p) and not is_deleting(p)}))
                await asyncio.sleep(0.05)
        sampler = asyncio.ensure_future(sample())
        rc, out = await c.kubectl("set", "image", "ds/agent", "c=agent:2", "-n", ns)
        assert rc == 0, out
        rc, out = await c.kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s")
        assert rc == 0 and "successfully rolled out" in out, out
        await eventually(lambda: _placed(c, ns, "agent", {"n0": "agent:2", "n2": "agent:2"}), what="rolled")
        stop.set()
        await sampler
        assert min(low) >= 1, low
        ds = await c.client.get(rt("DaemonSet"), "agent", ns)
        st = ds["status"]
        assert st["observedGeneration"] == ds["metadata"]["generation"] == 2
        assert st["updatedNumberScheduled"] == st["numberAvailable"] == st["desiredNumberScheduled"] == 2
        # deleting the DaemonSet removes its pods (garbage collector)
        await c.client.delete(rt("DaemonSet"), "agent", ns)

        async def gone():
            return not [p for p in await c.pods(ns) if p["metadata"]["labels"]["app"] == "agent"]
        await eventually(gone, what="daemon pods collected")
    run(body, tmp_path, nodes)


async def _job_condition(c: Cluster, ns: str, name: str, ctype: str):
    job = await c.client.get(rt("Job"), name, ns)
    conds = {x["type"]: x for x in (job.get("status") or {}).get("conditions") or [] if x["status"] == "True"}
    return job if ctype in conds else None


def test_jobs_run_to_completion_and_to_backoff_limit(tmp_path):
    async def body(c: Cluster):
        ns = await namespace(c, "jobs")
        # kubectl create job (protobuf body): a pod the fake kubelet finishes with exit code 0
        rc, out = await c.kubectl("create", "job", "once", "--image=busybox", "-n", ns, "--", "true")
        assert rc == 0, out
        job = await c.client.get(rt("Job"), "once", ns)
        uid = job["metadata"]["uid"]
        assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        await c.client.delete(rt("Job"), "once", ns, propagation_policy="Background")
        exit0 = {"fake.netemu.io/exit-code": "0"}
        manifest = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "work"},
                    "spec": {"completions": 3, "parallelism": 2, "ttlSecondsAfterFinished": 3,
                             "template": {"metadata": {"annotations": exit0}, "spec": {
                                 "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}
        await c.client.create(rt("Job"), manifest, ns)
        job = await eventually(lambda: _job_condition(c, ns, "work", "Complete"), what="work complete")
        st = job["status"]
        assert (st["succeeded"], st["active"], st["failed"]) == (3, 0, 0) and st["completionTime"] >= st["startTime"]
        rc, out = await c.kubectl("get", "job", "work", "-n", ns)
        assert rc == 0 and out.splitlines()[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], out
        assert out.splitlines()[1].split()[1:3] == ["Complete", "3/3"], out
        rc, out = await c.kubectl("wait", "--for=condition=complete", "job/work", "-n", ns, "--timeout=5s")
        assert rc == 0, out
        # the backoff limit: every pod fails, two failures exceed backoffLimit 1
        failing = dict(manifest, metadata={"name": "broken"})
        failing["spec"] = {"backoffLimit": 1, "template": {"metadata": {"annotations": {"fake.netemu.io/exit-code": "2"}},
                                                           "spec": manifest["spec"]["template"]["spec"]}}
        await c.client.create(rt("Job"), failing, ns)
        job = await eventually(lambda: _job_condition(c, ns, "broken", "Failed"), what="broken failed")
        failed = next(x for x in job["status"]["conditions"] if x["type"] == "Failed")
        assert failed["reason"] == "BackoffLimitExceeded" and job["status"]["failed"] == 2, job["status"]
        pods = [p for p in await c.pods(ns) if p["metadata"]["labels"].get("job-name") == "broken"]
        assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Failed"}
        # ttlSecondsAfterFinished: the finished Job and its pods are deleted

        async def work_gone():
            jobs = {j["metadata"]["name"] for j in (await c.client.list(rt("Job"), ns)).items}
            pods = [p for p in await c.pods(ns) if p["metadata"]["labels"].get("job-name") == "work"]
            return "work" not in jobs and not pods
        await eventually(work_gone, what="work deleted after its TTL")
    run(body, tmp_path, [node_object("n0")])
