"""Pod status from the kubelet's view of its containers (pure).

Mirrors upstream's pkg/kubelet/kubelet_pods.go (getPhase, generateAPIPodStatus) and
pkg/kubelet/status/generate.go: the phase follows from container states and restartPolicy, the
conditions are PodReadyToStartContainers, Initialized, ContainersReady, Ready and PodScheduled,
and each containerStatus carries state, lastState, ready, started and restartCount.
"""

from __future__ import annotations

from dataclasses import dataclass

from netemu.agent.kubelet.conditions import parse_time, rfc3339, set_condition
from netemu.api.meta import Obj


@dataclass
class ContainerRecord:
    """What the kubelet knows about one container of a pod (its current instance)."""

    name: str
    image: str
    state: str = "waiting"                 # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    restart_count: int = 0
    last_terminated: Obj | None = None     # the previous instance's terminated state
    ready: bool = False
    started: bool = False
    container_id: str = ""

    def terminated_state(self) -> Obj:
        out: Obj = {"exitCode": self.exit_code if self.exit_code is not None else 0,
                    "reason": self.reason or ("Completed" if not self.exit_code else "Error")}
        if self.message:
            out["message"] = self.message
        if self.started_at:
            out["startedAt"] = rfc3339(self.started_at)
        if self.finished_at:
            out["finishedAt"] = rfc3339(self.finished_at)
        if self.container_id:
            out["containerID"] = self.container_id
        return out

    def api_state(self) -> Obj:
        if self.state == "running":
            return {"running": {"startedAt": rfc3339(self.started_at or 0)}}
        if self.state == "terminated":
            return {"terminated": self.terminated_state()}
        waiting: Obj = {"reason": self.reason}
        if self.message:
            waiting["message"] = self.message
        return {"waiting": waiting}

    def api_status(self) -> Obj:
        out: Obj = {"name": self.name, "image": self.image, "imageID": "", "ready": self.ready,
                    "started": self.started, "restartCount": self.restart_count,
                    "state": self.api_state(), "lastState": {}}
        if self.last_terminated:
            out["lastState"] = {"terminated": dict(self.last_terminated)}
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def pod_phase(records: list[ContainerRecord], restart_policy: str) -> str:
    """upstream getPhase for regular containers."""
    pending = running = stopped = succeeded = 0
    for r in records:
        if r.state == "running":
            running += 1
        elif r.state == "terminated":
            stopped += 1
            succeeded += r.exit_code == 0
        elif r.last_terminated is not None:
            stopped += 1
            succeeded += (r.last_terminated.get("exitCode") == 0)
        else:
            pending += 1
    if pending > 0 or not records:
        return "Pending"
    if running > 0:
        return "Running"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    if restart_policy == "Never":
        return "Failed"
    return "Running"


def _not_ready_message(names: list[str]) -> str:
    return f"containers with unready status: [{' '.join(names)}]"


def init_done(rec: ContainerRecord) -> bool:
    return rec.state == "terminated" and rec.exit_code == 0


def pod_conditions(previous: list[Obj], records: list[ContainerRecord], phase: str,
                   sandbox_ready: bool, now: float, init_records: list[ContainerRecord] = ()) -> list[Obj]:
    stamp = rfc3339(now)
    unready = [r.name for r in records if not r.ready]
    conds = list(previous or [])
    done = phase in ("Succeeded", "Failed")
    incomplete = [r.name for r in init_records if not init_done(r)]
    initialized = ({"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized",
                    "message": f"containers with incomplete status: [{' '.join(incomplete)}]"}
                   if incomplete else {"type": "Initialized", "status": "True"})
    sets: list[Obj] = [
        {"type": "PodReadyToStartContainers", "status": "True" if sandbox_ready and not done else "False"},
        initialized,
    ]
    if done:
        ready = {"status": "False", "reason": "PodCompleted"}
    elif unready:
        ready = {"status": "False", "reason": "ContainersNotReady", "message": _not_ready_message(unready)}
    else:
        ready = {"status": "True"}
    sets += [dict(ready, type="ContainersReady"), dict(ready, type="Ready"),
             {"type": "PodScheduled", "status": "True"}]
    for new in sets:
        cur = next((c for c in conds if c.get("type") == new["type"]), None)
        if cur is not None and new["status"] == "True":
            conds = [c for c in conds if c is not cur]
            conds.append({k: v for k, v in cur.items() if k not in ("reason", "message")})
        conds = set_condition(conds, dict(new, lastProbeTime=None), stamp)
    order = {t: i for i, t in enumerate(("PodReadyToStartContainers", "Initialized", "Ready",
                                         "ContainersReady", "PodScheduled"))}
    return sorted(conds, key=lambda c: order.get(c.get("type"), 99))


def pod_status(pod: Obj, records: list[ContainerRecord], *, pod_ip: str | None, host_ip: str,
               sandbox_ready: bool, start_time: float, now: float,
               init_records: list[ContainerRecord] = (),
               ephemeral_records: list[ContainerRecord] = ()) -> Obj:
    """The whole status the kubelet writes (pods/status); deterministic for the same inputs
    apart from condition transition times, so an unchanged pod is not rewritten."""
    previous = (pod.get("status") or {}).get("conditions") or []
    restart_policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    phase = pod_phase(records, restart_policy)
    if restart_policy == "Never" and any(r.state == "terminated" and r.exit_code for r in init_records):
        phase = "Failed"              # upstream: a failed init container with Never fails the pod
    conds = pod_conditions(previous, records, phase, sandbox_ready, now, init_records)
    status: Obj = {"phase": phase, "conditions": conds,
                   "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "startTime": rfc3339(start_time),
                   "qosClass": qos_class(pod),
                   "containerStatuses": [r.api_status() for r in records]}
    if init_records:
        status["initContainerStatuses"] = [r.api_status() for r in init_records]
    if ephemeral_records:
        status["ephemeralContainerStatuses"] = [r.api_status() for r in ephemeral_records]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status


def qos_class(pod: Obj) -> str:
    """Guaranteed / Burstable / BestEffort from requests and limits (upstream qos.GetPodQOS, simplified
    to cpu and memory)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    any_set, guaranteed = False, True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or str(req.get(r, lim[r])) != str(lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def comparable(status: Obj) -> Obj:
    """The status without timestamps that change on every computation (to skip no-op writes)."""
    out = dict(status)
    out["conditions"] = [{k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastProbeTime")}
                         for c in status.get("conditions") or []]
    return out


def adopt(records: dict[str, ContainerRecord], pod: Obj, node_ip: str, now: float) -> tuple[bool, float | None]:
    """A pod this node already ran (its status names our hostIP) seen by a restarted agent:
    carry over what the API recorded, so restart counts do not reset and a finished container
    is not run again. A container that was running is counted as restarted with upstream's
    lastState after a lost runtime (Unknown, exit 255). Returns (adopted, the pod's startTime
    if recorded). Mutates ``records``."""
    status = pod.get("status") or {}
    if not node_ip or status.get("hostIP") != node_ip:
        return False, None
    for cs in ((status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
               + (status.get("ephemeralContainerStatuses") or [])):
        rec = records.get(cs.get("name"))
        if rec is None:
            continue
        state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated")
        rec.restart_count = int(cs.get("restartCount") or 0)
        rec.last_terminated = dict(last) if last else None
        if "terminated" in state:
            t = state["terminated"]
            rec.state, rec.exit_code = "terminated", int(t.get("exitCode") or 0)
            rec.reason, rec.message = t.get("reason") or "", t.get("message") or ""
            rec.started_at, rec.finished_at = parse_time(t.get("startedAt")), parse_time(t.get("finishedAt"))
        elif "running" in state:
            started = state["running"].get("startedAt")
            rec.last_terminated = {"exitCode": 255, "reason": "Unknown", "startedAt": started,
                                   "finishedAt": rfc3339(now)}      # the restart itself counts it
    return True, parse_time(status.get("startTime"))
