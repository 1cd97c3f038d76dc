"""StatefulSet controller loop: reads the caches, asks ``statefulset_plan`` what to do, writes it.

Pods have fixed names, so no expectations are needed (upstream's controller keeps none either):
a create the cache has not shown yet fails AlreadyExists on the next sync and is ignored; a
delete of a pod already going is NotFound or a no-op. Status goes through the status subresource.
"""

from __future__ import annotations

import time

from netemu.api import errors
from netemu.controllers import claim, statefulset_history as sh, statefulset_plan as sp
from netemu.controllers.claim import OrphanWatch
from netemu.controllers.events import NORMAL, WARNING
from netemu.controllers.kube import Obj, controller_ref, labels_of, name_of, ns_of, selector_matches
from netemu.controllers.replicaset import is_available, status_changed
from netemu.controllers.runtime import Controller, delete_seen, put_latest, rt, split_key

COMPONENT = "statefulset-controller"


class StatefulSetController(OrphanWatch, Controller):
    name = "statefulset"
    service_account = "statefulset-controller"
    kinds = ("StatefulSet", "Pod", "ControllerRevision")
    owner_kind = "StatefulSet"

    def setup(self) -> None:
        self.cache("StatefulSet").add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n), lambda o: None)
        self.cache("Pod").add_handler(self._pod_changed, lambda o, n: (self._pod_changed(o), self._pod_changed(n)),
                                      self._pod_changed)
        self.watch_orphans("Pod")

    def _pod_changed(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref and ref.get("kind") == "StatefulSet":
            self.queue.add(f"{ns_of(pod)}/{ref['name']}")

    async def resync_all(self) -> None:
        for sts in self.cache("StatefulSet").list():
            self.enqueue_obj(sts)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        sts = self.cache("StatefulSet").get(name, ns)
        if sts is None:
            return
        pods, revisions = await self._claim(sts)
        update = sp.revision_name(sts)
        current = (sts.get("status") or {}).get("currentRevision") or update
        await self._history(sts, revisions, pods, current)
        step = sp.plan(sts, pods, update)
        for ordinal in step.create:
            await self._create(sts, ordinal, sp.create_revision(sts, ordinal, current, update), current, pods,
                               revisions)
        for pod in step.delete:
            await self._delete(sts, pod)
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        now = time.time()
        status = sp.status_for(sts, pods, update, lambda p: is_available(p, min_ready, now))
        if status_changed(sts, status):
            await put_latest(self.client, rt("StatefulSet"), sts, lambda s: {**s, "status": status},
                             subresource="status")
        if min_ready and status["readyReplicas"] != status["availableReplicas"]:
            self.queue.add_after(key, 1.0)

    async def _claim(self, sts: Obj) -> tuple[list[Obj], list[Obj]]:
        """The set's pods and revisions, in upstream sync's order: adoptOrphanRevisions first
        (revisions are adopted, never released; the first failure ends the sync), then
        getPodsForStatefulSet (ClaimPods with the pod-name filter; its errors end the sync
        together). Each asks the server once whether the set may adopt (upstream canAdoptFunc)."""
        ns = ns_of(sts)
        revisions = claim.claim(sts, self.cache("ControllerRevision").list(ns))
        await self._adopt_revisions(sts, revisions.adopt)
        pods = claim.claim(sts, self.cache("Pod").list(ns), lambda p: sp.ordinal_of(sts, p) is not None
                           and selector_matches((sts.get("spec") or {}).get("selector"), labels_of(p)))
        can_adopt = claim.recheck_deletion(self.client, rt("StatefulSet"), sts)
        return await claim.write(self.client, rt("Pod"), sts, pods, can_adopt), revisions.owned

    async def _adopt_revisions(self, sts: Obj, orphans: list[Obj]) -> None:
        """Upstream adoptOrphanRevisions + AdoptOrphanRevisions: one uncached check, then each
        orphan's patch; any error (NotFound too) is raised at once."""
        if not orphans:
            return
        try:
            await claim.recheck_deletion(self.client, rt("StatefulSet"), sts)()
        except Exception as exc:
            raise claim.CannotAdopt(f"can't adopt ControllerRevisions: {exc}") from exc
        for rev in orphans:
            await self.client.patch(rt("ControllerRevision"), name_of(rev), claim.adopt_patch(sts, rev), ns_of(rev),
                                    patch_type="strategic")

    async def _history(self, sts: Obj, revisions: list[Obj], pods: list[Obj], current: str) -> None:
        """Keep the ControllerRevisions (``kubectl rollout history/undo sts``) in step."""
        step = sh.plan_history(sts, revisions, pods, current)
        kind = rt("ControllerRevision")
        try:
            if step.create is not None:
                await self.client.create(kind, step.create, ns_of(sts))
            if step.renumber is not None:
                await self.client.update(kind, step.renumber)
        except (errors.AlreadyExists, errors.Conflict, errors.NotFound):
            pass                                   # the cache was behind: the next sync sees it
        for old in step.delete:
            await delete_seen(self.client, kind, old)

    async def _create(self, sts: Obj, ordinal: int, revision: str, current: str, pods: list[Obj],
                      revisions: list[Obj]) -> None:
        template = (sts.get("spec") or {}).get("template") or {}
        if revision != sp.revision_name(sts):     # below the partition: the current revision's spec
            stored = next((r for r in revisions if name_of(r) == current), None)
            donor = next((p for p in pods if sp.revision_of(p) == current), None)
            if stored is not None:
                template = sh.template_of(stored)
            elif donor is not None:
                template = sp.template_of_pod(donor)
            else:
                revision = sp.revision_name(sts)
        pod = sp.pod_for(sts, ordinal, revision, template)
        try:
            await self.client.create(rt("Pod"), pod, ns_of(sts))
        except errors.AlreadyExists:
            return
        except errors.StatusError as exc:
            self.recorder.event(sts, WARNING, "FailedCreate",
                                f"create Pod {name_of(pod)} in StatefulSet {name_of(sts)} failed error: {exc}",
                                component=COMPONENT)
            raise
        self.recorder.event(sts, NORMAL, "SuccessfulCreate",
                            f"create Pod {name_of(pod)} in StatefulSet {name_of(sts)} successful", component=COMPONENT)

    async def _delete(self, sts: Obj, pod: Obj) -> None:
        if not await delete_seen(self.client, rt("Pod"), pod):
            return
        self.recorder.event(sts, NORMAL, "SuccessfulDelete",
                            f"delete Pod {name_of(pod)} in StatefulSet {name_of(sts)} successful", component=COMPONENT)
