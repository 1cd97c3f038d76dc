"""Naming things in a running cluster: where the traffic comes from, where it goes, what may answer.

``Snapshot`` holds one read of the cluster (cluster.json + Services, EndpointSlices, Pods) and
resolves, purely, what a user typed:

- a source: ``POD`` / ``pod/POD`` (its namespace; a hostNetwork pod: its node's), ``node/NAME``,
  ``external`` / ``external/NAME`` (a client host, emulator/external.py: on the node network, or
  with ``up --edge`` on the internet segment, routed through the provider load balancer);
- a target: ``svc/NAME[:PORT]`` (port number or name), ``pod/NAME:PORT``, ``node/NAME:PORT``, or
  ``IP:PORT``. A Service is reached ``--via clusterip`` (default from pods and nodes),
  ``nodeport`` (on ``--node``, default the first worker) or ``loadbalancer``; from an external
  host the default is the LB address, else the NodePort (a ClusterIP is not routable there);
- the endpoints expected to answer (their hostnames, as agnhost answers), with the Service's
  traffic policies applied (internalTrafficPolicy Local: the client node's only;
  externalTrafficPolicy Local through a NodePort: that node's only);
- the scope: every address a run may send to (ClusterIPs, LB ingress, pod and node addresses).

Every mistake is a ``SpecError`` naming what exists instead, raised before any packet.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from netemu.agent.runtime.names import pod_hostname, pod_netns_of
from netemu.emulator.external import DEFAULT_NAME, check_name, external_netns, ExternalError
from netemu.traffic.run import Scope
from netemu.traffic.spec import SpecError, Target

VIAS = ("clusterip", "nodeport", "loadbalancer")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_IP_PORT = re.compile(r"^\[?(?P<ip>[0-9a-fA-F.:]+?)\]?:(?P<port>\d+)$")


@dataclass(frozen=True)
class Source:
    kind: str                     # pod | node | external
    name: str
    netns: str
    ip: str | None                # None: an external host not made yet
    node: str | None              # the node it runs on (pods, nodes)


@dataclass(frozen=True)
class Resolved:
    target: Target
    expected: list[str] | None    # hostnames that may answer; None: unknown (a plain address)
    via: str                      # clusterip | nodeport | loadbalancer | pod | node | address
    service: dict | None = None
    notes: list[str] = field(default_factory=list)


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


class Snapshot:
    def __init__(self, doc: dict, services: list[dict], slices: list[dict], pods: list[dict]):
        self.doc, self.services, self.slices, self.pods = doc, services, slices, pods
        self.nodes: dict[str, dict] = doc.get("nodes") or {}

    # -- lookups -----------------------------------------------------------------------------

    def _named(self, items: list[dict], kind: str, name: str, namespace: str) -> dict:
        for obj in items:
            if _meta(obj).get("name") == name and _meta(obj).get("namespace", "default") == namespace:
                return obj
        have = sorted(_meta(o).get("name", "") for o in items if _meta(o).get("namespace", "default") == namespace)
        raise SpecError(f"no {kind} {name!r} in namespace {namespace}"
                        + (f" ({kind}s: {', '.join(have[:10])}{' ...' if len(have) > 10 else ''})" if have else ""))

    def pod(self, name: str, namespace: str) -> dict:
        return self._named(self.pods, "pod", name, namespace)

    def service(self, name: str, namespace: str) -> dict:
        return self._named(self.services, "service", name, namespace)

    def node(self, name: str) -> dict:
        if name not in self.nodes:
            raise SpecError(f"no node {name!r} in this cluster (nodes: {', '.join(sorted(self.nodes))})")
        return self.nodes[name]

    def workers(self) -> list[str]:
        return sorted(n for n, info in self.nodes.items() if info.get("role") != "control-plane")

    # -- the source ----------------------------------------------------------------------------

    def source(self, text: str, namespace: str) -> Source:
        kind, _, name = text.partition("/") if "/" in text else ("pod", "", text)
        if kind == "external" or text == "external":
            name = name or DEFAULT_NAME
            try:
                check_name(name)
            except ExternalError as exc:
                raise SpecError(str(exc)) from None
            return Source("external", name, external_netns(self.doc.get("id", ""), name), None, None)
        if kind == "node":
            info = self.node(name)
            return Source("node", name, info["netns"], info.get("ip"), name)
        if kind in ("pod", "po", "pods"):
            pod = self.pod(name, namespace)
            spec, status = pod.get("spec") or {}, pod.get("status") or {}
            node = spec.get("nodeName")
            if spec.get("hostNetwork"):
                return Source("pod", name, self.node(node)["netns"], status.get("podIP"), node)
            if not status.get("podIP"):
                raise SpecError(f"pod {name} has no IP yet (phase {status.get('phase', 'Pending')})")
            return Source("pod", name, pod_netns_of(pod), status["podIP"], node)
        raise SpecError(f"--from {text!r}: give POD, pod/POD, node/NAME or external[/NAME]")

    # -- the target ----------------------------------------------------------------------------

    def target(self, text: str, namespace: str, source: Source, proto: str,
               via: str | None = None, node: str | None = None) -> Resolved:
        if via is not None and via not in VIAS:
            raise SpecError(f"--via {via!r}: choose one of {', '.join(VIAS)}")
        kind, sep, rest = text.partition("/")
        if sep and kind in ("svc", "service", "services"):
            return self._service_target(rest, namespace, source, proto, via, node)
        if via is not None or node is not None:
            raise SpecError("--via and --node go with a svc/NAME target")
        if sep and kind in ("pod", "po"):
            name, port = self._name_port(rest, text)
            pod = self.pod(name, namespace)
            ip = (pod.get("status") or {}).get("podIP")
            if not ip:
                raise SpecError(f"pod {name} has no IP yet")
            return Resolved(Target(ip, port, text), [pod_hostname(pod)], "pod")
        if sep and kind == "node":
            name, port = self._name_port(rest, text)
            return Resolved(Target(self.node(name)["ip"], port, text), None, "node")
        m = _IP_PORT.match(text)
        if not m:
            raise SpecError(f"--to {text!r}: give svc/NAME[:PORT], pod/NAME:PORT, node/NAME:PORT or IP:PORT")
        target = Target(m["ip"], int(m["port"]), text)
        target.check()
        return self._address_target(target)

    @staticmethod
    def _name_port(rest: str, text: str) -> tuple[str, int]:
        name, _, port = rest.partition(":")
        if not port.isdigit():
            raise SpecError(f"--to {text!r}: a pod or node target needs a port number (NAME:PORT)")
        return name, int(port)

    def _address_target(self, target: Target) -> Resolved:
        """A plain address: named after the Service or pod that owns it, when one does."""
        for svc in self.services:
            spec = svc.get("spec") or {}
            if target.ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) + self._lb_ips(svc):
                for port in spec.get("ports") or []:
                    if port.get("port") == target.port:
                        return Resolved(target, self.endpoints(svc, port, None, None), "address", svc)
        for pod in self.pods:
            if target.ip == (pod.get("status") or {}).get("podIP"):
                return Resolved(target, [pod_hostname(pod)], "address")
        return Resolved(target, None, "address")

    def _service_target(self, rest: str, namespace: str, source: Source, proto: str, via: str | None,
                        node: str | None) -> Resolved:
        name, _, port_text = rest.partition(":")
        svc = self.service(name, namespace)
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            raise SpecError(f"service {name} is an ExternalName ({spec.get('externalName')}): nothing of the "
                            f"emulation answers it")
        port = self._port(svc, port_text)
        want = "UDP" if proto == "udp" else "TCP"
        if port.get("protocol", "TCP") != want:
            raise SpecError(f"port {port['port']} of service {name} is {port.get('protocol', 'TCP')}, "
                            f"--proto {proto} sends {want}")
        lb = self._lb_ips(svc)
        if via is None:
            via = "clusterip" if source.kind != "external" else \
                "loadbalancer" if lb else "nodeport" if port.get("nodePort") else None
        if via is None:
            raise SpecError(f"service {name} is {spec.get('type', 'ClusterIP')}: not reachable from an external "
                            f"host (no NodePort, no LoadBalancer address); send from a pod or node/NAME")
        if node is not None and via != "nodeport":
            raise SpecError("--node goes with --via nodeport")
        label = f"svc/{name}:{port['port']}"
        if via == "clusterip":
            ip = spec.get("clusterIP")
            if not ip or ip == "None":
                raise SpecError(f"service {name} is headless (no ClusterIP): target its pods (pod/NAME:PORT)")
            if source.kind == "external":
                raise SpecError("a ClusterIP is not routable from an external host: use --via nodeport or loadbalancer")
            local = source.node if spec.get("internalTrafficPolicy") == "Local" else None
            return Resolved(Target(ip, port["port"], label), self.endpoints(svc, port, local, None), via, svc)
        if via == "nodeport":
            if not port.get("nodePort"):
                raise SpecError(f"service {name} has no NodePort (type {spec.get('type', 'ClusterIP')})")
            node = node or (source.node if source.kind == "node" else None) or (self.workers() or [None])[0]
            info = self.node(node)
            local = node if spec.get("externalTrafficPolicy") == "Local" else None
            return Resolved(Target(info["ip"], port["nodePort"], f"{label} via node/{node}:{port['nodePort']}"),
                            self.endpoints(svc, port, None, local), via, svc)
        if not lb:
            raise SpecError(f"service {name} has no LoadBalancer address (type {spec.get('type', 'ClusterIP')}, "
                            f"status.loadBalancer.ingress empty)")
        return Resolved(Target(lb[0], port["port"], f"{label} via {lb[0]}"), self.endpoints(svc, port, None, None),
                        via, svc)

    @staticmethod
    def _port(svc: dict, text: str) -> dict:
        ports = (svc.get("spec") or {}).get("ports") or []
        name = _meta(svc).get("name")
        have = ", ".join(f"{p['port']}/{p.get('protocol', 'TCP')}" + (f" ({p['name']})" if p.get("name") else "")
                         for p in ports)
        if not text:
            if len(ports) != 1:
                raise SpecError(f"service {name} has {len(ports)} ports ({have}): say which, svc/{name}:PORT")
            return ports[0]
        for p in ports:
            if (text.isdigit() and p.get("port") == int(text)) or p.get("name") == text:
                return p
        raise SpecError(f"port {text} is not a port of service {name} (it has {have})")

    @staticmethod
    def _lb_ips(svc: dict) -> list[str]:
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return [i["ip"] for i in ingress if i.get("ip")]

    def endpoints(self, svc: dict, port: dict, client_node: str | None, via_node: str | None) -> list[str]:
        """Hostnames of the Service's ready endpoints for ``port`` (by port name and protocol),
        only those on ``client_node`` (ITP Local) or ``via_node`` (ETP Local) when given."""
        name, ns = _meta(svc).get("name"), _meta(svc).get("namespace", "default")
        pods = {(_meta(p).get("namespace", "default"), _meta(p).get("name")): p for p in self.pods}
        out = set()
        for sl in self.slices:
            if _meta(sl).get("namespace", "default") != ns or \
                    (_meta(sl).get("labels") or {}).get(SERVICE_NAME_LABEL) != name:
                continue
            if not any(p.get("name", "") == port.get("name", "") and p.get("protocol", "TCP") == port.get("protocol", "TCP")
                       for p in sl.get("ports") or []):
                continue
            for ep in sl.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue
                where = ep.get("nodeName")
                if (client_node and where != client_node) or (via_node and where != via_node):
                    continue
                ref = ep.get("targetRef") or {}
                pod = pods.get((ref.get("namespace", ns), ref.get("name")))
                out.add(pod_hostname(pod) if pod else ref.get("name") or (ep.get("addresses") or ["?"])[0])
        return sorted(out)

    # -- the scope -----------------------------------------------------------------------------

    def scope(self) -> Scope:
        """Every address of the emulation a run may send to: Service ClusterIPs and LB ingress
        (externalIPs only inside the node network: others may be real addresses), pod and node
        addresses. Never the root namespace's address on the node network."""
        net = ipaddress.ip_network(self.doc.get("node_network") or "0.0.0.0/32")
        ips: set[str] = set()
        for svc in self.services:
            spec = svc.get("spec") or {}
            ips.update(ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None")
            ips.update(self._lb_ips(svc))
            ips.update(ip for ip in spec.get("externalIPs") or [] if ipaddress.ip_address(ip) in net)
        for pod in self.pods:
            status = pod.get("status") or {}
            ips.update(p["ip"] for p in status.get("podIPs") or [] if p.get("ip"))
            if status.get("podIP"):
                ips.add(status["podIP"])
        ips.update(info["ip"] for info in self.nodes.values() if info.get("ip"))
        ips.discard(self.doc.get("root_ip"))
        return Scope.of(ips, f"cluster {self.doc.get('name', '?')}")


# -- reading a running cluster (the effectful edge) ---------------------------------------------

async def load_snapshot(state_dir: str, kubeconfig: str | None = None) -> Snapshot:
    """cluster.json of the state dir and one list of Services, EndpointSlices and Pods."""
    from pathlib import Path

    from netemu.api import kinds
    from netemu.client import ApiClient
    from netemu.emulator.state import CLUSTER_FILE, read_json

    doc = read_json(Path(state_dir) / CLUSTER_FILE)
    if not doc:
        raise SpecError(f"no running cluster at {state_dir} (no {CLUSTER_FILE}): netemu up first, or --state-dir")
    path = kubeconfig or doc.get("kubeconfig") or str(Path(state_dir) / "kubeconfig")
    if not Path(path).is_file():
        raise SpecError(f"no kubeconfig at {path}")
    async with ApiClient.from_kubeconfig(path, user_agent="netemu-traffic") as client:
        lists = [await client.list_all(kinds.by_resource(g, v, r))
                 for g, v, r in (("", "v1", "services"), ("discovery.k8s.io", "v1", "endpointslices"),
                                 ("", "v1", "pods"))]
    return Snapshot(doc, *(lst.items for lst in lists))


@dataclass
class ClusterRun:
    """A TrafficRun resolved against a running cluster, ready to ``await run.run()``."""

    source: Source
    resolved: Resolved
    run: object                     # TrafficRun (typed loosely: run.py imports nothing of this)


async def prepare(state_dir: str, source: str, target: str, spec, *, namespace: str = "default",
                  via: str | None = None, node: str | None = None, weights: dict[str, float] | None = None,
                  kubeconfig: str | None = None, on_progress=None) -> ClusterRun:
    """Check everything, then make what the run needs (the external host, on demand): a bad
    name, port, policy or option is a SpecError before anything is created or sent."""
    from pathlib import Path

    from netemu.emulator import external
    from netemu.traffic.run import TrafficRun

    spec.check()
    snap = await load_snapshot(state_dir, kubeconfig)
    src = snap.source(source, namespace)
    resolved = snap.target(target, namespace, src, spec.proto, via, node)
    resolved.target.check()
    snap.scope().check(resolved.target.ip)
    if weights is not None and resolved.expected is not None:
        unknown = sorted(set(weights) - set(resolved.expected))
        if unknown:
            raise SpecError(f"--weights names endpoints {resolved.target.label} does not have: {', '.join(unknown)} "
                            f"(it has: {', '.join(resolved.expected) or 'none'})")
    if src.kind == "external":
        try:
            ext = external.ensure(state_dir, src.name)
        except external.ExternalError as exc:
            raise SpecError(str(exc)) from None
        src = Source("external", src.name, ext.netns, ext.ip, None)
    elif not Path("/run/netns", src.netns).exists():
        raise SpecError(f"{src.kind} {src.name} has no network namespace on this machine (/run/netns/{src.netns})")
    run = TrafficRun(resolved.target, spec, scope=snap.scope(), netns=src.netns, expected=resolved.expected,
                     weights=weights, on_progress=on_progress)
    return ClusterRun(src, resolved, run)
