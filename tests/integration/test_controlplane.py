"""The control plane in a real ``netemu apiserver`` process, KWOK-style.

Nodes are plain Node objects with a pretend kubelet (netemu.testing.fakenodes) in the test:
it renews their Leases and reports bound pods Running/Ready through the status subresource. The
scheduler and controllers run inside the API server process, with short timings from flags.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from netemu.api import errors
from netemu.client import ApiClient
from netemu.testing.fakenodes import FakeKubelet, node_object
from netemu.controllers.kube import condition, is_deleting, labels_of, name_of, pod_is_ready
from netemu.controllers.runtime import rt
from netemu.testing.apiserver_process import ApiServerProcess

pytestmark = pytest.mark.slow

LB_POOL = ["--lb-pool", "172.18.255.200-172.18.255.201"]
# Only the node-lifecycle tests want a node that misses 2 s of heartbeats to go unreachable and
# lose its pods a second later: on a loaded CI box the fake kubelet's 0.3 s heartbeats can slip
# that long, and the other tests then saw nodes tainted and pods evicted under them (the
# topology-hints test found a Deployment spread over one zone). They keep upstream's 40 s.
FAST_NODE_MONITOR = ["--node-monitor-grace-period", "2s", "--node-monitor-period", "200ms",
                     "--default-unreachable-toleration-seconds", "1", "--default-not-ready-toleration-seconds", "1"]


def control_plane(state_dir: Path, fast_node_monitor: bool = False) -> ApiServerProcess:
    """``netemu apiserver`` with the controllers in it (node monitoring fast when asked)."""
    return ApiServerProcess(state_dir, controllers=True,
                            extra_args=LB_POOL + (FAST_NODE_MONITOR if fast_node_monitor else []))


class Cluster:
    def __init__(self, proc: ApiServerProcess, client: ApiClient, kubelet: FakeKubelet):
        self.proc, self.client, self.kubelet = proc, client, kubelet

    async def pods(self, ns: str) -> list[dict]:
        return (await self.client.list(rt("Pod"), ns)).items

    async def kubectl(self, *args: str, timeout: float = 60) -> tuple[int, str]:
        env = {"KUBECONFIG": str(self.proc.kubeconfig), "HOME": str(self.proc.state_dir), "PATH": "/usr/bin:/bin:/usr/local/bin"}
        p = await asyncio.create_subprocess_exec("kubectl", *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(p.communicate(), timeout)
        return p.returncode, out.decode()


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path, nodes: list[dict], fast_node_monitor: bool = False) -> AsyncIterator[Cluster]:
    proc = control_plane(tmp_path / "state", fast_node_monitor).start()
    stop = asyncio.Event()
    client = ApiClient.from_kubeconfig(str(proc.kubeconfig))
    task = None
    try:
        kubelet = FakeKubelet(client, heartbeat=0.3)
        for n in nodes:
            await kubelet.add_node(n)
        task = asyncio.ensure_future(kubelet.run(stop))
        yield Cluster(proc, client, kubelet)
    finally:
        stop.set()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        await client.close()
        code = proc.stop()
        assert code == 0, f"apiserver exit code {code}: {proc.log.read_text()[-3000:]}"


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, what: str = "") -> Any:
    """Poll until ``check()`` returns something truthy (watch-driven state converging)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except errors.NotFound:
            last = None
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}: last={last!r}")


def run(coro_fn, tmp_path, nodes, fast_node_monitor: bool = False):
    async def main():
        async with cluster(tmp_path, nodes, fast_node_monitor) as c:
            await coro_fn(c)
    asyncio.run(main())


def deployment(name: str, replicas: int, cpu: str = "100m", image: str = "nginx:1", labels=None, **spec) -> dict:
    labels = labels or {"app": name}
    pod_spec = {"containers": [{"name": "c", "image": image, "resources": {"requests": {"cpu": cpu}},
                                "ports": [{"name": "http", "containerPort": 8080}]}]}
    pod_spec.update(spec.pop("pod", {}))
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec}, **spec}}


async def namespace(c: Cluster, name: str) -> str:
    await c.client.create(rt("Namespace"), {"metadata": {"name": name}})
    return name


def three_nodes(**kw) -> list[dict]:
    return [node_object(f"n{i}", cpu="2", **kw) for i in range(3)]


# ---- scheduling --------------------------------------------------------------------------------

@pytest.mark.kubectl
def test_seven_pods_of_900m_on_three_2cpu_nodes(tmp_path):
    async def body(c: Cluster):
        ns = await namespace(c, "sched")
        await c.client.create(rt("Deployment"), deployment("web", 7, cpu="900m"), ns)

        async def settled():
            pods = await c.pods(ns)
            bound = [p for p in pods if p["spec"].get("nodeName")]
            pending = [p for p in pods if condition(p, "PodScheduled") and
                       condition(p, "PodScheduled")["status"] == "False"]
            return (len(pods) == 7 and len(bound) == 6 and len(pending) == 1) and (bound, pending)
        bound, pending = await eventually(settled, what="6 bound + 1 unschedulable")
        per_node = sorted([p["spec"]["nodeName"] for p in bound].count(n) for n in ("n0", "n1", "n2"))
        assert per_node == [2, 2, 2]
        cond = condition(pending[0], "PodScheduled")
        assert cond["reason"] == "Unschedulable"
        assert cond["message"] == ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are "
                                   "available: 3 No preemption victims found for incoming pod.")

        async def failed_event():
            evs = (await c.client.list(rt("Event"), ns)).items
            return [e for e in evs if e["reason"] == "FailedScheduling"
                    and e["involvedObject"]["name"] == name_of(pending[0])]
        (ev,) = await eventually(failed_event, what="FailedScheduling event")
        assert ev["type"] == "Warning" and ev["involvedObject"]["kind"] == "Pod" and ev["count"] >= 1
        assert ev["source"]["component"] == "default-scheduler"
        text = await _explain(c, ns, name_of(pending[0]))
        assert "not scheduled: Unschedulable" in text and "3 Insufficient cpu" in text
        text = await _explain(c, ns, name_of(bound[0]))
        assert f"bound to node {bound[0]['spec']['nodeName']}" in text
        assert "NodeResourcesFit(x1)" in text and "Successfully assigned" in text
        # a new node makes room: the pending pod is retried and lands there
        await c.kubelet.add_node(node_object("n3", cpu="2"))
        await eventually(lambda: _all_bound(c, ns, 7), what="7th pod bound after node add")
        rc, out = await c.kubectl("get", "events", "-n", ns, "--sort-by=.metadata.creationTimestamp")
        assert rc == 0 and "Scheduled" in out and "FailedScheduling" in out and "ScalingReplicaSet" in out, out
        assert out.splitlines()[0].split()[:4] == ["LAST", "SEEN", "TYPE", "REASON"]
    run(body, tmp_path, three_nodes())


async def _explain(c: Cluster, ns: str, pod: str) -> str:
    p = await asyncio.create_subprocess_exec(sys.executable, "-m", "netemu", "explain", "pod", pod, "-n", ns,
                                             "--kubeconfig", str(c.proc.kubeconfig),
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await p.communicate()
    assert p.returncode == 0, out.decode()
    return out.decode()


async def _event_with(c: Cluster, ns: str, reason: str, text: str = "") -> list[dict]:
    """Events are recorded in the background: tests wait for them like for any other state."""
    return [e for e in (await c.client.list(rt("Event"), ns)).items if e["reason"] == reason and text in e["message"]]


async def _all_bound(c: Cluster, ns: str, n: int):
    pods = await c.pods(ns)
    return len(pods) == n and all(p["spec"].get("nodeName") for p in pods) and pods


def test_taints_avoided_unless_tolerated(tmp_path):
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    nodes = [node_object("n0", cpu="8", taints=[taint]), node_object("n1", cpu="8"), node_object("n2", cpu="8")]

    async def body(c: Cluster):
        ns = await namespace(c, "taints")
        await c.client.create(rt("Deployment"), deployment("plain", 6), ns)
        pods = await eventually(lambda: _all_bound(c, ns, 6), what="plain pods bound")
        assert {p["spec"]["nodeName"] for p in pods} <= {"n1", "n2"}
        tol = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
               "nodeSelector": {"kubernetes.io/hostname": "n0"}}
        await c.client.create(rt("Deployment"), deployment("db", 2, pod=tol), ns)
        pods = await eventually(lambda: _all_bound(c, ns, 8), what="tolerating pods bound")
        assert {p["spec"]["nodeName"] for p in pods if p["metadata"]["labels"]["app"] == "db"} == {"n0"}
    run(body, tmp_path, nodes)


@pytest.mark.kubectl
def test_anti_affinity_and_topology_spread(tmp_path):
    nodes = [node_object(f"n{i}", cpu="8", labels={"topology.kubernetes.io/zone": f"z{i % 2}"}) for i in range(4)]

    async def body(c: Cluster):
        ns = await namespace(c, "spread")
        anti = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "anti"}}}]}}}
        await c.client.create(rt("Deployment"), deployment("anti", 4, pod=anti), ns)
        spread = {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                                 "whenUnsatisfiable": "DoNotSchedule",
                                                 "labelSelector": {"matchLabels": {"app": "spread"}}}]}
        await c.client.create(rt("Deployment"), deployment("spread", 7, pod=spread), ns)
        pods = await eventually(lambda: _all_bound(c, ns, 11), what="all bound")
        anti_nodes = [p["spec"]["nodeName"] for p in pods if p["metadata"]["labels"]["app"] == "anti"]
        assert len(set(anti_nodes)) == 4
        zones = [int(p["spec"]["nodeName"][1:]) % 2 for p in pods if p["metadata"]["labels"]["app"] == "spread"]
        assert abs(zones.count(0) - zones.count(1)) <= 1
        # a fifth anti-affinity replica has nowhere to go
        await c.client.patch(rt("Deployment"), "anti", {"spec": {"replicas": 5}}, ns)

        async def unschedulable():
            for p in await c.pods(ns):
                cond = condition(p, "PodScheduled")
                if cond and cond["status"] == "False":
                    return cond["message"]
        msg = await eventually(unschedulable, what="anti-affinity pending pod")
        assert msg.startswith("0/4 nodes are available: 4 node(s) didn't")
        assert "anti-affinity rules" in msg
        rc, out = await c.kubectl("get", "pods", "-n", ns)
        assert rc == 0
    run(body, tmp_path, nodes)


# ---- workloads ---------------------------------------------------------------------------------

def _ready_names(state: dict[str, dict]) -> set[str]:
    return {n for n, p in state.items() if pod_is_ready(p) and not is_deleting(p)}


@pytest.mark.kubectl
def test_scale_and_rolling_update_keep_min_ready_and_rollout_status(tmp_path):
    nodes = [node_object(f"n{i}", cpu="16") for i in range(3)]

    async def body(c: Cluster):
        ns = await namespace(c, "roll")
        d = deployment("web", 4, strategy={"type": "RollingUpdate",
                                           "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}})
        await c.client.create(rt("Deployment"), d, ns)
        rc, out = await c.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
        assert rc == 0 and "successfully rolled out" in out, out
        listed = await c.client.list(rt("Pod"), ns)
        state = {name_of(p): p for p in listed.items}
        low = [len(_ready_names(state))]
        stop = asyncio.Event()

        async def watch():  # every pod change from here on, as a watcher sees it
            async for kind, obj in c.client.watch(rt("Pod"), ns, resource_version=listed.resource_version):
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    state.pop(name_of(obj), None)
                else:
                    state[name_of(obj)] = obj
                low.append(len(_ready_names(state)))
                if stop.is_set():
                    return
        watcher = asyncio.ensure_future(watch())
        rc, _ = await c.kubectl("scale", "deployment/web", "-n", ns, "--replicas=6")
        assert rc == 0
        await eventually(lambda: _ready_count(c, ns, 6), what="6 ready")
        await c.kubectl("scale", "deployment/web", "-n", ns, "--replicas=4")
        await eventually(lambda: _ready_count(c, ns, 4, exact_total=True), what="4 pods")
        await c.client.patch(rt("Deployment"), "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:2", "resources": {"requests": {"cpu": "100m"}},
             "ports": [{"name": "http", "containerPort": 8080}]}]}}}}, ns, patch_type="strategic")
        rc, out = await c.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
        assert rc == 0 and "successfully rolled out" in out, out
        stop.set()
        await asyncio.sleep(0.5)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        # replicas 4 (6 while scaled up), maxUnavailable 1: never fewer than 3 ready pods
        assert min(low) >= 4 - 1 and max(low) >= 6, low
        pods = [p for p in await c.pods(ns) if not is_deleting(p)]
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:2"}
        rss = (await c.client.list(rt("ReplicaSet"), ns)).items
        assert sorted(r["spec"]["replicas"] for r in rss) == [0, 4]
        dep = await c.client.get(rt("Deployment"), "web", ns)
        assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        # kubectl rollout undo: back to the first template, which becomes revision 3
        rc, out = await c.kubectl("rollout", "undo", "deployment/web", "-n", ns)
        assert rc == 0, out
        rc, out = await c.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
        assert rc == 0 and "successfully rolled out" in out, out
        pods = [p for p in await c.pods(ns) if not is_deleting(p)]
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1"}
        rc, out = await c.kubectl("rollout", "history", "deployment/web", "-n", ns)
        assert rc == 0 and "2 " in out and "3 " in out, out
        # deleting the Deployment removes its ReplicaSets and pods (garbage collector)
        await c.client.delete(rt("Deployment"), "web", ns)

        async def gone():
            return not (await c.client.list(rt("ReplicaSet"), ns)).items and not await c.pods(ns)
        await eventually(gone, what="ReplicaSets and pods collected")
    run(body, tmp_path, nodes)


async def _ready_count(c: Cluster, ns: str, n: int, exact_total: bool = False):
    pods = [p for p in await c.pods(ns) if not is_deleting(p)]
    ready = [p for p in pods if pod_is_ready(p)]
    return len(ready) == n and (not exact_total or len(pods) == n)


# ---- endpoints ---------------------------------------------------------------------------------

async def _slice_endpoints(c: Cluster, ns: str, svc: str) -> dict[str, dict]:
    slices = (await c.client.list(rt("EndpointSlice"), ns)).items
    return {e["targetRef"]["name"]: e for s in slices if labels_of(s).get("kubernetes.io/service-name") == svc
            for e in s.get("endpoints") or []}


def test_endpointslices_follow_readiness_deletion_labels_and_selector(tmp_path):
    async def body(c: Cluster):
        ns = await namespace(c, "eps")
        await c.client.create(rt("Deployment"), deployment("web", 3), ns)
        await c.client.create(rt("Service"), {"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}, ns)

        async def three_ready():
            eps = await _slice_endpoints(c, ns, "web")
            return len(eps) == 3 and all(e["conditions"]["ready"] for e in eps.values()) and eps
        eps = await eventually(three_ready, what="3 ready endpoints")
        slices = [s for s in (await c.client.list(rt("EndpointSlice"), ns)).items]
        assert slices[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        assert slices[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
            "endpointslice-controller.k8s.io"
        victim = sorted(eps)[0]
        await c.kubelet.set_pod_ready(ns, victim, False)
        await eventually(lambda: _cond_is(c, ns, victim, ready=False, serving=False, terminating=False),
                         what="not ready endpoint")
        # the legacy Endpoints come from another controller: they converge on their own watch
        await eventually(lambda: _endpoints_names(c, ns, "notReadyAddresses", victim),
                         what="not ready address in Endpoints")
        await c.kubelet.set_pod_ready(ns, victim, True)
        await eventually(lambda: _cond_is(c, ns, victim, ready=True, serving=True, terminating=False), what="ready")
        # a label change takes the pod out of the Service (and the ReplicaSet replaces it)
        await c.client.patch(rt("Pod"), victim, {"metadata": {"labels": {"app": "other"}}}, ns)

        async def relabelled():
            eps = await _slice_endpoints(c, ns, "web")
            return victim not in eps and len(eps) == 3
        await eventually(relabelled, what="relabelled pod out, replacement in")
        # selector change: the Service now selects only the relabelled pod
        await c.client.patch(rt("Service"), "web", {"spec": {"selector": {"app": "other"}}}, ns)

        async def only_victim():
            return list(await _slice_endpoints(c, ns, "web")) == [victim]
        await eventually(only_victim, what="selector change")
        await eventually(lambda: _endpoints_names(c, ns, "addresses", victim), what="Endpoints follow the selector")
        # deletion: a terminating endpoint first, then gone (the pretend kubelet finishes it)
        c.kubelet.silent.update(c.kubelet.nodes)  # hold the kubelets so termination is visible
        await c.client.delete(rt("Pod"), victim, ns)
        await eventually(lambda: _cond_is(c, ns, victim, ready=False, serving=True, terminating=True),
                         what="terminating endpoint")
        c.kubelet.silent.clear()
        pod = await c.client.get(rt("Pod"), victim, ns)
        c.kubelet._pod(pod)

        async def empty():
            return (await _slice_endpoints(c, ns, "web")) == {}
        await eventually(empty, what="endpoint gone after delete")
    run(body, tmp_path, three_nodes())


async def _endpoints_names(c: Cluster, ns: str, field: str, pod: str) -> bool:
    """The legacy Endpoints of ``web``: ``pod`` in ``field`` of their subset (notReadyAddresses:
    among them; addresses: the only one)."""
    subsets = (await c.client.get(rt("Endpoints"), "web", ns)).get("subsets") or [{}]
    names = [a["targetRef"]["name"] for a in subsets[0].get(field) or []]
    return pod in names if field == "notReadyAddresses" else names == [pod]


async def _cond_is(c: Cluster, ns: str, pod: str, **want: bool) -> bool:
    ep = (await _slice_endpoints(c, ns, "web")).get(pod)
    return ep is not None and all(ep["conditions"].get(k) == v for k, v in want.items())


# ---- node failure ------------------------------------------------------------------------------

def test_silent_node_goes_not_ready_pods_evicted_and_endpoints_follow(tmp_path):
    nodes = [node_object(f"n{i}", cpu="8") for i in range(3)]

    async def body(c: Cluster):
        ns = await namespace(c, "fail")
        anti = {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                "labelSelector": {"matchLabels": {"app": "web"}}}}]}}}
        await c.client.create(rt("Deployment"), deployment("web", 3, pod=anti), ns)
        await c.client.create(rt("Service"), {"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}, ns)

        async def spread_ready():
            eps = await _slice_endpoints(c, ns, "web")
            return len(eps) == 3 and all(e["conditions"]["ready"] for e in eps.values()) and \
                {e["nodeName"] for e in eps.values()} == {"n0", "n1", "n2"}
        await eventually(spread_ready, what="3 ready endpoints, one per node")
        c.kubelet.stop_node("n0")

        async def not_ready_tainted():
            node = await c.client.get(rt("Node"), "n0")
            ready = condition(node, "Ready")
            taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
            return ready["status"] == "Unknown" and ("node.kubernetes.io/unreachable", "NoExecute") in taints
        await eventually(not_ready_tainted, what="n0 Unknown + unreachable:NoExecute")

        async def moved():
            eps = await _slice_endpoints(c, ns, "web")
            ready_nodes = [e.get("nodeName") for e in eps.values() if e["conditions"]["ready"]]
            on_n0 = [e for e in eps.values() if e.get("nodeName") == "n0"]
            return (len(ready_nodes) == 3 and "n0" not in ready_nodes
                    and all(not e["conditions"]["ready"] and not e["conditions"]["serving"] for e in on_n0))
        await eventually(moved, what="replacements ready elsewhere, n0 endpoints not ready")
        evicted = [p for p in await c.pods(ns) if p["spec"].get("nodeName") == "n0"]
        assert evicted and all(is_deleting(p) for p in evicted)
        assert all(condition(p, "DisruptionTarget")["reason"] == "DeletionByTaintManager" for p in evicted)
        await eventually(lambda: _event_with(c, ns, "TaintManagerEviction"), what="eviction event")
        # the node is removed for good: its pods are collected and leave the slices
        await c.client.delete(rt("Node"), "n0")

        async def left():
            eps = await _slice_endpoints(c, ns, "web")
            return len(eps) == 3 and all(e.get("nodeName") != "n0" for e in eps.values())
        await eventually(left, what="n0 endpoints gone after node delete")

        async def lease_collected():  # the Lease is owned by its Node: the GC removes it
            try:
                await c.client.get(rt("Lease"), "n0", "kube-node-lease")
                return False
            except errors.NotFound:
                return True
        await eventually(lease_collected, what="n0 Lease collected")
    run(body, tmp_path, nodes, fast_node_monitor=True)


# ---- cloud, namespaces, service accounts, IPAM ---------------------------------------------------

def test_lb_pool_exhaustion_namespace_cascade_and_bootstrap_objects(tmp_path):
    async def body(c: Cluster):
        ns = await namespace(c, "lb")
        for i in range(3):
            await c.client.create(rt("Service"), {"metadata": {"name": f"lb{i}"}, "spec": {
                "type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]}}, ns)

        async def ingress():
            ips = {}
            for s in (await c.client.list(rt("Service"), ns)).items:
                ing = (s.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
                if ing:
                    ips[name_of(s)] = ing[0]["ip"]
            return len(ips) == 2 and ips
        ips = await eventually(ingress, what="two LB IPs")
        assert sorted(ips.values()) == ["172.18.255.200", "172.18.255.201"]

        async def exhausted():
            evs = (await c.client.list(rt("Event"), ns)).items
            return [e for e in evs if e["reason"] == "SyncLoadBalancerFailed"]
        (ev, *_) = await eventually(exhausted, what="pool exhausted event")
        assert ev["type"] == "Warning" and "no available IPs" in ev["message"]
        starving = ev["involvedObject"]["name"]
        holder = sorted(ips)[0]
        await c.client.delete(rt("Service"), holder, ns)

        async def handed_over():
            s = await c.client.get(rt("Service"), starving, ns)
            ing = (s.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
            return ing and ing[0]["ip"] == ips[holder]
        await eventually(handed_over, what="released IP reused")
        # a type change away from LoadBalancer releases the address too
        other = next(n for n in ips if n != holder)
        await c.client.patch(rt("Service"), other, {"spec": {"type": "ClusterIP"}}, ns)

        async def released():
            s = await c.client.get(rt("Service"), other, ns)
            return not (s.get("status") or {}).get("loadBalancer", {}).get("ingress")
        await eventually(released, what="ingress cleared on type change")
        await c.client.create(rt("Service"), {"metadata": {"name": "late"}, "spec": {
            "type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]}}, ns)

        async def late_gets_it():
            s = await c.client.get(rt("Service"), "late", ns)
            ing = (s.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
            return ing and ing[0]["ip"] == ips[other]
        await eventually(late_gets_it, what="address of the ClusterIP'd Service reused")

        # every namespace gets a default ServiceAccount and its token Secret; nodes get podCIDRs
        async def sa_and_token():
            sa = await c.client.get(rt("ServiceAccount"), "default", ns)
            secrets = (await c.client.list(rt("Secret"), ns)).items
            return sa and any(s.get("type") == "kubernetes.io/service-account-token" for s in secrets)
        await eventually(sa_and_token, what="default SA + token")
        cidrs = {name_of(n): n["spec"].get("podCIDR") for n in (await c.client.list(rt("Node"))).items}
        assert sorted(cidrs.values()) == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]

        await c.client.create(rt("Deployment"), deployment("web", 2), ns)
        await eventually(lambda: _all_bound(c, ns, 2), what="pods")
        await c.client.delete(rt("Namespace"), ns)

        async def ns_gone():
            try:
                await c.client.get(rt("Namespace"), ns)
                return False
            except errors.NotFound:
                return True
        await eventually(ns_gone, timeout=30, what="namespace removed")
        for kind in ("Pod", "Service", "Deployment", "ReplicaSet", "EndpointSlice", "ServiceAccount"):
            assert not (await c.client.list(rt(kind), ns)).items, kind
    run(body, tmp_path, three_nodes())


def test_garbage_collector_foreground_and_orphan(tmp_path):
    async def body(c: Cluster):
        ns = await namespace(c, "gc")
        await c.client.create(rt("Deployment"), deployment("fg", 2), ns)
        await c.client.create(rt("Deployment"), deployment("orph", 2), ns)
        await eventually(lambda: _all_bound(c, ns, 4), what="pods")

        async def rs_of(d):
            return [r for r in (await c.client.list(rt("ReplicaSet"), ns)).items
                    if r["metadata"]["labels"].get("app") == d]
        # foreground: the Deployment stays (with its finalizer) until its dependents are gone
        await c.client.delete(rt("Deployment"), "fg", ns, propagation_policy="Foreground")
        dep = await c.client.get(rt("Deployment"), "fg", ns)
        assert "foregroundDeletion" in dep["metadata"]["finalizers"]

        async def fg_done():
            try:
                await c.client.get(rt("Deployment"), "fg", ns)
                return False
            except errors.NotFound:
                pods = [p for p in await c.pods(ns) if p["metadata"]["labels"]["app"] == "fg"]
                return not await rs_of("fg") and not pods
        await eventually(fg_done, what="foreground deletion finished")
        # orphan: the ReplicaSet and its pods stay, without the owner reference
        (rs,) = await rs_of("orph")
        await c.client.delete(rt("Deployment"), "orph", ns, propagation_policy="Orphan")

        async def orphaned():
            try:
                await c.client.get(rt("Deployment"), "orph", ns)
                return False
            except errors.NotFound:
                left = await rs_of("orph")
                return left and not left[0]["metadata"].get("ownerReferences") and left
        (left,) = await eventually(orphaned, what="orphaned ReplicaSet")
        assert left["metadata"]["uid"] == rs["metadata"]["uid"]
        pods = [p for p in await c.pods(ns) if p["metadata"]["labels"]["app"] == "orph"]
        assert len(pods) == 2
    run(body, tmp_path, three_nodes())


def test_node_that_comes_back_is_ready_and_untainted(tmp_path):
    async def body(c: Cluster):
        c.kubelet.stop_node("n1")

        async def taints(want_unreachable: bool):
            node = await c.client.get(rt("Node"), "n1")
            keys = {t["key"] for t in node["spec"].get("taints") or []}
            ready = condition(node, "Ready")["status"]
            if want_unreachable:
                return ready == "Unknown" and "node.kubernetes.io/unreachable" in keys
            return ready == "True" and not keys
        await eventually(lambda: taints(True), what="n1 unreachable")
        await eventually(lambda: _event_with(c, "default", "NodeNotReady", "Node n1 "), what="NodeNotReady event")
        await c.kubelet.resume_node("n1")
        await eventually(lambda: taints(False), what="n1 Ready again, taints removed")
    run(body, tmp_path, three_nodes(), fast_node_monitor=True)


def test_fake_nodes_command_runs_pods_and_cleans_up(tmp_path):
    proc = control_plane(tmp_path / "state").start()
    fake = subprocess.Popen([sys.executable, "-m", "netemu", "fake-nodes", "--kubeconfig", str(proc.kubeconfig),
                             "--count", "2", "--zones", "2", "--prefix", "kw-", "--heartbeat", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    async def body():
        async with ApiClient.from_kubeconfig(str(proc.kubeconfig)) as client:
            async def nodes():
                items = (await client.list(rt("Node"))).items
                return len(items) == 2 and items
            items = await eventually(nodes, what="fake nodes registered")
            assert {labels_of(n)["topology.kubernetes.io/zone"] for n in items} == {"zone-0", "zone-1"}
            await client.create(rt("Deployment"), deployment("web", 2), "default")

            async def running():
                pods = (await client.list(rt("Pod"), "default")).items
                return len(pods) == 2 and all(pod_is_ready(p) and p["status"].get("podIP") for p in pods)
            await eventually(running, what="pods Running and Ready on fake nodes")
            fake.send_signal(signal.SIGTERM)
            assert fake.wait(20) == 0
            assert not (await client.list(rt("Node"))).items
    try:
        asyncio.run(body())
    finally:
        if fake.poll() is None:
            fake.kill()
            fake.wait()
        assert proc.stop() == 0


def test_topology_aware_hints_follow_zones(tmp_path):
    nodes = [node_object(f"n{i}", cpu="4", labels={"topology.kubernetes.io/zone": f"z{i % 2}"}) for i in range(4)]

    async def body(c: Cluster):
        ns = await namespace(c, "hints")
        spread = {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                                 "whenUnsatisfiable": "DoNotSchedule",
                                                 "labelSelector": {"matchLabels": {"app": "web"}}}]}
        await c.client.create(rt("Deployment"), deployment("web", 4, pod=spread), ns)
        await c.client.create(rt("Service"), {"metadata": {"name": "web", "annotations": {
            "service.kubernetes.io/topology-mode": "Auto"}}, "spec": {
            "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}, ns)

        async def hinted():
            eps = await _slice_endpoints(c, ns, "web")
            ok = len(eps) == 4 and all(e["conditions"]["ready"] and e.get("hints") for e in eps.values())
            return ok and eps
        eps = await eventually(hinted, what="4 ready endpoints with hints")
        assert all(e["hints"]["forZones"] == [{"name": e["zone"]}] for e in eps.values())
        await eventually(lambda: _event_with(c, ns, "TopologyAwareHintsEnabled"), what="enabled event")
        # one endpoint per zone is too few for two zones at the 20 % overload threshold: hints go
        await c.client.patch(rt("Deployment"), "web", {"spec": {"replicas": 1}}, ns)

        async def unhinted():
            eps = await _slice_endpoints(c, ns, "web")
            ready = [e for e in eps.values() if e["conditions"]["ready"]]
            return len(ready) == 1 and not any(e.get("hints") for e in eps.values())
        await eventually(unhinted, what="hints removed")
        await eventually(lambda: _event_with(c, ns, "TopologyAwareHintsDisabled", "Insufficient number of endpoints"),
                         what="disabled event")
    run(body, tmp_path, nodes)
