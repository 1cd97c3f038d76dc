"""What the kubelet gives every container to reach the API: the ServiceAccount token, CA and
namespace at /var/run/secrets/kubernetes.io/serviceaccount, and the ``kubernetes`` Service's
environment variables (KUBERNETES_SERVICE_HOST/PORT and the docker-link ones).

Upstream's ServiceAccount admission adds a projected volume (kube-api-access-*) and the kubelet
fills it: a token from TokenRequest bound to the pod (expirationSeconds 3607), ``ca.crt`` (the
cluster CA) and ``namespace``; the token is renewed once 80% of its life has passed. Here the
files go to a per-pod directory under the agent's state dir, which the runtime mounts read-only
at the upstream path in each process container's own mount namespace, so the official
python client's ``load_incluster_config()`` works from a pod. Pods with
automountServiceAccountToken false (on the pod, else on its ServiceAccount) get no token.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

from netemu.agent import runtime as rt
from netemu.agent.runtime.builtin import API_APPS
from netemu.api import errors
from netemu.api.kinds import by_kind
from netemu.api.meta import Obj
from netemu.client import ApiClient

log = logging.getLogger(__name__)
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
EXPIRATION = 3607                  # upstream's projected token default
RENEW_AT = 0.8
SA, SVC = by_kind("v1", "ServiceAccount"), by_kind("v1", "Service")
SERVICE_REFRESH = 60.0


def service_env(svc: Obj) -> dict[str, str]:
    """A Service's variables as upstream's envvars.FromServices writes them (pure)."""
    spec, name = svc.get("spec") or {}, (svc.get("metadata") or {}).get("name", "")
    ip = spec.get("clusterIP")
    ports = spec.get("ports") or []
    if not ip or ip == "None" or not ports:
        return {}
    prefix = name.upper().replace("-", "_")
    env = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(ports[0]["port"])}
    for p in ports:
        if p.get("name"):
            env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
    first = ports[0]
    proto = (first.get("protocol") or "TCP").lower()
    env[f"{prefix}_PORT"] = f"{proto}://{ip}:{first['port']}"
    for p in ports:
        proto = (p.get("protocol") or "TCP")
        base = f"{prefix}_PORT_{p['port']}_{proto.upper()}"
        env[base] = f"{proto.lower()}://{ip}:{p['port']}"
        env[f"{base}_PROTO"], env[f"{base}_PORT"], env[f"{base}_ADDR"] = proto.lower(), str(p["port"]), ip
    return env


def wants_api(container: Obj) -> bool:
    """Whether the container may call the API: a process, or a built-in app that does (pure)."""
    how = rt.resolve(container)
    return isinstance(how, rt.Process) or (isinstance(how, rt.Builtin) and how.app in API_APPS)


def _write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


class ServiceAccountProjector:
    """``root``: where the per-pod directories live; ``ca_pem``: the cluster CA to hand out."""

    def __init__(self, api: ApiClient, ca_pem: bytes | None, root: str):
        self.api, self.ca_pem, self.root = api, ca_pem or b"", root
        self._tokens: dict[str, tuple[float, float]] = {}      # pod uid -> (issued, expires)
        self._kubernetes: tuple[float, dict[str, str]] | None = None

    def pod_dir(self, uid: str) -> str:
        return os.path.join(self.root, uid, "serviceaccount")

    async def extras(self, pod: Obj, container: Obj) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """(env, binds) for ``container`` of ``pod``, what the runtime gets with StartContainer.
        Process containers get both; of the built-in images only those that call the API
        (API_APPS: they read the token the runtime's pod_api_factory finds in the pod's
        directory); the others need neither, so a node of web pods asks for no tokens."""
        if not wants_api(container):
            return {}, []
        env = await self.kubernetes_env()
        if not await self._automount(pod):
            return env, []
        return env, [(await self.project(pod), MOUNT_PATH)]

    async def kubernetes_env(self) -> dict[str, str]:
        now = time.monotonic()
        if self._kubernetes is None or now - self._kubernetes[0] > SERVICE_REFRESH:
            try:
                svc = await self.api.get(SVC, "kubernetes", "default")
                self._kubernetes = (now, service_env(svc))
            except errors.StatusError as exc:
                log.warning("kubernetes Service not readable (%s): pods get no KUBERNETES_* env", exc)
                self._kubernetes = (now, {})
        return dict(self._kubernetes[1])

    def cached_env(self) -> dict[str, str]:
        """The kubernetes Service's variables as last read (what ``kubectl exec`` adds too)."""
        return dict(self._kubernetes[1]) if self._kubernetes else {}

    async def _automount(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        if spec.get("automountServiceAccountToken") is not None:
            return bool(spec["automountServiceAccountToken"])
        try:
            sa = await self.api.get(SA, spec.get("serviceAccountName") or "default",
                                    (pod.get("metadata") or {}).get("namespace", "default"))
        except errors.NotFound:
            return True                      # the token request then says what is missing
        return sa.get("automountServiceAccountToken") is not False

    async def project(self, pod: Obj) -> str:
        """Write (or renew) the pod's token, CA and namespace; returns its directory."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid, directory = meta["uid"], self.pod_dir(meta["uid"])
        issued, expires = self._tokens.get(uid, (0.0, 0.0))
        now = time.time()
        if os.path.exists(os.path.join(directory, "token")) and now < issued + RENEW_AT * (expires - issued):
            return directory
        ns, sa = meta.get("namespace", "default"), spec.get("serviceAccountName") or "default"
        answer = await self.api.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token", body={
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": EXPIRATION,
                     "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"], "uid": uid}}})
        os.makedirs(directory, mode=0o755, exist_ok=True)
        _write_atomic(os.path.join(directory, "token"), answer["status"]["token"].encode())
        _write_atomic(os.path.join(directory, "ca.crt"), self.ca_pem)
        _write_atomic(os.path.join(directory, "namespace"), ns.encode())
        self._tokens[uid] = (now, now + EXPIRATION)
        return directory

    async def renew(self, pods: list[Obj]) -> None:
        """Renew the tokens of running pods that are due (the kubelet calls this periodically)."""
        for pod in pods:
            uid = (pod.get("metadata") or {}).get("uid")
            # a pod with a token on disk this kubelet has not issued (a restarted kubelet's
            # adopted containers) gets a new one at the first pass
            if uid and os.path.exists(os.path.join(self.pod_dir(uid), "token")):
                try:
                    await self.project(pod)
                except (errors.StatusError, OSError) as exc:
                    log.warning("renewing the token of pod %s: %s", uid, exc)

    def forget(self, uid: str) -> None:
        self._tokens.pop(uid, None)
        shutil.rmtree(os.path.join(self.root, uid), ignore_errors=True)


