"""The kubelet: registers this node, heartbeats, sets up the node network, runs bound pods.

Startup follows upstream's order: register the Node (NotReady), wait for node IPAM to give
spec.podCIDR, set up cni0 and routes (the runtime), then report Ready and start taking pods.
Every API call is retried with backoff: when the API server is unreachable (a cut link) the pods
keep running, and the Lease and statuses resume when it comes back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from netemu.agent.kubelet import nodestatus as ns_
from netemu.agent.kubelet.backoff import Backoff
from netemu.agent.kubelet.cri import Runtime
from netemu.agent.kubelet.events import EventRecorder
from netemu.agent.kubelet.serviceaccount import ServiceAccountProjector
from netemu.agent.kubelet.worker import PodWorker, WorkerContext
from netemu.agent.runtime.nodenet import peer_routes
from netemu.api import errors
from netemu.api.kinds import by_kind
from netemu.api.meta import Obj
from netemu.client import ApiClient, Informer

log = logging.getLogger(__name__)
NODE, POD, LEASE, NAMESPACE = (by_kind("v1", "Node"), by_kind("v1", "Pod"),
                               by_kind("coordination.k8s.io/v1", "Lease"), by_kind("v1", "Namespace"))
TRANSIENT = (aiohttp.ClientError, asyncio.TimeoutError, OSError, errors.StatusError)


@dataclass
class KubeletConfig:
    node_name: str
    node_ip: str
    capacity: dict[str, str] = field(default_factory=lambda: dict(ns_.DEFAULT_CAPACITY))
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)    # set on the Node at registration
    heartbeat_interval: float = 10.0           # Lease renewals (upstream: 10 s)
    lease_duration: int = 40
    status_report_interval: float = 300.0      # unchanged Node status rewritten (upstream: 5 min)
    log_dir: str = "/var/lib/netemu/pods"
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    volumes_dir: str | None = None             # per-pod ServiceAccount token dirs (None: none)
    ca_pem: bytes | None = None                # the cluster CA pods get as ca.crt
    token_renew_period: float = 60.0           # how often due tokens are looked for


def node_for_cache(own: str):
    """The kubelet's Node informer keeps its own Node whole and, of every other Node, only what
    the routes to its pods need (peer_routes: name, deletion, podCIDR, InternalIP): at 100 nodes
    each kubelet would otherwise hold 100 full Node objects it never reads."""
    def transform(node: Obj) -> Obj:
        meta = node.get("metadata") or {}
        if meta.get("name") == own:
            return node
        addrs = [a for a in (node.get("status") or {}).get("addresses") or [] if a.get("type") == "InternalIP"]
        return {"metadata": {k: meta[k] for k in ("name", "uid", "resourceVersion", "deletionTimestamp") if k in meta},
                "spec": {"podCIDR": (node.get("spec") or {}).get("podCIDR")}, "status": {"addresses": addrs}}
    return transform


async def retrying(what: str, call, stop: asyncio.Event, max_delay: float = 5.0) -> Any:
    """Call until it succeeds or ``stop`` is set; transient errors back off (0.2 s doubling)."""
    delay = 0.2
    while not stop.is_set():
        try:
            return await call()
        except TRANSIENT as exc:
            if isinstance(exc, (errors.Invalid, errors.Forbidden, errors.Unauthorized)):
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay * (1 + random.random() / 4))
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, max_delay)
    return None


class Kubelet:
    def __init__(self, api: ApiClient, runtime: Runtime, config: KubeletConfig):
        self.api, self.runtime, self.config = api, runtime, config
        self.node: Obj | None = None
        self.ready = False
        self.routes: dict[str, str] = {}
        self.workers: dict[str, PodWorker] = {}
        self.nodes = Informer(api, NODE, transform=node_for_cache(config.node_name))
        self.pods = Informer(api, POD, field_selector=f"spec.nodeName={config.node_name}")
        # API writes in flight at once: each concurrent request holds its own TLS connection in
        # the client's pool (~100-200 KB each, kept by malloc afterwards); 100 pods starting
        # together would otherwise cost the agent tens of MB for a moment's parallelism.
        self.write_slots = asyncio.Semaphore(8)
        self.events = EventRecorder(api, config.node_name, slots=self.write_slots)
        self.ctx = WorkerContext(runtime, self._write_status, self._finish_delete, config.node_ip,
                                 config.log_dir, Backoff(config.backoff_initial, config.backoff_max),
                                 event=self.events)
        self._node_changed = asyncio.Event()
        self._last_report = 0.0
        self._force_report = False
        # projected ServiceAccount tokens: the runtime asks for a container's (env, binds) at
        # each start and says when a pod's sandbox is gone (runtime_adapter, remote_runtime)
        self.serviceaccounts = None
        if config.volumes_dir and hasattr(runtime, "pod_extras"):
            self.serviceaccounts = ServiceAccountProjector(api, config.ca_pem, config.volumes_dir)
            runtime.pod_extras, runtime.pod_removed = self.serviceaccounts.extras, self.serviceaccounts.forget

    # -- node --------------------------------------------------------------------------------

    async def register(self) -> Obj:
        """Create the Node, or take over an existing one (labels, taints, addresses refreshed)."""
        c = self.config
        want = ns_.node_object(c.node_name, c.node_ip, c.capacity, c.labels, c.taints, time.time())
        if c.annotations:
            want["metadata"]["annotations"] = dict(c.annotations)
        try:
            return await self.api.create(NODE, want)
        except errors.AlreadyExists:
            pass
        cur = await self.api.get(NODE, c.node_name)
        labels = dict((cur.get("metadata") or {}).get("labels") or {}, **want["metadata"]["labels"])
        meta: Obj = {"labels": labels}
        if c.annotations:
            meta["annotations"] = dict(c.annotations)
        await self.api.patch(NODE, c.node_name, {"metadata": meta})
        status = ns_.node_status(c.node_ip, c.node_name, c.capacity,
                                 (cur.get("status") or {}).get("conditions") or [])
        return await self.api.patch(NODE, c.node_name, {"status": status}, subresource="status")

    async def report_status(self, ready: bool, message: str = "") -> None:
        c = self.config
        node = self.nodes.get(c.node_name) or self.node or {}
        conds = ns_.node_conditions((node.get("status") or {}).get("conditions") or [], ready, time.time(), message)
        status = ns_.node_status(c.node_ip, c.node_name, c.capacity, conds)
        self.node = await self.api.patch(NODE, c.node_name, {"status": status}, subresource="status")
        self._last_report = time.monotonic()
        self._force_report = False

    def _needs_report(self) -> bool:
        """Post the Node status when Ready differs from ours (e.g. the lifecycle controller set
        Unknown while we were cut off) or the report interval passed."""
        node = self.nodes.get(self.config.node_name) or self.node or {}
        ready = next((cd for cd in (node.get("status") or {}).get("conditions") or []
                      if cd.get("type") == "Ready"), {})
        want = "True" if self.ready else "False"
        return self._force_report or ready.get("status") != want or \
            time.monotonic() - self._last_report >= self.config.status_report_interval

    async def renew_lease(self) -> None:
        c = self.config
        uid = ((self.node or {}).get("metadata") or {}).get("uid", "")
        lease = ns_.lease_object(c.node_name, uid, time.time(), c.lease_duration)
        try:
            cur = await self.api.get(LEASE, c.node_name, ns_.LEASE_NAMESPACE)
        except errors.NotFound:
            try:
                await self.api.create(LEASE, lease, ns_.LEASE_NAMESPACE)
            except errors.NotFound:      # the namespace is made by the control plane; make it if not
                await self._ensure_lease_namespace()
                await self.api.create(LEASE, lease, ns_.LEASE_NAMESPACE)
            return
        lease["metadata"] = dict(cur["metadata"], ownerReferences=lease["metadata"]["ownerReferences"])
        await self.api.update(LEASE, lease)

    async def _ensure_lease_namespace(self) -> None:
        try:
            await self.api.create(NAMESPACE, {"metadata": {"name": ns_.LEASE_NAMESPACE}})
        except errors.AlreadyExists:
            pass

    async def wait_pod_cidr(self, stop: asyncio.Event) -> str | None:
        while not stop.is_set():
            node = self.nodes.get(self.config.node_name)
            cidr = ((node or {}).get("spec") or {}).get("podCIDR")
            if cidr:
                return cidr
            self._node_changed.clear()
            try:
                await asyncio.wait_for(self._node_changed.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
        return None

    async def sync_routes(self) -> None:
        routes = peer_routes(self.nodes.list(), self.config.node_name)
        if routes != self.routes:
            await self.runtime.set_routes(routes)
            self.routes = routes

    # -- pods --------------------------------------------------------------------------------

    def _on_pod(self, pod: Obj) -> None:
        uid = (pod.get("metadata") or {}).get("uid")
        if not uid or not self.ready:
            return
        worker = self.workers.get(uid)
        if worker is None:
            worker = self.workers[uid] = PodWorker(self.ctx, pod)
            task = asyncio.ensure_future(worker.run())
            task.add_done_callback(lambda _t, uid=uid: self._worker_done(uid))
        else:
            worker.update(pod)

    def _worker_done(self, uid: str) -> None:
        self.workers.pop(uid, None)
        self.events.forget(uid)

    def service_env(self) -> dict[str, str]:
        """The kubernetes Service's variables the containers got (empty before any start)."""
        return self.serviceaccounts.cached_env() if self.serviceaccounts is not None else {}

    def find_pod(self, namespace: str, name: str) -> Obj | None:
        return self.pods.get(name, namespace)

    def pod_by_uid(self, uid: str) -> Obj | None:
        """The pod a worker of this node runs (None for a uid it does not know)."""
        worker = self.workers.get(uid)
        return worker.pod if worker is not None else None

    def container_handle(self, pod: Obj, container: str):
        """The running instance of ``container`` of ``pod`` (what an attach joins), or None."""
        worker = self.workers.get((pod.get("metadata") or {}).get("uid"))
        return worker.handles.get(container) if worker is not None else None

    def restart_count(self, pod: Obj, container: str) -> int | None:
        """The current instance's number (its log file), None before it first started."""
        worker = self.workers.get((pod.get("metadata") or {}).get("uid"))
        rec = worker.records.get(container) if worker else None
        if rec is None or rec.started_at is None:
            return None
        return rec.restart_count

    def _on_pod_delete(self, pod: Obj) -> None:
        worker = self.workers.get((pod.get("metadata") or {}).get("uid"))
        if worker is not None:
            worker.removed()

    async def _write_status(self, pod: Obj, status: Obj) -> Obj:
        meta = pod["metadata"]
        async with self.write_slots:
            return await self.api.patch(POD, meta["name"], {"metadata": {"uid": meta["uid"]}, "status": status},
                                        meta.get("namespace"), subresource="status")

    async def _finish_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        async with self.write_slots:
            await self.api.delete(POD, meta["name"], meta.get("namespace"), grace_period_seconds=0,
                                  preconditions={"uid": meta["uid"]})

    # -- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.nodes.add_handler(lambda n: self._node_event(), lambda o, n: self._node_event(),
                               lambda n: self._node_event())
        self.pods.add_handler(self._on_pod, lambda old, new: self._on_pod(new), self._on_pod_delete)
        self.node = await retrying("registering the node", self.register, stop)
        if self.node is None:
            return
        tasks = [asyncio.ensure_future(self.nodes.run(stop)), asyncio.ensure_future(self._heartbeats(stop))]
        try:
            cidr = await self.wait_pod_cidr(stop)
            if cidr is None:
                return
            if not await self._setup_network(cidr, stop):
                return
            await retrying("reporting Ready", lambda: self.report_status(True), stop)
            self.ready = True
            log.info("node %s ready (podCIDR %s)", self.config.node_name, cidr)
            tasks.append(asyncio.ensure_future(self._node_sync(stop)))
            tasks.append(asyncio.ensure_future(self.pods.run(stop)))
            if self.serviceaccounts is not None:
                tasks.append(asyncio.ensure_future(self._renew_tokens(stop)))
            for pod in self.pods.list():
                self._on_pod(pod)
            await self._collect_orphans(stop)
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _renew_tokens(self, stop: asyncio.Event) -> None:
        """Projected ServiceAccount tokens are renewed at 80% of their life, as upstream; the
        kubernetes Service's variables are read at once (so ``kubectl exec`` has them on a node
        whose pods have not asked yet) and kept current."""
        while not stop.is_set():
            try:
                await self.serviceaccounts.kubernetes_env()
            except TRANSIENT as exc:
                log.info("reading the kubernetes Service: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), self.config.token_renew_period)
            except asyncio.TimeoutError:
                await self.serviceaccounts.renew(self.pods.list())

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Agent exit: stop every container now. Built-in apps die with the agent anyway; real
        processes would be orphans nobody tracks (a restarted agent does not adopt them), so
        they get SIGKILL. Namespaces stay for `netemu cleanup` / `netemu down`. A runtime of
        its own (remote_runtime.py) keeps them running: the next kubelet adopts them."""
        if getattr(self.runtime, "survives_kubelet", False):
            return
        handles = [h for w in self.workers.values() for h in w.handles.values()]
        for h in handles:
            h.signal(signal.SIGKILL)
        if handles:
            await asyncio.wait([asyncio.ensure_future(h.wait()) for h in handles], timeout=timeout)

    async def _setup_network(self, cidr: str, stop: asyncio.Event) -> bool:
        """cni0 and routes; until they work the Node says NotReady with the reason (upstream:
        "container runtime network not ready"), retried with back-off."""
        delay = 1.0
        while not stop.is_set():
            try:
                await self.runtime.setup_node(cidr)
                await self.sync_routes()
                return True
            except Exception as exc:  # a kernel/tool failure: reported on the Node, retried
                log.error("node network setup failed: %s", exc)
                try:
                    await self.report_status(False, f"container runtime network not ready: {exc}")
                except TRANSIENT:
                    pass
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, 30.0)
        return False

    async def _collect_orphans(self, stop: asyncio.Event) -> None:
        """Once the pod list is known: free the sandboxes of pods deleted while we were down."""
        synced = asyncio.ensure_future(self.pods.wait_synced())
        await asyncio.wait([synced, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        if not synced.done():
            synced.cancel()
            return
        live = {(p.get("metadata") or {}).get("uid") for p in self.pods.list()}
        try:
            gone = await self.runtime.remove_orphans(live)
        except Exception:
            log.exception("removing orphaned sandboxes failed")
            return
        if gone:
            log.info("removed %d sandboxes of pods deleted while the agent was down", len(gone))

    def _node_event(self) -> None:
        self._node_changed.set()

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        """Renew the Lease every interval, whatever else happens (the node lifecycle controller
        reads only this); a failure is logged and the next beat tries again."""
        failing = False
        while not stop.is_set():
            try:
                await asyncio.wait_for(self.renew_lease(), max(2.0, 2 * self.config.heartbeat_interval))
                if failing:       # back in touch: the API may show us Unknown; say Ready again
                    log.info("lease renewed again; re-reporting node status")
                    self._force_report = True
                    self._node_changed.set()
                failing = False
            except TRANSIENT as exc:
                failing = True
                log.warning("lease renewal failed (%s); the pods keep running", str(exc) or type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), self.config.heartbeat_interval)
            except asyncio.TimeoutError:
                pass

    async def _node_sync(self, stop: asyncio.Event) -> None:
        """On node changes (and at least every heartbeat interval): routes to the other nodes'
        podCIDRs, and Ready re-posted when the API shows something else (the lifecycle controller
        set Unknown while this node was cut off)."""
        while not stop.is_set():
            self._node_changed.clear()
            try:
                await self.sync_routes()
                if self._needs_report():
                    await self.report_status(True)
            except TRANSIENT as exc:
                log.warning("node sync failed (%s); retrying", exc)
            except Exception:
                log.exception("node sync failed")
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._node_changed.wait())]
            await asyncio.wait(waiters, timeout=self.config.heartbeat_interval,
                               return_when=asyncio.FIRST_COMPLETED)
            for t in waiters:
                t.cancel()
            await asyncio.sleep(0.1)      # coalesce bursts of node events
