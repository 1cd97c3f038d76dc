"""Cluster add-ons ``netemu up`` installs, as kubeadm's addon phase does: manifests applied
through the API once the control plane answers, then waited for.

- ``coredns`` (default): the cluster DNS, kubeadm's manifest (coredns.yaml): a Deployment of 2
  replicas scheduled like any pod and the ``kube-dns`` Service at 10.96.0.10.
- ``ingress-nginx``: the ingress controller (ingress-nginx.yaml) and the default IngressClass.

The manifests are plain YAML next to this file: read them to see exactly what a cluster gets.
Applying is create-or-keep (a second ``up`` on the same store finds them); waiting is until the
add-on's Deployment has every replica ready, or ``timeout``, which ``up`` reports as an error.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

import yaml

from netemu.api import errors, kinds

HERE = Path(__file__).parent
ADDONS = {"coredns": "coredns.yaml", "ingress-nginx": "ingress-nginx.yaml"}
DEFAULT = ("coredns",)
WAIT_FOR = {"coredns": ("kube-system", "coredns"), "ingress-nginx": ("ingress-nginx", "ingress-nginx-controller")}


class AddonError(RuntimeError):
    """An add-on that cannot be installed or did not become ready."""


def parse_addons(text: str) -> tuple[str, ...]:
    """``--addons coredns,ingress-nginx`` / ``none`` -> names, each known."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names in ((), ("none",)):
        return ()
    unknown = [n for n in names if n not in ADDONS]
    if unknown:
        raise ValueError(f"unknown add-on(s) {', '.join(unknown)} (known: {', '.join(ADDONS)}, or none)")
    return tuple(dict.fromkeys(names))


def manifest(name: str) -> list[dict]:
    """The objects of one add-on, in apply order."""
    with open(HERE / ADDONS[name], encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


def resource_of(obj: dict) -> kinds.ResourceType:
    return kinds.by_kind(obj["apiVersion"], obj["kind"])


CREATE_ATTEMPTS = 3


async def apply(client, names: tuple[str, ...]) -> list[str]:
    """Create every object of the add-ons that does not exist yet; what was created.

    A create whose answer timed out is sent again (up to CREATE_ATTEMPTS): the API server of a
    cluster coming up on a slow machine (the lab VM under TCG) can take longer than the client's
    timeout while every node registers, and create-or-keep makes the repeat harmless (a create
    that was stored after all answers AlreadyExists)."""
    made = []
    for name in names:
        for obj in manifest(name):
            rt = resource_of(obj)
            ns = obj["metadata"].get("namespace") if rt.namespaced else None
            for attempt in range(1, CREATE_ATTEMPTS + 1):
                try:
                    await client.create(rt, obj, ns)
                    made.append(f"{obj['kind']}/{obj['metadata']['name']}")
                except errors.AlreadyExists:
                    pass
                except TimeoutError:
                    if attempt == CREATE_ATTEMPTS:
                        raise AddonError(f"creating {obj['kind']}/{obj['metadata']['name']} of add-on {name}: "
                                         f"no answer from the API server in {CREATE_ATTEMPTS} attempts") from None
                    continue
                break
    return made


def deployment_ready(dep: dict | None) -> bool:
    if not dep:
        return False
    want = (dep.get("spec") or {}).get("replicas", 1)
    return (dep.get("status") or {}).get("readyReplicas", 0) >= want


async def wait_ready(client, names: tuple[str, ...], timeout: float,
                     progress: Callable[[list[str]], None] = lambda waiting: None) -> None:
    """Until every add-on's Deployment has all its replicas ready; AddonError on timeout."""
    deployments = kinds.by_kind("apps/v1", "Deployment")
    deadline = time.monotonic() + timeout
    while True:
        waiting = []
        for name in names:
            ns, dep = WAIT_FOR[name]
            try:
                obj = await client.get(deployments, dep, ns)
            except errors.NotFound:
                obj = None
            if not deployment_ready(obj):
                waiting.append(name)
        progress(waiting)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise AddonError(f"add-on(s) {', '.join(waiting)} not ready after {timeout:.0f}s "
                             f"(kubectl -n kube-system get pods; their logs say why)")
        await asyncio.sleep(0.5)


async def wait_for(kubeconfig: str, names: tuple[str, ...], timeout: float,
                   progress: Callable[[list[str]], None] = lambda waiting: None) -> None:
    """``wait_ready`` with a client of the kubeconfig (the supervisor's ``addons`` phase)."""
    from netemu.client import ApiClient
    async with ApiClient.from_kubeconfig(kubeconfig) as client:
        await wait_ready(client, names, timeout, progress)
