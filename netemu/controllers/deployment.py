"""Deployment controller: one ReplicaSet per pod template, rolled over by the strategy.

The arithmetic lives in rollout.py (pure); ``plan`` turns a Deployment and its ReplicaSets into
the writes of one step (create the new set, scale sets, drop history beyond the limit), like one
pass of upstream's syncDeployment, and the loop applies them and writes the status. The next
step happens when the ReplicaSets' status moves (pods become available), so a rolling update
advances exactly as fast as pods become ready.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from netemu.api import errors
from netemu.controllers import rollout
from netemu.controllers.events import NORMAL
from netemu.controllers.kube import (Obj, controller_ref, is_deleting, meta, name_of, ns_of, owner_ref,
                                     parse_time, uid_of)
from netemu.controllers.replicaset import status_changed
from netemu.controllers.rollout import DESIRED, HASH_LABEL, MAX_REPLICAS, REVISION, replicas_of
from netemu.controllers.runtime import Controller, WriteOverlay, put_latest, rt, split_key

COMPONENT = "deployment-controller"


def new_replicaset(deploy: Obj, replicas: int, revision: int) -> Obj:
    spec = deploy.get("spec") or {}
    template = rollout.strip_hash(spec.get("template") or {})
    h = rollout.template_hash(template, int((deploy.get("status") or {}).get("collisionCount") or 0))
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = dict(tmeta.get("labels") or {}, **{HASH_LABEL: h})
    selector = dict(spec.get("selector") or {})
    selector["matchLabels"] = dict(selector.get("matchLabels") or {}, **{HASH_LABEL: h})
    surge, _ = rollout.fenceposts(deploy)
    annotations = {k: v for k, v in (meta(deploy).get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration" and k != REVISION}
    annotations.update({REVISION: str(revision), DESIRED: str(replicas_of(deploy)),
                        MAX_REPLICAS: str(replicas_of(deploy) + surge)})
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{name_of(deploy)}-{h}", "namespace": ns_of(deploy),
                         "labels": dict(tmeta["labels"]), "annotations": annotations,
                         "ownerReferences": [owner_ref(deploy)]},
            "spec": {"replicas": replicas, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                     "selector": selector, "template": template}}


@dataclass
class Step:
    create: Obj | None = None                            # a new ReplicaSet to create
    scale: dict[str, int] = field(default_factory=dict)  # ReplicaSet name -> replicas
    delete: list[str] = field(default_factory=list)      # old ReplicaSets beyond history


def plan(deploy: Obj, rss: list[Obj], pods_of_old: int) -> Step:
    """One step of the rollout. ``pods_of_old``: pods (terminating too) still owned by old
    ReplicaSets, which a Recreate waits for before it starts the new ones."""
    if is_deleting(deploy):
        return Step()
    new_rs = rollout.find_new_rs(deploy, rss)
    old = [rs for rs in rss if rs is not new_rs]
    if rollout.is_scaling_event(deploy, rss) or (deploy.get("spec") or {}).get("paused"):
        return Step(scale=rollout.proportional_scale(deploy, new_rs, old))
    next_rev = max((rollout.revision(rs) for rs in old), default=0) + 1
    recreate = ((deploy.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate"
    want = replicas_of(deploy)
    if recreate:
        scale = {name_of(rs): 0 for rs in old if replicas_of(rs) > 0}
        if scale:
            return Step(scale=scale)
        ready_for_new = pods_of_old == 0
        if new_rs is None:
            return Step(create=new_replicaset(deploy, want if ready_for_new else 0, next_rev))
        if ready_for_new and replicas_of(new_rs) != want:
            return Step(scale={name_of(new_rs): want})
        return _history(deploy, old)
    if new_rs is None:
        count = rollout.new_rs_replicas(deploy, rss, 0)
        return Step(create=new_replicaset(deploy, count, next_rev))
    if replicas_of(new_rs) > want:
        return Step(scale={name_of(new_rs): want})
    target = rollout.new_rs_replicas(deploy, rss, replicas_of(new_rs))
    if target != replicas_of(new_rs):
        return Step(scale={name_of(new_rs): target})
    scale = rollout.old_rs_scale_down(deploy, new_rs, old)
    if scale:
        return Step(scale=scale)
    return _history(deploy, old)


def revision_bump(deploy: Obj, rss: list[Obj]) -> int | None:
    """After a rollback (``kubectl rollout undo``) the new ReplicaSet is an old one: it takes
    the next revision number, as upstream's getNewReplicaSet does. None: nothing to change."""
    new_rs = rollout.find_new_rs(deploy, rss)
    if new_rs is None:
        return None
    top = max((rollout.revision(rs) for rs in rss if rs is not new_rs), default=0)
    return top + 1 if rollout.revision(new_rs) <= top else None


def _history(deploy: Obj, old: list[Obj]) -> Step:
    """Old, empty ReplicaSets beyond revisionHistoryLimit (default 10), oldest first."""
    limit = (deploy.get("spec") or {}).get("revisionHistoryLimit", 10)
    idle = sorted((rs for rs in old if replicas_of(rs) == 0
                   and not int((rs.get("status") or {}).get("replicas") or 0)),
                  key=lambda rs: (rollout.revision(rs), parse_time(meta(rs).get("creationTimestamp")) or 0))
    extra = len(idle) - int(limit if limit is not None else 10)
    return Step(delete=[name_of(rs) for rs in idle[:max(extra, 0)]])


class DeploymentController(Controller):
    name = "deployment"
    service_account = "deployment-controller"
    kinds = ("Deployment", "ReplicaSet", "Pod")

    def setup(self) -> None:
        self.written = WriteOverlay()  # ReplicaSets this controller just wrote, until the cache has them
        self.cache("Deployment").add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n))
        self.cache("ReplicaSet").add_handler(self._rs_changed, lambda o, n: self._rs_changed(n),
                                             self._rs_changed)
        self.cache("Pod").add_handler(on_delete=self._pod_deleted)

    def _rs_changed(self, rs: Obj) -> None:
        ref = controller_ref(rs)
        if ref and ref.get("kind") == "Deployment":
            self.queue.add(f"{ns_of(rs)}/{ref['name']}")

    def _pod_deleted(self, pod: Obj) -> None:
        ref = controller_ref(pod)  # Recreate waits for old pods to be gone
        if ref and ref.get("kind") == "ReplicaSet":
            rs = self.cache("ReplicaSet").get(ref["name"], ns_of(pod))
            if rs is not None:
                self._rs_changed(rs)

    async def resync_all(self) -> None:
        for d in self.cache("Deployment").list():
            self.enqueue_obj(d)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        deploy = self.cache("Deployment").get(name, ns)
        if deploy is None:
            return
        uid = uid_of(deploy)
        rss = [rs for rs in self.written.merge(self.cache("ReplicaSet").list(ns), ns or "")
               if (controller_ref(rs) or {}).get("uid") == uid]
        old_uids = {uid_of(rs) for rs in rss if rs is not rollout.find_new_rs(deploy, rss)}
        pods_of_old = sum(1 for p in self.cache("Pod").list(ns) if (controller_ref(p) or {}).get("uid") in old_uids)
        bump = revision_bump(deploy, rss)
        if bump is not None:
            new_rs = rollout.find_new_rs(deploy, rss)
            patched = await self.client.patch(rt("ReplicaSet"), name_of(new_rs),
                                              {"metadata": {"annotations": {REVISION: str(bump)}}}, ns)
            self.written.wrote(patched)
            rss = [patched if rs is new_rs else rs for rs in rss]
        step = plan(deploy, rss, pods_of_old)
        rss, created = await self._apply(deploy, rss, step)
        new_rs = rollout.find_new_rs(deploy, rss)
        if new_rs is not None and rollout.revision(new_rs) != rollout.revision(deploy):
            deploy = await self._sync_revision(deploy, new_rs)
        status = rollout.deployment_status(deploy, new_rs, rss, time.time(), created_new=created)
        if status_changed(deploy, status):      # PUT, as upstream's controller (its role has no patch)
            await put_latest(self.client, rt("Deployment"), deploy, lambda d: {**d, "status": status},
                             subresource="status")
        deadline = (deploy.get("spec") or {}).get("progressDeadlineSeconds")
        if deadline and status["availableReplicas"] < replicas_of(deploy):
            self.queue.add_after(key, float(deadline) + 1)

    async def _apply(self, deploy: Obj, rss: list[Obj], step: Step) -> tuple[list[Obj], bool]:
        by_name = {name_of(rs): rs for rs in rss}
        created = False
        if step.create is not None:
            try:
                made = await self.client.create(rt("ReplicaSet"), step.create, ns_of(deploy))
            except errors.AlreadyExists:
                return rss, False  # hash collision or a stale cache: the next sync sees it
            by_name[name_of(made)] = made
            self.written.wrote(made)
            created = True
            if replicas_of(made):
                self._scaled(deploy, made, 0, replicas_of(made))
        for rs_name, replicas in step.scale.items():
            rs = by_name[rs_name]
            surge, _ = rollout.fenceposts(deploy)
            patch = {"metadata": {"annotations": {DESIRED: str(replicas_of(deploy)),
                                                  MAX_REPLICAS: str(replicas_of(deploy) + surge)}},
                     "spec": {"replicas": replicas}}
            by_name[rs_name] = await self.client.patch(rt("ReplicaSet"), rs_name, patch, ns_of(deploy))
            self.written.wrote(by_name[rs_name])
            self._scaled(deploy, rs, replicas_of(rs), replicas)
        for rs_name in step.delete:
            try:
                await self.client.delete(rt("ReplicaSet"), rs_name, ns_of(deploy))
            except errors.NotFound:
                pass
            self.written.deleted(by_name[rs_name])
            by_name.pop(rs_name, None)
        return list(by_name.values()), created

    def _scaled(self, deploy: Obj, rs: Obj, old: int, new: int) -> None:
        verb = "up" if new > old else "down"
        self.recorder.event(deploy, NORMAL, "ScalingReplicaSet",
                            f"Scaled {verb} replica set {name_of(rs)} from {old} to {new}", component=COMPONENT)

    async def _sync_revision(self, deploy: Obj, new_rs: Obj) -> Obj:
        """The Deployment carries its new ReplicaSet's revision (kubectl rollout history)."""
        rev = str(rollout.revision(new_rs))

        def annotated(d: Obj) -> Obj:
            md = d.get("metadata") or {}
            return {**d, "metadata": {**md, "annotations": {**(md.get("annotations") or {}), REVISION: rev}}}
        return await put_latest(self.client, rt("Deployment"), deploy, annotated)
