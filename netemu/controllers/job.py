"""Job controller: runs a Job's pods to completion or to failure (decisions in job_plan).

Watches Jobs and Pods, creates the pods the plan asks for (names as upstream's generated ones,
chosen here so expectations can track them), deletes the ones it must, PUTs the status
(active/succeeded/failed/ready, startTime, completionTime, conditions) and deletes a finished
Job whose ``ttlSecondsAfterFinished`` has passed (foreground, as the ttl-after-finished
controller does). Pod-creation backoff after failures is not modelled: failed pods are
replaced at once.
"""

from __future__ import annotations

import time

from netemu.api import errors
from netemu.controllers import job_plan as jp
from netemu.controllers.events import NORMAL, WARNING
from netemu.controllers.kube import Obj, name_of
from netemu.controllers.podowner import PodOwner
from netemu.controllers.replicaset import pod_from_template, random_suffix, status_changed
from netemu.controllers.runtime import put_latest, rt, split_key

COMPONENT = "job-controller"


class JobController(PodOwner):
    name = "job"
    service_account = "job-controller"
    other_accounts = {"ttl_client": "ttl-after-finished-controller"}
    kinds = ("Job", "Pod")
    owner_kind, component = "Job", COMPONENT

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        job = self.cache("Job").get(name, ns)
        if job is None:
            self.expectations.forget(key)
            return
        decision = jp.decide(job, self.owned(job), time.time())
        if decision.delete_job:
            try:
                await self.ttl_client.delete(rt("Job"), name, ns, propagation_policy="Foreground")
            except errors.NotFound:
                pass
            return
        if self.expectations.satisfied(key):
            names = [f"{name_of(job)}-{random_suffix()}" for _ in range(decision.create)]
            await self.write_pods(key, job, [(n, pod_from_template(job, n)) for n in names], decision.delete)
        if status_changed(job, decision.status):
            await put_latest(self.client, rt("Job"), job, lambda j: {**j, "status": decision.status},
                             subresource="status")
            self._events(job, decision.status)
        if decision.requeue_after is not None:
            self.queue.add_after(key, decision.requeue_after + 0.05)

    def _events(self, job: Obj, status: Obj) -> None:
        before = {c.get("type") for c in (job.get("status") or {}).get("conditions") or []}
        for c in status.get("conditions") or []:
            if c["type"] in before:
                continue
            if c["type"] == "Complete":
                self.recorder.event(job, NORMAL, "Completed", "Job completed", component=COMPONENT)
            elif c["type"] == "Failed":
                self.recorder.event(job, WARNING, c.get("reason", "Failed"), c.get("message", ""),
                                    component=COMPONENT)
