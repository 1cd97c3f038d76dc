"""Job controller: runs a Job's pods to completion or to failure (decisions in job_plan).

Watches Jobs and Pods, creates the pods the plan asks for (names as upstream's generated ones,
chosen here so expectations can track them), deletes the ones it must, PUTs the status
(active/succeeded/failed/ready, startTime, completionTime, conditions) and deletes a finished
Job whose ``ttlSecondsAfterFinished`` has passed (foreground, as the ttl-after-finished
controller does). Pod-creation backoff after failures is not modelled: failed pods are
replaced at once.
"""

from __future__ import annotations

import asyncio
import time

from netemu.api import errors
from netemu.controllers import job_plan as jp
from netemu.controllers.events import NORMAL, WARNING
from netemu.controllers.kube import Obj, controller_ref, key_of, name_of, ns_of, uid_of
from netemu.controllers.replicaset import raise_first, random_suffix, status_changed
from netemu.controllers.runtime import Controller, Expectations, put_latest, rt, split_key

COMPONENT = "job-controller"


class JobController(Controller):
    name = "job"
    service_account = "job-controller"
    other_accounts = {"ttl_client": "ttl-after-finished-controller"}
    kinds = ("Job", "Pod")

    def setup(self) -> None:
        self.expectations = Expectations()
        self.cache("Job").add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n),
                                      lambda job: self.expectations.forget(key_of(job)))
        self.cache("Pod").add_handler(self._pod_added, lambda o, n: self._pod_changed(n), self._pod_deleted)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_ref(pod)
        return f"{ns_of(pod)}/{ref['name']}" if ref and ref.get("kind") == "Job" else None

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.observed_create(key, name_of(pod))
            self.queue.add(key)

    def _pod_changed(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.observed_delete(key, name_of(pod))
            self.queue.add(key)

    async def resync_all(self) -> None:
        for job in self.cache("Job").list():
            self.enqueue_obj(job)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        job = self.cache("Job").get(name, ns)
        if job is None:
            self.expectations.forget(key)
            return
        owned = [p for p in self.cache("Pod").list(ns) if (controller_ref(p) or {}).get("uid") == uid_of(job)]
        decision = jp.decide(job, owned, time.time())
        if decision.delete_job:
            try:
                await self.ttl_client.delete(rt("Job"), name, ns, propagation_policy="Foreground")
            except errors.NotFound:
                pass
            return
        if self.expectations.satisfied(key):
            await self._manage(key, job, decision)
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

    async def _manage(self, key: str, job: Obj, decision: jp.Decision) -> None:
        async def create() -> None:
            pod_name = f"{name_of(job)}-{random_suffix()}"
            self.expectations.expect_create(key, pod_name)
            try:
                await self.client.create(rt("Pod"), jp.pod_from_template(job, pod_name), ns_of(job))
            except errors.StatusError as exc:
                self.expectations.observed_create(key, pod_name)
                self.recorder.event(job, WARNING, "FailedCreate", f"Error creating: {exc}", component=COMPONENT)
                raise
            self.recorder.event(job, NORMAL, "SuccessfulCreate", f"Created pod: {pod_name}", component=COMPONENT)

        async def delete(pod: Obj) -> None:
            self.expectations.expect_delete(key, name_of(pod))
            try:
                await self.client.delete(rt("Pod"), name_of(pod), ns_of(pod))
            except errors.NotFound:
                self.expectations.observed_delete(key, name_of(pod))
                return
            self.recorder.event(job, NORMAL, "SuccessfulDelete", f"Deleted pod: {name_of(pod)}",
                                component=COMPONENT)
        results = await asyncio.gather(*(create() for _ in range(decision.create)),
                                       *(delete(p) for p in decision.delete), return_exceptions=True)
        raise_first(results)
