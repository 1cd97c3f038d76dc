"""The built-in ingress controller: ``registry.k8s.io/ingress-nginx/controller`` served by the
node agent, started with ingress-nginx's own flags.

It lists+watches Ingresses, IngressClasses, Services, EndpointSlices and Secrets through the
API (its own client, appctx.api) and keeps the routing table (routes.py), the endpoints and the
TLS certificates (tls.py) current; HTTP on 80 and HTTPS on 443 (SNI) in its pod go through the
proxy (proxy.py) straight to the backend Services' ready endpoints, round robin, as
ingress-nginx balances (the ``service-upstream`` annotation sends through the ClusterIP
instead, leaving the choice to kube-proxy); ``/healthz`` and ``/metrics`` on 10254.

Ingress status: with ``--publish-service NS/NAME`` every Ingress it serves gets that Service's
``status.loadBalancer.ingress`` (the LoadBalancer IP the cloud gave it), written when it
differs (every replica computes the same value, so no leader election is needed for it).
"""

from __future__ import annotations

import asyncio
import logging

from netemu.api.kinds import by_kind

from ..appctx import ApiApp
from ..httpserve import Request, Response
from ..process import expand
from .proxy import Proxy
from .routes import build, ours, service_endpoints, tls_pair
from .tls import CertError, SNIContexts, server_context
from .upstream import Pool

log = logging.getLogger(__name__)
INGRESS, CLASS, SERVICE, SLICE, SECRET = (
    by_kind("networking.k8s.io/v1", "Ingress"), by_kind("networking.k8s.io/v1", "IngressClass"),
    by_kind("v1", "Service"), by_kind("discovery.k8s.io/v1", "EndpointSlice"), by_kind("v1", "Secret"))
STATUS_RESYNC = 60.0         # ingress-nginx's status sync period


class IngressError(RuntimeError):
    """The controller cannot start (bad flags, ports in use, no API access)."""


class IngressController(ApiApp):
    def __init__(self, ctx, options: dict):
        super().__init__(ctx)
        self.options = self._expanded(ctx, options)
        self.informers: dict[str, object] = {}
        self.table = build([])
        self.sni = None
        self.dirty = asyncio.Event()
        self.pool = Pool(ctx.netns)
        self.proxy = Proxy(lambda: self.table, self._endpoints, self.pool, ctx.log.write)

    @staticmethod
    def _expanded(ctx, options: dict) -> dict:
        """$(POD_NAMESPACE)-style references in the flags, from the container's env (fieldRef
        values from the pod), as the kubelet expands a container's args."""
        meta = ctx.pod.get("metadata") or {}
        fields = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", "")}
        env = {}
        for var in ctx.container.get("env") or []:
            ref = ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if "value" in var:
                env[var["name"]] = str(var["value"])
            elif ref in fields:
                env[var["name"]] = fields[ref]
        return {k: expand(v, env) if isinstance(v, str) else v for k, v in options.items()}

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        from netemu.client import Informer
        if self.ctx.api is None:
            raise IngressError("no API access for the built-in ingress controller")
        self.connect()
        for key, rt in (("ingresses", INGRESS), ("classes", CLASS), ("services", SERVICE),
                        ("slices", SLICE), ("secrets", SECRET)):
            inf = Informer(self.api, rt)
            inf.add_handler(self._changed, lambda old, new: self._changed(new), self._changed)
            self.informers[key] = inf
            self.run_informer(inf)
        try:
            await asyncio.wait_for(asyncio.gather(*(i.wait_synced() for i in self.informers.values())), 30)
        except asyncio.TimeoutError:
            self.close()
            raise IngressError("the API server did not answer in 30 s") from None
        self.sni = SNIContexts()
        self._rebuild()
        await self._listen()
        self.tasks.append(asyncio.ensure_future(self._sync_loop()))
        o = self.options
        self.ctx.log.write(f"netemu built-in ingress-nginx controller: class {o['ingress-class']!r} "
                           f"(controller {o['controller-class']}), HTTP :{o['http-port']}, HTTPS :{o['https-port']}")
        self.ctx.log.flush()

    async def _listen(self) -> None:
        o = self.options
        try:
            self.listeners.append(await self.ctx.serve_http(int(o["http-port"]),
                                                            self.proxy.handler("http", int(o["http-port"]))))
            self.listeners.append(await self.ctx.serve_http(int(o["https-port"]),
                                                            self.proxy.handler("https", int(o["https-port"])),
                                                            ssl=self.sni.default))
            self.listeners.append(await self.ctx.serve_http(int(o["healthz-port"]), self._health))
        except OSError as exc:
            self.close()
            raise IngressError(f"listen: {exc.strerror or exc}") from None

    def _changed(self, _obj) -> None:
        self.dirty.set()

    async def _sync_loop(self) -> None:
        """Rebuild after changes (batched: at most every 0.1 s, like ingress-nginx's sync rate
        limit); the Ingress statuses after each rebuild and every STATUS_RESYNC."""
        while not self.stop_event.is_set():
            try:
                await asyncio.wait_for(self.dirty.wait(), STATUS_RESYNC)
            except asyncio.TimeoutError:
                pass
            self.dirty.clear()
            self._rebuild()
            try:
                await self._update_status()
            except Exception as exc:  # an API hiccup, or a stale copy (Conflict): again soon
                log.warning("ingress status update failed: %s", exc)
                self.dirty.set()
            await asyncio.sleep(0.1)

    def _served(self) -> list[dict]:
        o = self.options
        classes = self.informers["classes"].list()
        return [i for i in self.informers["ingresses"].list()
                if not (i.get("metadata") or {}).get("deletionTimestamp")
                and ours(i, classes, o["controller-class"], o["ingress-class"], o["watch-ingress-without-class"])]

    def _rebuild(self) -> None:
        self.table = build(self._served())
        contexts = {}
        for host, server in self.table.servers.items():
            if not server.tls_secret:
                continue
            ns, name = server.tls_secret
            pair = tls_pair(self.informers["secrets"].get(name, ns))
            if pair is None:
                self.ctx.log.write(f"[warning] secret {ns}/{name} for host {host}: no tls.crt/tls.key; "
                                   "using the default fake certificate")
                continue
            try:
                contexts[host] = server_context(*pair)
            except CertError as exc:
                self.ctx.log.write(f"[warning] secret {ns}/{name} for host {host}: {exc}")
        self.sni.replace(contexts)

    def _endpoints(self, backend) -> list[tuple[str, int]]:
        svc = self.informers["services"].get(backend.service, backend.namespace)
        slices = [s for s in self.informers["slices"].list(backend.namespace)
                  if ((s.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name") == backend.service]
        eps, clusterip = service_endpoints(svc, slices, backend.port)
        if backend.service_upstream:
            if not eps or not clusterip:
                return []
            ip, _, port = clusterip.rpartition(":")
            return [(ip, int(port))]
        return eps

    async def _update_status(self) -> None:
        publish = self.options.get("publish-service") or ""
        if "/" not in publish:
            return
        ns, name = publish.split("/", 1)
        svc = self.informers["services"].get(name, ns)
        lb = [{k: v for k, v in i.items() if k in ("ip", "hostname")}
              for i in ((svc or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []]
        for ing in self._served():
            current = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if current == lb:
                continue
            meta = ing["metadata"]
            # a PUT of the status, as the real controller's UpdateStatus (its Role grants only
            # ingresses/status update); a stale copy is a Conflict, retried on the next sync
            await self.api.update_status(INGRESS, {**ing, "status": {**(ing.get("status") or {}),
                                                                     "loadBalancer": {"ingress": lb or None}}})
            self.ctx.log.write(f'updating Ingress status ingress="{meta.get("namespace")}/{meta["name"]}" '
                               f"currentValue={current} newValue={lb}")

    async def stop(self) -> int:
        self.close()
        return 0

    def close(self) -> None:
        super().close()
        self.pool.close()

    # -- health and metrics ----------------------------------------------------------------------

    def _health(self, req: Request) -> Response:
        if req.path == "/healthz":
            return Response(body=b"ok")
        if req.path == "/metrics":
            lines = ["# TYPE nginx_ingress_controller_requests counter"]
            lines += [f'nginx_ingress_controller_requests{{ingress="{i}",namespace="{n}",service="{s}",status="{st}"}} {c}'
                      for (i, n, s, st), c in sorted(self.proxy.stats.requests.items())]
            return Response(body=("\n".join(lines) + "\n").encode())
        return Response(404, b"404 page not found\n")
