"""What the Job controller decides (pure), after pkg/controller/job/job_controller.go (v1.32):

- pods run until ``completions`` succeeded (NonIndexed), at most ``parallelism`` at a time; with
  no ``completions`` (a work queue) the Job is complete once one pod succeeded and none runs;
- failures are the Failed pods plus, with restartPolicy OnFailure, the container restarts; more
  than ``backoffLimit`` fails the Job (BackoffLimitExceeded), as does running longer than
  ``activeDeadlineSeconds`` (DeadlineExceeded): first the FailureTarget condition while its
  running pods are deleted, then Failed;
- ``suspend`` deletes the running pods and sets Suspended;
- a finished Job with ``ttlSecondsAfterFinished`` is deleted that long after it finished (the
  ttl-after-finished controller's rule).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from netemu.controllers.kube import Obj, is_deleting, parse_time, pod_is_ready
from netemu.controllers.replicaset import pods_to_delete

BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"


def stamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def _phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase", "")


def _restarts(pod: Obj) -> int:
    return sum(int(c.get("restartCount") or 0) for c in (pod.get("status") or {}).get("containerStatuses") or [])


def has_condition(job: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def finished(job: Obj) -> bool:
    return has_condition(job, "Complete") or has_condition(job, "Failed")


def finish_time(job: Obj) -> float | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return parse_time(c.get("lastTransitionTime"))
    return None


@dataclass
class Decision:
    create: int = 0
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    requeue_after: float | None = None      # the deadline or the TTL comes later
    delete_job: bool = False                # ttlSecondsAfterFinished has passed


def _condition(ctype: str, reason: str, message: str, now: float) -> Obj:
    t = stamp(now)
    return {"type": ctype, "status": "True", "lastProbeTime": t, "lastTransitionTime": t,
            "reason": reason, "message": message}


def _with(conditions: list[Obj], cond: Obj) -> list[Obj]:
    if any(c.get("type") == cond["type"] and c.get("status") == "True" for c in conditions):
        return conditions
    return [c for c in conditions if c.get("type") != cond["type"]] + [cond]


def decide(job: Obj, owned: list[Obj], now: float) -> Decision:
    spec, old = job.get("spec") or {}, job.get("status") or {}
    restart = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    active = [p for p in owned if _phase(p) not in ("Succeeded", "Failed") and not is_deleting(p)]
    succeeded = sum(1 for p in owned if _phase(p) == "Succeeded")
    failed = sum(1 for p in owned if _phase(p) == "Failed")
    if restart == "OnFailure":
        failed += sum(_restarts(p) for p in active)
    conditions = list(old.get("conditions") or [])
    d = Decision()
    start = old.get("startTime")
    if start is None and not spec.get("suspend") and not finished(job):
        start = stamp(now)
    if finished(job):
        d.delete = active if has_condition(job, "Failed") else []
        ttl, done = spec.get("ttlSecondsAfterFinished"), finish_time(job)
        if ttl is not None and done is not None and not is_deleting(job):
            d.delete_job = now >= done + ttl
            d.requeue_after = None if d.delete_job else done + ttl - now
    else:
        failure = _failure(spec, failed, start, now)
        completions = spec.get("completions")
        complete = (succeeded >= completions) if completions is not None else (succeeded > 0 and not active)
        if failure:
            conditions = _with(conditions, _condition("FailureTarget", *failure, now))
            d.delete = active
            if not active:
                conditions = _with(conditions, _condition("Failed", *failure, now))
        elif complete:
            conditions = _with(conditions, _condition("Complete", "", "", now))
            old = dict(old, completionTime=stamp(now))
            d.delete = active
        elif spec.get("suspend"):
            conditions = _with(conditions, _condition("Suspended", "JobSuspended", "Job suspended", now))
            d.delete = active
        else:
            conditions = [c for c in conditions if c.get("type") != "Suspended"]
            _scale(d, spec, active, succeeded)
            deadline = spec.get("activeDeadlineSeconds")
            if deadline and start:
                d.requeue_after = max(0.0, (parse_time(start) or now) + deadline - now)
    d.status = _status(old, start, active, d.delete, succeeded, failed, conditions)
    return d


def _failure(spec: Obj, failed: int, start: str | None, now: float) -> tuple[str, str] | None:
    if failed > int(spec.get("backoffLimit", 6)):
        return "BackoffLimitExceeded", BACKOFF_MESSAGE
    deadline = spec.get("activeDeadlineSeconds")
    if deadline and start and now - (parse_time(start) or now) >= deadline:
        return "DeadlineExceeded", DEADLINE_MESSAGE
    return None


def _scale(d: Decision, spec: Obj, active: list[Obj], succeeded: int) -> None:
    """manageJob: as many pods as parallelism allows and completions still need."""
    parallelism, completions = int(spec.get("parallelism", 1)), spec.get("completions")
    if completions is None:
        want = len(active) if succeeded > 0 else parallelism
    else:
        want = max(0, min(parallelism, int(completions) - succeeded))
    if len(active) < want:
        d.create = want - len(active)
    elif len(active) > want:
        d.delete = pods_to_delete(active, len(active) - want)


def _status(old: Obj, start: str | None, active: list[Obj], deleting: list[Obj], succeeded: int, failed: int,
            conditions: list[Obj]) -> Obj:
    gone = {id(p) for p in deleting}
    running = [p for p in active if id(p) not in gone]
    status: Obj = {"active": len(running), "succeeded": succeeded, "failed": failed,
                   "ready": sum(1 for p in running if pod_is_ready(p)), "terminating": 0,
                   "uncountedTerminatedPods": {}}
    if start:
        status["startTime"] = start
    if old.get("completionTime"):
        status["completionTime"] = old["completionTime"]
    if conditions:
        status["conditions"] = conditions
    return status
