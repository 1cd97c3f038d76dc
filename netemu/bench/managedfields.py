"""Benchmark: what recording managedFields adds to a write, as a ratio to the write's own pure
work (defaults, validation: ``strategy.prepare_create`` / ``prepare_update``), in one run.

Three writes a cluster makes most: a Deployment created by kubectl create, a Pod created by the
ReplicaSet controller, a Pod's status written by its kubelet (a Pod with two owners already),
each timed ``--rounds`` times both ways: ``python -m netemu.bench.managedfields [--rounds 2000]``.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

from netemu.api import kinds, meta, strategy
from netemu.apiserver.fieldmanager import FieldManager

PODS = kinds.by_resource("", "v1", "pods")
DEPLOY = kinds.by_resource("apps", "v1", "deployments")
NOW = "2026-01-01T00:00:00Z"


def _template() -> dict:
    return {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
        {"name": "web", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47", "args": ["netexec"],
         "ports": [{"containerPort": 8080}], "env": [{"name": "A", "value": "1"}],
         "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}}}]}}


def deployment() -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": _template()}}


def pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "default",
                                                           **_template()["metadata"]},
            "spec": {**_template()["spec"], "nodeName": "worker"}}


def per_call(fn: Callable[[], object], rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds


def cases() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """name -> (the write's pure work, the same plus recording its managed fields)."""
    created = strategy.prepare_create(PODS, pod(), now=NOW)
    FieldManager(PODS, "kube-controller-manager").record(None, pod(), created)
    running = meta.json_copy(created)
    running["status"] = {"phase": "Running", "podIP": "10.244.1.5", "conditions": [
        {"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]}

    def create(rt, make, manager):
        def plain():
            return strategy.prepare_create(rt, make(), now=NOW)

        def recorded():
            obj = make()
            FieldManager(rt, manager).record(None, obj, strategy.prepare_create(rt, obj, now=NOW))
        return plain, recorded

    def status_plain():
        return strategy.prepare_update(PODS, created, meta.json_copy(running), subresource="status")

    def status_recorded():
        new = meta.json_copy(running)
        prepared = strategy.prepare_update(PODS, created, new, subresource="status")
        FieldManager(PODS, "kubelet", subresource="status").record(created, new, prepared)
    return {"create deployment (kubectl-create)": create(DEPLOY, deployment, "kubectl-create"),
            "create pod (controller)": create(PODS, pod, "kube-controller-manager"),
            "pod status (kubelet)": (status_plain, status_recorded)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    print(f"{'write':36} {'pure work us':>12} {'with fields us':>14} {'ratio':>6}")
    for name, (plain, recorded) in cases().items():
        plain(), recorded()                      # warm the caches (schemas, parsed fields)
        a, b = per_call(plain, args.rounds), per_call(recorded, args.rounds)
        print(f"{name:36} {a * 1e6:12.0f} {b * 1e6:14.0f} {b / a:6.2f}")


if __name__ == "__main__":
    main()
