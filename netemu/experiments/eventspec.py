"""The timeline's event kinds: what each takes, checked before anything starts (pure).

A timeline entry is ``at: SECONDS`` plus exactly one kind key, e.g.::

    - at: 10
      scale: {deployment: web, replicas: 4}
      wait: true            # hold the timeline until the change has settled (see below)

Each kind reads its arguments here into plain params, and names what it touches (``Ref``: a
Deployment, Service, Pod or node) so validation can check every target exists in the scenario's
manifests or topology, and what it needs from the kernel (``needs``: features.NEEDS keys). The
effects live in actions.py, one function per kind, keyed by the same names.

``wait: true`` (scale, delete_pod, rollout, drain, dummy_services, service, agent) holds the
timeline until the change has settled: the Deployment's pods ready and every node's kube-proxy
synced after it; later events and phases move by the time it took (reported in events.json).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from netemu.experiments.agentctl import COMPONENTS as AGENT_COMPONENTS   # agent: all of a node's
from netemu.experiments.fields import Fields, seconds

_SELECTOR = re.compile(r"^[A-Za-z0-9./_-]+(=[A-Za-z0-9._-]*)?(,[A-Za-z0-9./_-]+(=[A-Za-z0-9._-]*)?)*$")
AFFINITIES = ("None", "ClientIP")
POLICIES = ("Cluster", "Local")
AGENT_ACTIONS = ("stop", "start", "kill")
LINK_STATES = ("up", "down")


@dataclass(frozen=True)
class Ref:
    """Something an event or phase names: kind (Deployment, Service, Pod, node), namespace, name."""

    kind: str
    name: str
    namespace: str = "default"
    line: int | None = None


@dataclass
class Parsed:
    params: dict[str, Any] = field(default_factory=dict)
    refs: list[Ref] = field(default_factory=list)
    needs: list[tuple[str, str]] = field(default_factory=list)    # (NEEDS key, what the user asked)
    waitable: bool = False


def _ns(f: Fields) -> str:
    return f.str("namespace", "default") or "default"


def _selector(f: Fields, key: str, required: bool = False) -> str | None:
    value = f.str(key, required=required)
    if value is not None and not _SELECTOR.match(value):
        f.bad(key, f"{value!r} is not a label selector (key=value[,key=value])")
        return None
    return value


def scale(f: Fields) -> Parsed:
    f.only(("deployment", "replicas", "namespace"))
    ns = _ns(f)
    name = f.str("deployment", required=True)
    return Parsed({"deployment": name, "replicas": f.int("replicas", required=True, minimum=0), "namespace": ns},
                  [Ref("Deployment", name, ns, f.here("deployment"))] if name else [], waitable=True)


def delete_pod(f: Fields) -> Parsed:
    f.only(("name", "selector", "count", "node", "grace_period", "namespace"))
    ns = _ns(f)
    name, selector = f.str("name"), _selector(f, "selector")
    if (name is None) == (selector is None):
        f.bad(None, "give the pod's name or a selector (and count), one of them")
    node = f.str("node")
    refs = [Ref("Pod", name, ns, f.here("name"))] if name else []
    refs += [Ref("node", node, line=f.here("node"))] if node else []
    return Parsed({"name": name, "selector": selector, "count": f.int("count", 1, minimum=1), "node": node,
                   "grace_period": f.int("grace_period", None, minimum=0), "namespace": ns}, refs, waitable=True)


def rollout(f: Fields) -> Parsed:
    f.only(("deployment", "image", "args", "namespace"))
    ns = _ns(f)
    name = f.str("deployment", required=True)
    args = f.strings("args") if f.has("args") else None
    return Parsed({"deployment": name, "image": f.str("image"), "args": args, "namespace": ns},
                  [Ref("Deployment", name, ns, f.here("deployment"))] if name else [], waitable=True)


def link(f: Fields) -> Parsed:
    f.only(("node", "state", "bw", "delay", "jitter", "loss", "reset"))
    node = f.str("node", required=True)
    state = f.str("state", choices=LINK_STATES)
    shaping = {"bw": f.number("bw", positive=True), "delay": f.duration("delay"), "jitter": f.duration("jitter"),
               "loss": f.number("loss", minimum=0, maximum=100)}
    reset = f.bool("reset")
    given = [k for k, v in shaping.items() if v is not None]
    if sum(bool(x) for x in (state, given, reset)) != 1:
        f.bad(None, "give one of: state (up|down), shaping (bw Mbit/s, delay, jitter, loss %), or reset: true")
    needs = []
    netem = [k for k in ("delay", "jitter", "loss") if shaping[k]]
    if netem:
        needs.append(("link:netem", f"link {', '.join(netem)}"))
    if shaping["bw"] and not netem:
        needs.append(("link:bw", "link bw"))
    return Parsed({"node": node, "state": state, "reset": reset, **shaping},
                  [Ref("node", node, line=f.here("node"))] if node else [], needs)


def agent(f: Fields) -> Parsed:
    f.only(("node", "action", "component"))
    node = f.str("node", required=True)
    return Parsed({"node": node, "action": f.str("action", required=True, choices=AGENT_ACTIONS),
                   "component": f.str("component", "agent", choices=AGENT_COMPONENTS)},
                  [Ref("node", node, line=f.here("node"))] if node else [], waitable=True)


def drain(f: Fields) -> Parsed:
    f.only(("node", "grace_period"))
    node = f.str("node", required=True)
    return Parsed({"node": node, "grace_period": f.int("grace_period", None, minimum=0)},
                  [Ref("node", node, line=f.here("node"))] if node else [], waitable=True)


def uncordon(f: Fields) -> Parsed:
    f.only(("node",))
    node = f.str("node", required=True)
    return Parsed({"node": node}, [Ref("node", node, line=f.here("node"))] if node else [])


def service(f: Fields) -> Parsed:
    f.only(("name", "namespace", "session_affinity", "affinity_timeout", "external_traffic_policy",
            "internal_traffic_policy"))
    ns = _ns(f)
    name = f.str("name", required=True)
    params = {"name": name, "namespace": ns,
              "session_affinity": f.str("session_affinity", choices=AFFINITIES),
              "affinity_timeout": f.int("affinity_timeout", minimum=1, maximum=86400),
              "external_traffic_policy": f.str("external_traffic_policy", choices=POLICIES),
              "internal_traffic_policy": f.str("internal_traffic_policy", choices=POLICIES)}
    if all(params[k] is None for k in list(params)[2:]):
        f.bad(None, "change at least one of session_affinity, affinity_timeout, external_traffic_policy, "
                    "internal_traffic_policy")
    return Parsed(params, [Ref("Service", name, ns, f.here("name"))] if name else [], waitable=True)


def dummy_services(f: Fields) -> Parsed:
    f.only(("count", "selector", "port", "target_port", "prefix", "namespace"))
    prefix = f.str("prefix", "dummy")
    if prefix and not re.match(r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$", prefix):
        f.bad("prefix", f"{prefix!r}: a short lowercase DNS label (names are PREFIX-N)")
    return Parsed({"count": f.int("count", required=True, minimum=1, maximum=20000),
                   "selector": _selector(f, "selector"), "port": f.int("port", 80, minimum=1, maximum=65535),
                   "target_port": f.int("target_port", None, minimum=1, maximum=65535), "prefix": prefix,
                   "namespace": _ns(f)}, waitable=True)


KINDS: dict[str, Callable[[Fields], Parsed]] = {
    "scale": scale, "delete_pod": delete_pod, "rollout": rollout, "link": link, "agent": agent,
    "drain": drain, "uncordon": uncordon, "service": service, "dummy_services": dummy_services,
}
KIND_HELP = {
    "scale": "set a Deployment's replicas",
    "delete_pod": "delete a pod by name, or COUNT pods of a selector (optionally on one node)",
    "rollout": "rolling update of a Deployment (new image/args, or a restart like kubectl rollout restart)",
    "link": "cut/restore a node's links (state), shape them (bw, delay, jitter, loss: delay/loss need netem), reset",
    "agent": "stop (SIGTERM), kill (SIGKILL) or start a node's agent",
    "drain": "cordon a node and evict its pods",
    "uncordon": "make a node schedulable again",
    "service": "change a Service's sessionAffinity (and timeout) or traffic policies",
    "dummy_services": "add COUNT Services (optionally selecting pods) to load the proxy's rule set",
}


def parse_at(value: Any) -> float | None:
    return seconds(value)
