"""When is the cluster "settled": the barrier before t=0 and behind every ``wait: true`` event.

Settled means what a user waiting by hand would check, in order: every Deployment of the
scenario rolled out (observed generation, updated = ready = wanted replicas, no extra pods), every
bare Pod ready, every Service's EndpointSlices listing exactly its ready pods, and then every
node's kube-proxy has synced *after* that moment with nothing pending (scrape.py), so the
kernel's rules show it. Without the last step a phase could start while some node still
balances over the old endpoints, and its numbers would describe neither state.

With the cloud's edge (``netemu up --edge``) one more step: the provider load balancer has
checked its targets after that and sends each LoadBalancer Service's new connections to the
nodes it should (externalTrafficPolicy Local: those with a ready endpoint; Cluster: every node),
read from the LB's own report (cloud/lbplan.py status_doc). Else a phase through the LB would
start while it still fails open, or still sends to a node that just lost its endpoint.

``deployment_done`` / ``endpoints_match`` / ``lb_mismatch`` are pure; ``wait_settled`` polls.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from netemu.api import kinds

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
WATCH_DELAY = 0.5        # the API's change reaches every kube-proxy's informer well within this


def pod_ready(pod: dict) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


def _selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def deployment_done(dep: dict, pods: list[dict]) -> str | None:
    """None when the Deployment is rolled out with exactly its replicas; else what is missing."""
    spec, st, meta = dep.get("spec") or {}, dep.get("status") or {}, dep["metadata"]
    want = spec.get("replicas", 1)
    if st.get("observedGeneration", 0) < meta.get("generation", 0):
        return f"deployment {meta['name']}: not observed yet"
    for key in ("updatedReplicas", "readyReplicas", "replicas"):
        if st.get(key, 0) != want:
            return f"deployment {meta['name']}: {key} {st.get(key, 0)}/{want}"
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    mine = [p for p in pods if _selects(selector, p["metadata"].get("labels") or {})]
    if len(mine) != want:
        return f"deployment {meta['name']}: {len(mine)} pods, {want} wanted (some still terminating)"
    return None


def endpoints_match(svc: dict, slices: list[dict], pods: list[dict]) -> str | None:
    """None when the Service's slices list exactly its ready pods' addresses."""
    selector = (svc.get("spec") or {}).get("selector") or {}
    if not selector:
        return None
    name = svc["metadata"]["name"]
    want = {p["status"].get("podIP") for p in pods if pod_ready(p) and _selects(selector, p["metadata"].get("labels") or {})}
    have = set()
    for sl in slices:
        if (sl["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) != name:
            continue
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is not False:
                have.update(ep.get("addresses") or [])
    if want != have:
        return f"service {name}: endpoints {len(have)}, ready pods {len(want)}"
    return None


def lb_mismatch(svc: dict, slices: list[dict], lb: dict | None, since: float) -> str | None:
    """None when the provider LB's report (``lb``, newer than ``since``) sends ``svc``'s new
    connections to exactly the nodes it should; else what is still off."""
    spec, meta = svc.get("spec") or {}, svc["metadata"]
    ips = [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [] if i.get("ip")]
    if spec.get("type") != "LoadBalancer" or not ips:
        return None
    key = f"{meta.get('namespace', 'default')}/{meta['name']}"
    if lb is None or lb.get("time", 0) < since:
        return "the provider load balancer has not reported since the change"
    if any(u.startswith(f"{key} ") for u in lb.get("undecided") or []):
        return f"the provider load balancer's health checks of {key} have no verdict yet"
    nodes = set(lb.get("nodes") or [])
    want = nodes
    if spec.get("externalTrafficPolicy") == "Local":
        local = {ep.get("nodeName") for sl in slices if (sl["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
                 == meta["name"] for ep in sl.get("endpoints") or []
                 if (ep.get("conditions") or {}).get("ready") is not False} & nodes
        want = local or nodes                  # no node has an endpoint: the LB fails open
    for ip in ips:
        mine = [lis for lis in lb.get("listeners") or [] if lis.get("service") == key and lis.get("ip") == ip]
        if not mine:
            return f"the provider load balancer has no listener for {key} on {ip} yet"
        for lis in mine:
            if set(lis.get("targets") or []) != want:
                return (f"the provider load balancer sends {key} to {sorted(lis.get('targets') or [])}, "
                        f"not {sorted(want)}")
    return None


async def _state(client, namespaces: set[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"Deployment": [], "Pod": [], "Service": [], "EndpointSlice": []}
    for kind in out:
        for ns in sorted(namespaces):
            out[kind] += (await client.list(kinds.by_kind_name(kind), ns)).items
    return out


async def not_settled(client, scenario, namespaces: set[str]) -> str | None:
    """What is not settled yet among the scenario's objects (None: all of it is)."""
    state = await _state(client, namespaces)
    names = {(m.kind, m.namespace, m.name) for m in scenario.manifests}
    for dep in state["Deployment"]:
        if ("Deployment", dep["metadata"].get("namespace", "default"), dep["metadata"]["name"]) in names:
            why = deployment_done(dep, [p for p in state["Pod"]
                                        if p["metadata"].get("namespace") == dep["metadata"].get("namespace")])
            if why:
                return why
    for pod in state["Pod"]:
        if ("Pod", pod["metadata"].get("namespace", "default"), pod["metadata"]["name"]) in names and not pod_ready(pod):
            return f"pod {pod['metadata']['name']} not ready"
    for svc in state["Service"]:
        ns = svc["metadata"].get("namespace", "default")
        if ("Service", ns, svc["metadata"]["name"]) in names:
            why = endpoints_match(svc, [s for s in state["EndpointSlice"] if s["metadata"].get("namespace") == ns],
                                  [p for p in state["Pod"] if p["metadata"].get("namespace") == ns])
            if why:
                return why
    return None


async def wait_settled(client, scenario, scrapers, timeout: float = 180.0,
                       lb_status: Callable[[], dict | None] | None = None) -> float:
    """Poll until settled (API state, then every kube-proxy synced after it, then, with
    ``lb_status`` (the edge's report), the provider LB); seconds waited. TimeoutError naming
    what was still missing."""
    start = time.monotonic()
    namespaces = {m.namespace for m in scenario.manifests} | {"default"}
    why: str | None = "not checked"
    while time.monotonic() - start < timeout:
        why = await not_settled(client, scenario, namespaces)
        if why is None:
            break
        await asyncio.sleep(0.25)
    else:
        raise TimeoutError(f"not settled after {timeout:.0f}s: {why}")
    await asyncio.sleep(WATCH_DELAY)
    seen = time.time()
    while time.monotonic() - start < timeout:
        if scrapers is None or scrapers.nothing_pending(seen):
            break
        await asyncio.sleep(0.1)
    else:
        raise TimeoutError(f"kube-proxy did not sync within {timeout:.0f}s after the API state settled")
    if lb_status is not None:
        await _wait_lb(client, scenario, namespaces, lb_status, time.time(), start, timeout)
    return time.monotonic() - start


async def _wait_lb(client, scenario, namespaces: set[str], lb_status, since: float, start: float,
                   timeout: float) -> None:
    """The provider LB has checked its targets after ``since`` (the rules synced: its health
    checks now see the new state) and sends every scenario LoadBalancer Service where it should."""
    names = {("Service", m.namespace, m.name) for m in scenario.manifests}
    why: str | None = "not checked"
    while time.monotonic() - start < timeout:
        state = await _state(client, namespaces)
        lb = lb_status()
        why = next((w for svc in state["Service"]
                    if ("Service", svc["metadata"].get("namespace", "default"), svc["metadata"]["name"]) in names
                    for w in [lb_mismatch(svc, [s for s in state["EndpointSlice"] if s["metadata"].get("namespace")
                                                == svc["metadata"].get("namespace")], lb, since)] if w), None)
        if why is None:
            return
        await asyncio.sleep(0.25)
    raise TimeoutError(f"not settled after {timeout:.0f}s: {why}")
