"""The built-in CoreDNS: ``registry.k8s.io/coredns/coredns`` served by the node agent.

Started as upstream's image is (``args: ["-conf", "/etc/coredns/Corefile"]`` with the Corefile
from the ``coredns`` ConfigMap mounted there), it reads that ConfigMap key through the API
(volumes.py), follows it (the ``reload`` plugin: a changed Corefile is applied; a broken one is
logged and the running config kept), and lists+watches Services, EndpointSlices and Namespaces
(Pods too with ``pods verified``) into the zone (zone.py), which answers from memory: every
Service or endpoint change is in the next answer (minus what the ``cache`` plugin keeps).

Sockets, all in the pod's namespace: DNS on UDP and TCP (port 53 by default), ``health``
(:8080 /health), ``ready`` (:8181 /ready: 200 once the API caches synced, as the kubernetes
plugin reports; 503 naming it before), ``prometheus`` (:9153 /metrics). On SIGTERM, ``health
{ lameduck 5s }`` keeps answering for those 5 s, then stops: a deleted DNS pod does not drop the
queries kube-proxy still sends it while its endpoint goes away. As CoreDNS 1.11 (the kubeadm
1.32 image), /health stays 200 during the lameduck ("we're always healthy": the liveness probe
must not restart a pod that is shutting down) and /ready stops answering OK, so a readiness
probe that runs then takes the endpoint out of serving.
"""

from __future__ import annotations

import asyncio
import logging

from netemu.api.kinds import by_kind

from ..appctx import ApiApp
from ..httpserve import Request, Response
from ..volumes import configmap_file
from .corefile import CorefileError, Server, listen_port, parse
from .handler import Handler
from .wire import TCPDNS, UDPDNS, question_name
from .zone import ClusterZone

log = logging.getLogger(__name__)
SERVICE, SLICE, NAMESPACE, POD, CONFIGMAP = (
    by_kind("v1", "Service"), by_kind("discovery.k8s.io/v1", "EndpointSlice"), by_kind("v1", "Namespace"),
    by_kind("v1", "Pod"), by_kind("v1", "ConfigMap"))
SYNC_WAIT = 5.0          # CoreDNS starts serving unsynced after 5 s ("starting server with unsynced ...")


class CoreDNSError(RuntimeError):
    """The server cannot start: ``reason``/``message``/``exit_code`` as the container's."""


class CoreDNS(ApiApp):
    def __init__(self, ctx, options: dict, pod_ips: tuple[str, ...] = ()):
        super().__init__(ctx)
        self.options = options
        self.pod_ips = pod_ips
        self.informers: dict[str, object] = {}
        self.servers: list[Server] = []
        self.handlers: dict[int, list[Handler]] = {}
        self.zone: ClusterZone | None = None
        self.corefile = ""
        self.lameduck_until = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        from netemu.client import Informer      # the client layer, imported when a DNS pod starts
        conf = self.options.get("conf") or "Corefile"
        source = configmap_file(self.ctx.pod, self.ctx.container, conf)
        if source is None:
            raise CoreDNSError(f"open {conf}: no such file or directory (netemu's built-in CoreDNS reads "
                               f"its Corefile from a configMap volume mounted at that path)")
        if self.ctx.api is None:
            raise CoreDNSError("no API access for the built-in CoreDNS")
        self.connect()
        ns, name, self.key = source
        # the Corefile is a configMap volume: what the kubelet reads for the pod, as the kubelet
        self.informers["configmap"] = Informer(self.connect_volumes() or self.api, CONFIGMAP, ns,
                                               field_selector=f"metadata.name={name}")
        self.run_informer(self.informers["configmap"])
        text = await self._first_corefile(ns, name)
        try:
            self.servers = parse(text, conf, int(self.options.get("dns.port") or 53))
        except CorefileError as exc:
            raise CoreDNSError(str(exc)) from None
        self.corefile = text
        self._make_zone()
        self._watch_cluster(Informer)
        await self._wait_synced()
        await self._listen()
        self.informers["configmap"].add_handler(None, lambda old, new: self._reload(new), None)
        self.ctx.log.write(f"CoreDNS-1.11.3 (netemu built-in) {', '.join(self._listen_names())}")
        self.ctx.log.flush()

    async def _first_corefile(self, ns: str, name: str) -> str:
        informer = self.informers["configmap"]
        try:
            await asyncio.wait_for(informer.wait_synced(), 30)
        except asyncio.TimeoutError:
            raise CoreDNSError(f"configmap {ns}/{name}: the API server did not answer in 30 s") from None
        cm = informer.get(name, ns)
        text = ((cm or {}).get("data") or {}).get(self.key)
        if text is None:
            raise CoreDNSError(f"open {self.options.get('conf')}: no such file or directory "
                               f"(configmap {ns}/{name} has no key {self.key!r})")
        return text

    def _make_zone(self) -> None:
        k8s = next((s.kubernetes for s in self.servers if s.kubernetes), None)
        if k8s is not None:
            if self.zone is None:
                self.zone = ClusterZone(k8s, self.pod_ips)
            else:
                self.zone.config = k8s
        self.handlers = {}
        for server in self.servers:
            zone = self.zone if server.kubernetes is not None else None
            self.handlers.setdefault(server.port, []).append(Handler(server, zone, self.ctx.log.write))

    def _watch_cluster(self, Informer) -> None:
        if self.zone is None:
            return
        zone = self.zone
        for key, rt, setter in (("services", SERVICE, zone.set_service), ("slices", SLICE, zone.set_slice),
                                ("namespaces", NAMESPACE, zone.set_namespace)):
            inf = Informer(self.api, rt, transform=_slim)
            inf.add_handler(setter, lambda old, new, f=setter: f(new), lambda obj, f=setter: f(obj, deleted=True))
            self.informers[key] = inf
            self.run_informer(inf)
        if zone.config.pods == "verified":
            inf = Informer(self.api, POD, transform=_slim)
            inf.add_handler(lambda p: zone.set_pod(None, p), zone.set_pod, lambda p: zone.set_pod(p, None))
            self.informers["pods"] = inf
            self.run_informer(inf)

    async def _wait_synced(self) -> None:
        waits = [asyncio.ensure_future(i.wait_synced()) for k, i in self.informers.items() if k != "configmap"]
        if not waits:
            return
        done, pending = await asyncio.wait(waits, timeout=SYNC_WAIT)
        for w in pending:
            w.cancel()
        if pending:
            self.ctx.log.write("[WARNING] plugin/kubernetes: starting server with unsynced Kubernetes API")

    @property
    def synced(self) -> bool:
        return all(i.has_synced for k, i in self.informers.items() if k != "configmap")

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for port, handlers in self.handlers.items():
                pick = self._picker(port)
                self.listeners.append(await self.ctx.serve_udp(port, lambda pick=pick: UDPDNS(pick)))
                self.listeners.append(await loop.create_server(lambda pick=pick: TCPDNS(pick),
                                                               sock=self.ctx.listen(port)))
            first = self.servers[0]
            for addr, handler in ((first.health, self._health), (first.ready, self._ready),
                                  (first.prometheus, self._metrics)):
                if addr:
                    host, port = listen_port(addr)
                    self.listeners.append(await self.ctx.serve_http(port, handler, host or "0.0.0.0"))
        except OSError as exc:
            self.close()
            raise CoreDNSError(f"listen: {exc.strerror or exc}") from None

    def _listen_names(self) -> list[str]:
        return [f"{z}:{s.port}" for s in self.servers for z in s.zones]

    def _picker(self, port: int):
        """The handler of the server block holding the query's name (longest zone wins); with
        one block on the port (the usual case) no name is looked at."""
        def pick(data: bytes) -> Handler | None:
            handlers = self.handlers.get(port) or []
            if len(handlers) <= 1:
                return handlers[0] if handlers else None
            low = question_name(data)
            best, size = handlers[0], -1
            for h in handlers:
                for z in h.server.zones:
                    if (z == "." or low == z or low.endswith("." + z)) and len(z) > size:
                        best, size = h, len(z)
            return best
        return pick

    def _reload(self, cm: dict) -> None:
        text = ((cm or {}).get("data") or {}).get(self.key)
        if text is None or text == self.corefile:
            return
        try:
            servers = parse(text, self.options.get("conf") or "Corefile", int(self.options.get("dns.port") or 53))
        except CorefileError as exc:
            self.ctx.log.write(f"[ERROR] Restart failed: {exc}")
            return
        if sorted(s.port for s in servers) != sorted(s.port for s in self.servers):
            self.ctx.log.write("[ERROR] Restart failed: netemu's built-in CoreDNS keeps its ports on reload "
                               "(delete the pod to change them)")
            return
        self.servers, self.corefile = servers, text
        self._make_zone()
        self.ctx.log.write("[INFO] Reloading complete")

    async def stop(self) -> int:
        """SIGTERM: lameduck (still answering, /ready failing), then close everything."""
        duck = max((s.lameduck for s in self.servers), default=0.0)
        if duck > 0:
            self.lameduck_until = True
            self.ctx.log.write(f"[INFO] plugin/health: Going into lameduck mode for {duck:g}s")
            await asyncio.sleep(duck)
        self.close()
        return 0

    # -- the HTTP endpoints ----------------------------------------------------------------------

    def _health(self, req: Request) -> Response:
        if req.path != "/health":
            return Response(404, b"404 page not found\n")
        return Response(body=b"OK")

    def _ready(self, req: Request) -> Response:
        if req.path != "/ready":
            return Response(404, b"404 page not found\n")
        if self.lameduck_until:
            return Response(503, b"lameduck\n")
        return Response(body=b"OK") if self.synced else Response(503, b"kubernetes")

    def _metrics(self, req: Request) -> Response:
        if req.path != "/metrics":
            return Response(404, b"404 page not found\n")
        lines = ["# TYPE coredns_dns_requests_total counter"]
        for port, handlers in sorted(self.handlers.items()):
            for h in handlers:
                server = f"dns://:{port}"
                zone = h.server.zones[0]
                c = h.counters
                lines += [f'coredns_dns_requests_total{{family="{fam}",proto="{proto}",server="{server}",'
                          f'type="{qt}",view="",zone="{zone}"}} {n}' for (proto, fam, qt), n in sorted(c.requests.items())]
                lines += [f'coredns_dns_responses_total{{plugin="",rcode="{rc}",server="{server}",view="",'
                          f'zone="{zone}"}} {n}' for rc, n in sorted(c.responses.items())]
                lines += [f'coredns_cache_hits_total{{server="{server}",type="{t}",view="",zone="{zone}"}} {n}'
                          for t, n in sorted(c.cache_hits.items())]
                lines.append(f'coredns_cache_misses_total{{server="{server}",view="",zone="{zone}"}} {c.cache_misses}')
        return Response(body=("\n".join(lines) + "\n").encode(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def _slim(obj: dict) -> dict:
    """What the zone reads (client-go's SetTransform in CoreDNS trims the same way)."""
    meta = obj.get("metadata") or {}
    out = {"metadata": {k: meta[k] for k in ("name", "namespace", "resourceVersion", "labels") if k in meta}}
    for key in ("spec", "addressType", "endpoints", "ports"):
        if key in obj:
            out[key] = obj[key]
    status = obj.get("status") or {}
    if "podIP" in status:
        out["status"] = {k: status.get(k) for k in ("podIP", "podIPs")}
    return out
