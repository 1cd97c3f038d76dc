"""The EndpointSlice watch events one kube-proxy receives during a pod burst, as the API server
sends them (input of ``netemu.bench.proxysync``).

Made by the project's own code end to end, so the bytes are what a node's informer decodes:
the EndpointSlice controller's pure ``reconcile`` decides each write from the pods' states, a
real ``Registry`` over a SQLite store (in a temporary directory) stores it with the controller's
managedFields (FieldManager "kube-controller-manager"), and the watch's shared encoder
(``apiserver.watch``'s ``_Encoded``) turns each stored object into its JSON line.

The burst: ``services`` Services of ``endpoints`` pods each. Every pod goes through the two
steps a kubelet reports: it gets its IP (an endpoint appears, not ready), then it turns Ready
(the endpoint becomes ready) a few steps later; pods of all Services interleave (seeded RNG).
Every step is one reconcile of its Service, as the controller's queue does when pods change
one at a time.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from pathlib import Path

from netemu.api.kinds import by_kind
from netemu.apiserver.fieldmanager import FieldManager
from netemu.apiserver.registry import Registry
from netemu.apiserver import watch
from netemu.controllers import endpointslice as eps
from netemu.store import open_store

SLICES = by_kind("discovery.k8s.io/v1", "EndpointSlice")
SERVICES = by_kind("v1", "Service")
NAMESPACES = by_kind("v1", "Namespace")
MANAGER = "kube-controller-manager"
NAMESPACE = "bench"
TRIGGER = "2026-12-06T15:00:00Z"


def _service(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc{i}", "namespace": NAMESPACE, "labels": {"app": f"svc{i}"}},
            "spec": {"selector": {"app": f"svc{i}"}, "clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


def _pod(svc: int, k: int, nodes: int) -> dict:
    n = svc * 1000 + k
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"svc{svc}-{k}", "namespace": NAMESPACE, "uid": f"uid-{svc}-{k}",
                         "labels": {"app": f"svc{svc}"}},
            "spec": {"nodeName": f"node{n % nodes}", "containers": [
                {"name": "web", "ports": [{"containerPort": 8080}]}]},
            "status": {"phase": "Pending"}}


def _steps(services: int, endpoints: int, seed: int) -> list[tuple[int, int, str]]:
    """(service, pod, "ip" | "ready") in burst order: pods start interleaved, each turns Ready
    5-40 steps after its IP (a readiness probe's delay under load)."""
    rng = random.Random(seed)
    order = [(s, k) for s in range(services) for k in range(endpoints)]
    rng.shuffle(order)
    timed = []
    for t, (s, k) in enumerate(order):
        timed.append((t, 0, s, k, "ip"))
        timed.append((t + rng.uniform(5, 40), 1, s, k, "ready"))
    return [(s, k, what) for _, _, s, k, what in sorted(timed)]


async def _write(registry: Registry, encoder, changes: eps.SliceChanges, out: list[bytes]) -> None:
    """Store the controller's writes as the API server does; keep each one's watch line."""
    for obj in changes.create:
        stored = await registry.create(SLICES, NAMESPACE, obj, fields=FieldManager(SLICES, MANAGER).record)
        out.append(encoder.line(SLICES, "ADDED", stored))
    for obj in changes.update:
        name = obj["metadata"]["name"]
        stored = await registry.update(SLICES, NAMESPACE, name, obj, fields=FieldManager(SLICES, MANAGER).record)
        out.append(encoder.line(SLICES, "MODIFIED", stored))
    for obj in changes.delete:
        raise AssertionError(f"a growing Service never deletes a slice ({obj['metadata']['name']})")


async def record(services: int, endpoints: int, *, nodes: int = 100, seed: int = 1) -> tuple[list[dict], list[bytes]]:
    """(the Services as stored, the EndpointSlice watch lines in order)."""
    lines: list[bytes] = []
    # the watch's encoder, a fresh one: the server's shared one keys lines by resourceVersion,
    # which a new store starts again
    encoder = watch._Encoded()
    with tempfile.TemporaryDirectory(prefix="netemu-proxysync-") as tmp:
        store = open_store(f"sqlite:{Path(tmp) / 'state.db'}")
        try:
            registry = Registry(store)
            await registry.start()
            await registry.create(NAMESPACES, None, {"metadata": {"name": NAMESPACE}})
            stored_services = [await registry.create(SERVICES, NAMESPACE, _service(i),
                                                     fields=FieldManager(SERVICES, "kubectl-create").record)
                               for i in range(services)]
            pods = {(s, k): _pod(s, k, nodes) for s in range(services) for k in range(endpoints)}
            slices: dict[str, dict] = {}
            names = iter(range(10 ** 9))

            async def reconcile(s: int) -> None:
                svc = stored_services[s]
                mine = [p for (ps, _), p in pods.items() if ps == s]
                changes = eps.reconcile(svc, mine, {}, list(slices.values()),
                                        lambda: f"svc{s}-{next(names):05d}", TRIGGER)
                before = len(lines)
                await _write(registry, encoder, changes, lines)
                for line in lines[before:]:
                    obj = json.loads(line)["object"]
                    slices[obj["metadata"]["name"]] = obj

            for s in range(services):          # each Service's placeholder slice
                await reconcile(s)
            for s, k, what in _steps(services, endpoints, seed):
                status = pods[(s, k)]["status"]
                if what == "ip":
                    status.update(phase="Running", podIP=f"10.{128 + (s * endpoints + k) // 65536}."
                                  f"{(s * endpoints + k) // 256 % 256}.{(s * endpoints + k) % 256}")
                else:
                    status["conditions"] = [{"type": "Ready", "status": "True"}]
                await reconcile(s)
        finally:
            await store.close()
    return stored_services, lines


def write_file(path: Path, services: int, endpoints: int, *, nodes: int = 100, seed: int = 1) -> dict:
    """Record the burst into ``path`` (one JSON document: the Services and the watch lines)."""
    stored, lines = asyncio.run(record(services, endpoints, nodes=nodes, seed=seed))
    doc = {"services": stored, "lines": [line.decode() for line in lines]}
    path.write_text(json.dumps(doc))
    return {"events": len(lines), "bytes": sum(len(line) for line in lines)}


def read_file(path: Path) -> tuple[list[dict], list[bytes]]:
    doc = json.loads(Path(path).read_text())
    return doc["services"], [line.encode() for line in doc["lines"]]
