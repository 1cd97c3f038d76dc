"""The cluster an experiment runs on: brought up for it (``netemu up``, taken down after, always),
or a running one the user names (``--state-dir``), which is left running and cleaned of what the
experiment made.

Up and down go through the ``netemu`` command as argv (the same path a user takes; the emulator
supervisor is a process of its own either way). Node networks: 172.31.K.0/24 with K from the pid,
moved on when another cluster on this machine holds it, so experiments and test clusters of
other users never clash. Everything else (objects, waiting for them) speaks to the API server
with netemu's API client.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from netemu.api import kinds
from netemu.experiments.schema import ClusterSpec, Manifest

EXPERIMENT_LABEL = "netemu.io/experiment"
WAIT_TIMEOUT = 180.0


class ClusterError(RuntimeError):
    """The cluster could not be brought up, reached or set up; the message says why."""


def node_network_for(attempt: int) -> str:
    return f"172.31.{20 + (os.getpid() + 37 * attempt) % 200}.0/24"


def netemu_argv(*words: str) -> list[str]:
    return [sys.executable, "-m", "netemu", *words]


@dataclass
class Handle:
    """A running cluster: its state dir, cluster.json, and whether we brought it up."""

    state_dir: Path
    owned: bool
    spec: ClusterSpec | None = None

    @property
    def kubeconfig(self) -> str:
        return str(self.state_dir / "kubeconfig")

    def doc(self) -> dict:
        try:
            return json.loads((self.state_dir / "cluster.json").read_text())
        except (OSError, ValueError):
            raise ClusterError(f"no running cluster at {self.state_dir} (no cluster.json)") from None

    def lb_status(self):
        """With the edge: a reader of the provider LB's report (settle.py waits on it); else None."""
        if not self.doc().get("edge"):
            return None
        from netemu.emulator.cloud.lbplan import STATUS_FILE
        from netemu.emulator.state import read_json
        path = self.state_dir / STATUS_FILE
        return lambda: read_json(path)

    def workers(self) -> dict[str, dict]:
        return {n: i for n, i in self.doc()["nodes"].items() if i.get("role") != "control-plane"}

    def client(self):
        from netemu.client import ApiClient
        return ApiClient.from_kubeconfig(self.kubeconfig, user_agent="netemu-experiment")


def bring_up(spec: ClusterSpec, state_dir: Path, log=print) -> Handle:
    """``netemu up`` for ``spec`` at ``state_dir``; ClusterError (after ``down``) when it fails."""
    handle = Handle(state_dir.resolve(), owned=True, spec=spec)
    last = ""
    for attempt in range(4):
        network = node_network_for(attempt)
        argv = netemu_argv("up", "--state-dir", str(handle.state_dir), "--node-network", network, *spec.up_argv())
        log(f"netemu up ({' '.join(spec.up_argv())}) on {network}")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        if proc.returncode == 0:
            return handle
        last = proc.stderr.strip() or proc.stdout.strip()
        if f"node network {network} is" not in last:
            break
    tear_down(handle)
    raise ClusterError(f"netemu up failed: {last[-2000:]}")


def attach(state_dir: Path) -> Handle:
    handle = Handle(state_dir.resolve(), owned=False)
    handle.doc()
    return handle


def tear_down(handle: Handle) -> None:
    if handle.owned:
        subprocess.run(netemu_argv("down", "--state-dir", str(handle.state_dir)), capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)


def check_matches(handle: Handle, spec: ClusterSpec) -> list[str]:
    """Why a running cluster cannot stand for ``spec`` (empty: it can)."""
    doc = handle.doc()
    workers = {n: i for n, i in doc["nodes"].items() if i.get("role") != "control-plane"}
    out = []
    if spec.nodes is not None and len(workers) != spec.nodes:
        out.append(f"the scenario wants {spec.nodes} worker(s), the cluster has {len(workers)}")
    per = dict(spec.proxy_modes)
    for node, info in workers.items():
        want = per.get(node, spec.proxy_mode)
        have = info.get("proxy_mode") or doc.get("proxy_mode")
        if have != want:
            out.append(f"node {node} runs proxy mode {have}, the scenario wants {want}")
    if spec.edge and not doc.get("edge"):
        out.append("the scenario wants the edge (edge: true), the cluster was brought up without --edge")
    for what, given in (("apiserver_args", spec.apiserver_args), ("agent_args", spec.agent_args)):
        if given:
            out.append(f"the scenario sets {what}: a running cluster cannot take them (let the experiment "
                       f"bring its own cluster up)")
    return out


# ---- objects ------------------------------------------------------------------------------------

def resource(obj: dict):
    rt = kinds.by_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if rt is None:
        raise ClusterError(f"{obj.get('apiVersion')}/{obj.get('kind')} is not served by netemu's API server")
    return rt


def labelled(obj: dict, experiment: str) -> dict:
    """A copy of ``obj`` carrying the experiment's label (what reset and cleanup find)."""
    obj = json.loads(json.dumps(obj))
    meta = obj.setdefault("metadata", {})
    meta.setdefault("labels", {})[EXPERIMENT_LABEL] = experiment
    template = (obj.get("spec") or {}).get("template")
    if isinstance(template, dict):            # the workload's pods carry it too
        template.setdefault("metadata", {}).setdefault("labels", {})[EXPERIMENT_LABEL] = experiment
    return obj


async def apply(client, manifests: tuple[Manifest, ...], experiment: str) -> None:
    """Create each object, or replace it when it exists (as kubectl apply would, in effect)."""
    from netemu.api import errors

    for m in manifests:
        rt = resource(m.obj)
        obj = labelled(m.obj, experiment)
        if rt.namespaced:
            obj["metadata"]["namespace"] = m.namespace
        try:
            await client.create(rt, obj, m.namespace if rt.namespaced else None)
        except errors.AlreadyExists:
            current = await client.get(rt, m.name, m.namespace if rt.namespaced else None)
            obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            if m.kind == "Service":      # keep the allocated ClusterIP and node ports
                for key in ("clusterIP", "clusterIPs"):
                    obj.setdefault("spec", {}).setdefault(key, current["spec"].get(key))
            await client.update(rt, obj)


async def remove_experiment_objects(client, experiment: str, namespaces: set[str]) -> None:
    """Delete every object labelled for ``experiment`` (manifests, dummy Services), then wait
    until their pods are gone, so the next run starts from nothing of ours."""
    from netemu.api import errors

    order = ("Service", "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Pod", "ConfigMap")
    selector = f"{EXPERIMENT_LABEL}={experiment}"
    for kind in order:
        rt = kinds.by_kind_name(kind)
        if rt is None:
            continue
        for ns in sorted(namespaces):
            try:
                items = (await client.list(rt, ns, label_selector=selector)).items
            except errors.StatusError:
                continue
            for obj in items:
                try:
                    await client.delete(rt, obj["metadata"]["name"], ns, propagation_policy="Background",
                                        grace_period_seconds=0 if kind == "Pod" else None)
                except errors.NotFound:
                    pass
    pods = kinds.by_kind_name("Pod")
    deadline = time.monotonic() + WAIT_TIMEOUT
    while time.monotonic() < deadline:
        left = [p for ns in namespaces for p in (await client.list(pods, ns, label_selector=selector)).items]
        if not left:
            return
        await asyncio.sleep(0.5)
    raise ClusterError(f"pods of experiment {experiment} still there after {WAIT_TIMEOUT:.0f}s")
