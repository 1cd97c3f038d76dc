"""KWOK-style fake nodes: Node objects with a pretend kubelet, for control-plane tests and
benchmarks without kernel networking.

``FakeKubelet`` registers nodes (capacity, Ready condition), renews their Leases in
kube-node-lease, and for pods bound to them does what a kubelet reports: phase Running, a pod
IP from the node's podCIDR, Ready=True (or not, when a test says so), and finishes graceful
deletes (DELETE with grace 0). ``stop_node`` makes one node fall silent, as if it died.
Pure helpers build the objects; the loop talks only through the API, like a kubelet would.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from netemu.api import errors
from netemu.client import ApiClient, Informer
from netemu.controllers.kube import Obj, condition, is_deleting, name_of, ns_of, rfc3339, rfc3339_micro, set_condition
from netemu.controllers.nodelifecycle import LEASE_NAMESPACE
from netemu.controllers.runtime import rt

log = logging.getLogger(__name__)


def node_object(name: str, cpu: str = "2", memory: str = "8Gi", pods: int = 110,
                labels: dict[str, str] | None = None, taints: list[Obj] | None = None, now: float | None = None) -> Obj:
    stamp = rfc3339(now or time.time())
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "type": "kwok", **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"capacity": {"cpu": cpu, "memory": memory, "pods": str(pods)},
                       "allocatable": {"cpu": cpu, "memory": memory, "pods": str(pods)},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp,
                                       "lastTransitionTime": stamp}],
                       "addresses": [{"type": "Hostname", "address": name}]}}


def lease_object(node: str, now: float, duration: int = 40, node_uid: str = "") -> Obj:
    """The kubelet's heartbeat Lease, owned by its Node (so it goes when the Node goes)."""
    owners = [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}] if node_uid else []
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node, "namespace": LEASE_NAMESPACE, "ownerReferences": owners},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": duration, "renewTime": rfc3339_micro(now)}}


def running_status(pod: Obj, ip: str, ready: bool, now: float) -> Obj:
    stamp = rfc3339(now)
    conds = (pod.get("status") or {}).get("conditions") or []
    for ctype, value in (("PodScheduled", True), ("Initialized", True), ("ContainersReady", ready), ("Ready", ready)):
        conds = set_condition(conds, {"type": ctype, "status": "True" if value else "False"}, stamp)
    return {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "", "startTime": stamp,
            "conditions": conds,
            "containerStatuses": [{"name": c.get("name", ""), "ready": ready, "restartCount": 0,
                                   "image": c.get("image", ""), "imageID": "", "started": True,
                                   "state": {"running": {"startedAt": stamp}}}
                                  for c in (pod.get("spec") or {}).get("containers") or []]}


EXIT_CODE_ANNOTATION = "fake.netemu.io/exit-code"


def terminated_status(pod: Obj, ip: str, exit_code: int, now: float) -> Obj:
    """A pod whose containers ran and exited with ``exit_code`` (restartPolicy Never/OnFailure
    pods the fake kubelet finishes: 0 Succeeded, else Failed; KWOK's pod-complete stage)."""
    stamp = rfc3339(now)
    conds = (pod.get("status") or {}).get("conditions") or []
    for ctype, value in (("PodScheduled", True), ("Initialized", True), ("ContainersReady", False), ("Ready", False)):
        conds = set_condition(conds, {"type": ctype, "status": "True" if value else "False",
                                      "reason": "" if value else "PodCompleted"}, stamp)
    reason = "Completed" if exit_code == 0 else "Error"
    return {"phase": "Succeeded" if exit_code == 0 else "Failed", "podIP": ip, "podIPs": [{"ip": ip}],
            "hostIP": "", "startTime": stamp, "conditions": conds,
            "containerStatuses": [{"name": c.get("name", ""), "ready": False, "restartCount": 0,
                                   "image": c.get("image", ""), "imageID": "", "started": False,
                                   "state": {"terminated": {"exitCode": exit_code, "reason": reason,
                                                            "startedAt": stamp, "finishedAt": stamp}}}
                                  for c in (pod.get("spec") or {}).get("containers") or []]}


class FakeKubelet:
    """Pretend kubelets for a set of nodes, all in one task."""

    def __init__(self, client: ApiClient, heartbeat: float = 1.0, field_selector: str | None = None):
        """``field_selector`` (e.g. ``spec.nodeName=n1``) narrows the pod watch: one process per
        fake node must not watch every pod of the cluster (N agents x all pods)."""
        self.client = client
        self.heartbeat = heartbeat
        self.nodes: dict[str, Obj] = {}
        self.silent: set[str] = set()
        self.not_ready_pods: set[str] = set()     # "ns/name" kept Ready=False
        self._ips: dict[str, set[str]] = {}
        self.pods = Informer(client, rt("Pod"), field_selector=field_selector)
        self.pods.add_handler(self._pod, lambda o, n: self._pod(n))
        self._pending: asyncio.Queue[Obj] = asyncio.Queue()

    async def add_node(self, node: Obj) -> None:
        await self._ensure_namespace()
        try:
            node = await self.client.create(rt("Node"), node)
        except errors.AlreadyExists:
            node = await self.client.get(rt("Node"), name_of(node))
        self.nodes[name_of(node)] = node
        await self._renew(name_of(node))

    def stop_node(self, name: str) -> None:
        self.silent.add(name)

    async def resume_node(self, name: str) -> None:
        """The kubelet is back: it reports Ready again and renews its Lease."""
        self.silent.discard(name)
        node = await self.client.get(rt("Node"), name)
        stamp = rfc3339(time.time())
        conds = set_condition((node.get("status") or {}).get("conditions") or [],
                              {"type": "Ready", "status": "True", "reason": "KubeletReady",
                               "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp}, stamp)
        await self.client.patch(rt("Node"), name, {"status": {"conditions": conds}}, subresource="status")
        await self._renew(name)
        for pod in self.pods.list():
            self._pod(pod)

    def _pod(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName") in self.nodes:
            self._pending.put_nowait(pod)

    async def set_pod_ready(self, namespace: str, name: str, ready: bool) -> None:
        key = f"{namespace}/{name}"
        (self.not_ready_pods.discard if ready else self.not_ready_pods.add)(key)
        pod = self.pods.get(name, namespace)
        if pod is not None:
            await self._reconcile_pod(pod)

    async def _renew(self, node: str) -> None:
        now = time.time()
        uid = ((self.nodes.get(node) or {}).get("metadata") or {}).get("uid", "")
        try:
            await self.client.update(rt("Lease"), dict(lease_object(node, now, node_uid=uid),
                                                       metadata=await self._lease_meta(node)))
        except errors.NotFound:
            try:
                await self.client.create(rt("Lease"), lease_object(node, now, node_uid=uid), LEASE_NAMESPACE)
            except errors.AlreadyExists:
                pass
        except errors.Conflict:
            pass

    async def _lease_meta(self, node: str) -> Obj:
        cur = await self.client.get(rt("Lease"), node, LEASE_NAMESPACE)
        return cur["metadata"]

    async def _ensure_namespace(self) -> None:
        try:
            await self.client.create(rt("Namespace"), {"metadata": {"name": LEASE_NAMESPACE}})
        except errors.AlreadyExists:
            pass

    def _pod_ip(self, pod: Obj) -> str:
        current = (pod.get("status") or {}).get("podIP")
        if current:
            return current
        node = self.nodes.get(pod["spec"]["nodeName"]) or {}
        cidr = (node.get("spec") or {}).get("podCIDR") or "10.244.0.0/16"
        used = self._ips.setdefault(pod["spec"]["nodeName"], set())
        for host in ipaddress.ip_network(cidr).hosts():
            ip = str(host)
            if ip.endswith(".1") or ip in used:
                continue
            used.add(ip)
            return ip
        raise RuntimeError(f"no pod IPs left on {pod['spec']['nodeName']}")

    async def _reconcile_pod(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self.nodes or node in self.silent:
            return
        try:
            if is_deleting(pod):
                await self.client.delete(rt("Pod"), name_of(pod), ns_of(pod), grace_period_seconds=0)
                return
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            exit_code = ((pod.get("metadata") or {}).get("annotations") or {}).get(EXIT_CODE_ANNOTATION)
            if exit_code is not None and (pod.get("spec") or {}).get("restartPolicy") in ("Never", "OnFailure"):
                status = terminated_status(pod, self._pod_ip(pod), int(exit_code), time.time())
                await self.client.patch(rt("Pod"), name_of(pod), {"status": status}, ns_of(pod),
                                        subresource="status")
                return
            ready = f"{ns_of(pod)}/{name_of(pod)}" not in self.not_ready_pods
            have = condition(pod, "Ready")
            if (pod.get("status") or {}).get("phase") == "Running" and have \
                    and (have.get("status") == "True") == ready:
                return
            status = running_status(pod, self._pod_ip(pod), ready, time.time())
            await self.client.patch(rt("Pod"), name_of(pod), {"status": status}, ns_of(pod), subresource="status")
        except (errors.NotFound, errors.Conflict):
            pass

    async def _refresh_nodes(self) -> None:
        for name in list(self.nodes):
            try:
                self.nodes[name] = await self.client.get(rt("Node"), name)
            except errors.NotFound:
                self.nodes.pop(name, None)

    async def run(self, stop: asyncio.Event) -> None:
        await self._ensure_namespace()
        watcher = asyncio.ensure_future(self.pods.run(stop))
        beats = asyncio.ensure_future(self._heartbeats(stop))
        try:
            while not stop.is_set():
                try:
                    pod = await asyncio.wait_for(self._pending.get(), timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                await self._reconcile_pod(self.pods.get(name_of(pod), ns_of(pod)) or pod)
        finally:
            for t in (watcher, beats):
                t.cancel()
            await asyncio.gather(watcher, beats, return_exceptions=True)

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._refresh_nodes()
            for name in list(self.nodes):
                if name not in self.silent:
                    await self._renew(name)
            await asyncio.sleep(self.heartbeat)
