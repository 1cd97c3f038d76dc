"""What the object model costs per API write, next to the JSON work the server does anyway.

    .venv/bin/python -m netemu.bench.api            # --objects 2000 --services 10000 --repeats 5

Every row is measured in one run against the same baseline, a JSON round trip of the same
object (``json.loads(json.dumps(obj))``: the least an API server does with a body), so the
ratio column survives a noisy machine better than the microseconds do. The allocator rows
compare dynamic allocation in an almost empty and an almost full range, and time a rebuild
from N stored Services (what the API server does at start).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import time
from typing import Any, Callable

from netemu.api import kinds, patch, strategy
from netemu.api.allocators import IPAllocator, ServiceAllocations

NOW = "2026-11-27T08:00:00Z"
SVC, DEPLOY = kinds.by_kind_name("Service"), kinds.by_kind_name("Deployment")


def service(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": "default", "labels": {"app": f"a{i}"}},
            "spec": {"type": "NodePort" if i % 8 == 0 else "ClusterIP", "selector": {"app": f"a{i}"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                               {"name": "metrics", "port": 9090}]}}


def deployment(i: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"web-{i}", "namespace": "default", "labels": {"app": f"web{i}"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": f"web{i}"}},
                     "template": {"metadata": {"labels": {"app": f"web{i}"}},
                                  "spec": {"containers": [
                                      {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                                       "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                                       "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                                      {"name": "side", "image": "busybox:1.36"}]}}}}


APPLY_PATCH = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
               "spec": {"replicas": 4, "template": {"spec": {
                   "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                   "containers": [{"name": "web", "image": "nginx:1.28",
                                   "$setElementOrder/env": [{"name": "B"}],
                                   "env": [{"name": "A", "$patch": "delete"}]}]}}}}


def per_item(fn: Callable[[Any], Any], items: list, repeats: int) -> float:
    """Median over ``repeats`` of the mean seconds per item."""
    runs = []
    for _ in range(repeats):
        batch = [copy.deepcopy(x) for x in items]  # fresh inputs, copied outside the clock
        t0 = time.perf_counter()
        for x in batch:
            fn(x)
        runs.append((time.perf_counter() - t0) / len(batch))
    return statistics.median(runs)


def roundtrip(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def write_rows(n: int, repeats: int) -> list[tuple[str, float, float]]:
    services, deployments = [service(i) for i in range(n)], [deployment(i) for i in range(n)]
    stored = [strategy.prepare_create(DEPLOY, d, now=NOW) for d in deployments]
    for d in stored:
        d["metadata"]["resourceVersion"] = "7"
    rows = []
    base_svc = per_item(roundtrip, services, repeats)
    alloc = ServiceAllocations(rng=random.Random(1))

    def create_and_allocate(s: dict) -> None:
        prepared = strategy.prepare_create(SVC, s, now=NOW)
        alloc.allocate(prepared)
        alloc.release(prepared)

    rows.append(("Service: prepare_create", per_item(lambda s: strategy.prepare_create(SVC, s, now=NOW), services, repeats), base_svc))
    rows.append(("Service: prepare_create + allocate", per_item(create_and_allocate, services, repeats), base_svc))
    base_dep = per_item(roundtrip, deployments, repeats)
    rows.append(("Deployment: prepare_create", per_item(lambda d: strategy.prepare_create(DEPLOY, d, now=NOW), deployments, repeats), base_dep))
    rows.append(("Deployment: strategic merge (kubectl apply patch)",
                 per_item(lambda d: patch.strategic_merge_patch(d, APPLY_PATCH, "Deployment"), stored, repeats), base_dep))

    def apply_update(d: dict) -> None:
        strategy.prepare_update(DEPLOY, d, patch.strategic_merge_patch(d, APPLY_PATCH, "Deployment"))
    rows.append(("Deployment: patch + prepare_update", per_item(apply_update, stored, repeats), base_dep))
    return rows


def allocator_rows(services: int) -> list[tuple[str, float]]:
    rows = []
    for label, cidr, fill in (("IP allocate_next, /12 with 10k used", "10.96.0.0/12", 10_000),
                              ("IP allocate_next, /20 98% used", "10.96.0.0/20", 4092 - 80)):
        ips = IPAllocator(cidr, rng=random.Random(2))
        for _ in range(fill):
            ips.allocate_next()
        t0 = time.perf_counter()
        k = 40
        for _ in range(k):
            ips.allocate_next()
        rows.append((label, (time.perf_counter() - t0) / k))
    alloc = ServiceAllocations(rng=random.Random(3))
    stored = []
    for i in range(services):
        s = strategy.prepare_create(SVC, service(i), now=NOW)
        alloc.allocate(s)
        stored.append(s)
    t0 = time.perf_counter()
    problems = ServiceAllocations().rebuild(stored)
    assert not problems
    rows.append((f"rebuild from {services} Services (whole)", time.perf_counter() - t0))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--services", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    print("| per write | us | JSON round trip us | ratio |")
    print("|---|---|---|---|")
    for name, t, base in write_rows(args.objects, args.repeats):
        print(f"| {name} | {t * 1e6:.1f} | {base * 1e6:.1f} | x{t / base:.1f} |")
    print()
    print("| allocator | us (rebuild: ms) |")
    print("|---|---|")
    for name, t in allocator_rows(args.services):
        print(f"| {name} | {t * 1e3:.1f} ms |" if name.startswith("rebuild") else f"| {name} | {t * 1e6:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
