"""DaemonSet controller: one pod per eligible node, node by node rolling updates, the revision
history, honest status.

The decisions are pure: netemu.controllers.daemonset_plan (pods), daemonset_history
(ControllerRevisions), claim (adoption). This loop watches DaemonSets, Pods, Nodes and
ControllerRevisions and, as upstream's syncDaemonSet: claims the pods and revisions its selector
matches (adopting orphans, releasing what stopped matching), brings the history in step with the
template (what ``kubectl rollout history/undo ds`` read and apply), creates daemon pods (unbound:
the scheduler binds them through their node-name affinity, as upstream since 1.12), deletes the
planned ones, prunes old history and PUTs the status ``kubectl rollout status ds/NAME`` reads. A
pod left on a node that was deleted is the pod garbage collector's (netemu.controllers.podgc).
"""

from __future__ import annotations

import time

from netemu.api import errors
from netemu.controllers import claim, daemonset_history as dh, daemonset_plan as dp, history
from netemu.controllers.claim import OrphanWatch
from netemu.controllers.kube import Obj, is_deleting, name_of, ns_of
from netemu.controllers.podowner import PodOwner
from netemu.controllers.replicaset import status_changed
from netemu.controllers.runtime import delete_seen, put_latest, rt, split_key


class DaemonSetController(OrphanWatch, PodOwner):
    name = "daemonset"
    service_account = "daemon-set-controller"
    kinds = ("DaemonSet", "Pod", "Node", "ControllerRevision")
    owner_kind, component = "DaemonSet", "daemonset-controller"

    def setup(self) -> None:
        super().setup()
        self.cache("Node").add_handler(self._node, lambda o, n: self._node(n), self._node)
        self.watch_orphans("Pod")
        self.watch_orphans("ControllerRevision", owned_too=True)

    def expectation_name(self, pod: Obj) -> str:
        return dp.target_node(pod)      # pods are made with generateName: creates are keyed by node

    def _node(self, node: Obj) -> None:
        for ds in self.cache("DaemonSet").list():
            self.enqueue_obj(ds)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        ds = self.cache("DaemonSet").get(name, ns)
        if ds is None:
            self.expectations.forget(key)
            return
        if is_deleting(ds):
            return       # upstream: its pods and history may be going too; status would be a guess
        can_adopt = claim.recheck_deletion(self.client, rt("DaemonSet"), ds)     # upstream dsNotDeleted
        # upstream order: constructHistory's ClaimControllerRevisions, then manage's ClaimPods; a
        # failed adoption or release ends the sync before anything is created or deleted
        revisions = await claim.write(self.client, rt("ControllerRevision"), ds,
                                      claim.claim(ds, self.cache("ControllerRevision").list(ns)), can_adopt)
        pods = await claim.write(self.client, rt("Pod"), ds, claim.claim(ds, self.cache("Pod").list(ns)), can_adopt)
        step = await self._history(ds, revisions, pods)
        nodes = self.cache("Node").list()
        observe = self.expectations.satisfied(key)
        if observe:
            plan = dp.plan(ds, nodes, pods, hash_=step.hash)
            creates = [(node, dp.new_pod(ds, node, step.hash)) for node in dict.fromkeys(plan.create)]
            await self.write_pods(key, ds, creates, list({p["metadata"]["name"]: p for p in plan.delete}.values()))
            await self._delete_revisions(dh.cleanup(ds, step.old, pods))
        status = dp.status_for(ds, nodes, pods, time.time(), step.hash, observe)
        if status_changed(ds, status):
            await put_latest(self.client, rt("DaemonSet"), ds, lambda d: {**d, "status": status},
                             subresource="status")
        if status["numberReady"] != status["numberAvailable"] or status["numberUnavailable"]:
            self.queue.add_after(key, 1.0)       # minReadySeconds and the rollout's next node

    async def _history(self, ds: Obj, revisions: list[Obj], pods: list[Obj]) -> dh.DaemonSetHistory:
        """constructHistory's writes; a failed write raises, and the sync is retried."""
        step = dh.construct(ds, revisions, pods)
        kind = rt("ControllerRevision")
        for rev in step.label:
            await self.client.update(kind, rev)
        if step.create is not None:
            await self._snapshot(ds, step.create)
        if step.renumber is not None:
            await self.client.update(kind, step.renumber)
        for pod in step.relabel:
            await self.client.patch(rt("Pod"), name_of(pod), {"metadata": {"labels": {dp.HASH_LABEL: step.hash}}},
                                    ns_of(pod), patch_type="strategic")
        await self._delete_revisions(step.duplicates)
        return step

    async def _snapshot(self, ds: Obj, revision: Obj) -> None:
        """Create the current revision. Its name taken by another template (a hash collision)
        bumps status.collisionCount, which changes the hash, and fails this sync (upstream snapshot)."""
        kind = rt("ControllerRevision")
        try:
            await self.client.create(kind, revision, ns_of(ds))
            return
        except errors.AlreadyExists:
            existing = await self.client.get(kind, name_of(revision), ns_of(ds))
        if history.matches(ds, existing):
            return                                  # ours, the cache had not shown it yet
        latest = await self.client.get(rt("DaemonSet"), name_of(ds), ns_of(ds))
        count = (ds.get("status") or {}).get("collisionCount")
        if (latest.get("status") or {}).get("collisionCount") != count:
            raise errors.Conflict(f"stale collisionCount of DaemonSet {name_of(ds)}: will retry")
        latest["status"] = {**(latest.get("status") or {}), "collisionCount": int(count or 0) + 1}
        await self.client.update(rt("DaemonSet"), latest, subresource="status")
        raise errors.AlreadyExists(f"ControllerRevision {name_of(revision)} holds another template: "
                                   f"collisionCount of DaemonSet {name_of(ds)} is now {int(count or 0) + 1}")

    async def _delete_revisions(self, revisions: list[Obj]) -> None:
        for rev in revisions:
            await delete_seen(self.client, rt("ControllerRevision"), rev)
