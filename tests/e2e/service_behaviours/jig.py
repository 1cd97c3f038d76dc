"""The suite's test jig: upstream's e2eservice.TestJig and e2epod helpers, over real kubectl.

One ``Jig`` per test, bound to that test's own namespace: it builds manifests the way upstream's
helpers do (agnhost netexec / serve-hostname pods, exec pods, Services), applies them with real
kubectl, waits for readiness and for the EndpointSlices upstream's validateEndpointsPortsOrFail
checks, and sends traffic from inside the cluster's namespaces through probe.py (traffic.py).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any, Callable

from netemu.agent.runtime.names import pod_netns_of
from tests.e2e import _cluster as c
from tests.e2e.service_behaviours.traffic import Client

Obj = dict[str, Any]
AGNHOST = c.AGNHOST
PAUSE = "registry.k8s.io/pause:3.9"


def eventually(what: str, probe: Callable[[], Any], timeout: float = 30, interval: float = 0.5) -> Any:
    """Poll until ``probe()`` is truthy (upstream's wait.Poll...); the last value on timeout."""
    return c.wait_until(what, probe, timeout, interval)


class Jig:
    """Everything one test does to its cluster, inside namespace ``ns``."""

    def __init__(self, cluster: c.Cluster, ns: str, mode: str):
        self.cluster, self.ns, self.mode = cluster, ns, mode
        self.cleanups: list[Callable[[], None]] = []   # run by the fixture, last first

    # -- the API, through kubectl ----------------------------------------------------------
    def kubectl(self, *words: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return self.cluster.kubectl("-n", self.ns, *words, input=input, check=check)

    def apply(self, *objs: Obj) -> None:
        self.kubectl("apply", "-f", "-", input=c.manifest(*objs))

    def create(self, obj: Obj, check: bool = True) -> subprocess.CompletedProcess:
        return self.kubectl("create", "-f", "-", input=json.dumps(obj), check=check)

    def get(self, kind: str, name: str) -> Obj:
        return json.loads(self.kubectl("get", kind, name, "-o", "json").stdout)

    def patch(self, kind: str, name: str, patch: Obj, kind_of_patch: str = "merge",
              check: bool = True) -> subprocess.CompletedProcess:
        return self.kubectl("patch", kind, name, "--type", kind_of_patch, "-p", json.dumps(patch), check=check)

    def update_service(self, name: str, change: Callable[[Obj], None]) -> Obj:
        """Upstream jig.UpdateService: get, change, PUT (kubectl replace), return the result."""
        svc = self.get("service", name)
        change(svc)
        out = self.kubectl("replace", "-f", "-", "-o", "json", input=json.dumps(svc))
        return json.loads(out.stdout)

    def delete(self, kind: str, name: str, grace: int | None = None, wait: bool = True) -> None:
        words = ["delete", kind, name, f"--wait={'true' if wait else 'false'}"]
        if grace is not None:
            words.append(f"--grace-period={grace}")
            if grace == 0:
                words.append("--force")
        self.kubectl(*words)

    # -- nodes ---------------------------------------------------------------------------
    def workers(self) -> list[str]:
        return self.cluster.workers()

    def node_ip(self, node: str) -> str:
        return self.cluster.node_ip(node)

    def route_from(self, client: Client, ip: str, node: str) -> None:
        """A route to ``ip`` via ``node`` in the client's namespace: what a cloud load balancer
        does for its VIP (this test's cluster namespace only; removed after the test)."""
        argv = ["ip", "netns", "exec", client.netns, "ip", "route"]
        subprocess.run([*argv, "replace", f"{ip}/32", "via", self.node_ip(node)], check=True)
        self.cleanups.append(lambda: subprocess.run([*argv, "del", f"{ip}/32"], capture_output=True))

    def node_client(self, node: str) -> Client:
        """The node's own network namespace: upstream's hostNetwork exec pod."""
        return Client(self.cluster.node_netns(node), self.node_ip(node), node)

    # -- pods ------------------------------------------------------------------------------
    def pod(self, name: str, labels: Obj | None = None, node: str | None = None, args: list[str] | None = None,
            ports: list[Obj] | None = None, image: str = AGNHOST, **spec: Any) -> Obj:
        """e2epod.NewAgnhostPod: one agnhost container (netexec by default)."""
        container: Obj = {"name": "agnhost", "image": image}
        if image == AGNHOST:
            container["args"] = args or ["netexec", "--http-port=80"]
        if ports:
            container["ports"] = ports
        for key in ("readinessProbe", "livenessProbe", "lifecycle"):
            if key in spec:
                container[key] = spec.pop(key)
        body: Obj = {"terminationGracePeriodSeconds": 1, "containers": [container], **spec}
        if node:
            body["nodeName"] = node
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": body}

    def exec_pod(self, name: str, node: str | None = None, host_network: bool = False) -> Client:
        """e2epod.CreateExecPodOrFail: a pause pod to send requests from, Running and Ready."""
        spec: Obj = {"hostNetwork": True} if host_network else {}
        (pod,) = self.create_pods(self.pod(name, {"role": "exec"}, node, image=PAUSE, **spec))
        return self.client(pod)

    def client(self, pod: Obj) -> Client:
        node = pod["spec"]["nodeName"]
        if pod["spec"].get("hostNetwork"):
            return Client(self.cluster.node_netns(node), self.node_ip(node), node, pod["metadata"]["name"])
        return Client(pod_netns_of(pod), pod["status"]["podIP"], node, pod["metadata"]["name"], pod=True)

    def create_pods(self, *pods: Obj, ready: bool = True, timeout: float = 90) -> list[Obj]:
        self.apply(*pods)
        names = [p["metadata"]["name"] for p in pods]
        return self.wait_pods(names, ready, timeout) if ready else []

    def wait_pods(self, names: list[str], ready: bool = True, timeout: float = 90) -> list[Obj]:
        def probe():
            got = {p["metadata"]["name"]: p for p in self.pods()}
            ok = [got[n] for n in names if n in got and (c.ready(got[n]) if ready else not c.ready(got[n]))]
            return ok if len(ok) == len(names) else None
        return eventually(f"pods {names} {'ready' if ready else 'not ready'}", probe, timeout)

    def pods(self, selector: str | None = None) -> list[Obj]:
        words = ["get", "pods", "-o", "json"] + (["-l", selector] if selector else [])
        return json.loads(self.kubectl(*words).stdout)["items"]

    def replicas(self, name: str, count: int, labels: Obj, args: list[str] | None = None,
                 port: int | None = None, **pod_spec: Any) -> list[Obj]:
        """StartServeHostnameService's pods: a ReplicaSet of agnhost serve-hostname (port 9376)."""
        container: Obj = {"name": name, "image": AGNHOST, "args": args or ["serve-hostname"]}
        if port:
            container["ports"] = [{"containerPort": port}]
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "labels": labels},
              "spec": {"replicas": count, "selector": {"matchLabels": labels},
                       "template": {"metadata": {"labels": labels},
                                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [container], **pod_spec}}}}
        self.apply(rs)
        sel = ",".join(f"{k}={v}" for k, v in labels.items())

        def probe():
            pods = [p for p in self.pods(sel) if c.ready(p)]
            return pods if len(pods) == count else None
        return eventually(f"{count} ready replicas of {name}", probe, 90)

    # -- services and endpoints ---------------------------------------------------------------
    @staticmethod
    def service(name: str, selector: Obj | None, ports: list[Obj] | None = None, type_: str = "ClusterIP",
                labels: Obj | None = None, **spec: Any) -> Obj:
        body: Obj = {"type": type_, "ports": ports or [{"name": "http", "port": 80, "targetPort": 80}], **spec}
        if selector is not None:
            body["selector"] = selector
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels or {}}, "spec": body}

    def create_service(self, svc: Obj) -> Obj:
        out = self.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(svc))
        return json.loads(out.stdout)

    def endpoint_ports(self, service: str) -> dict[str, list[int]]:
        """{pod name: sorted ports} over the Service's EndpointSlices, as upstream's
        validateEndpointsPortsOrFail sees them: a slice without ports lists nobody, and only
        ready endpoints count (its Endpoints-object half reads ready addresses only)."""
        slices = json.loads(self.kubectl("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}",
                                         "-o", "json").stdout)["items"]
        out: dict[str, set[int]] = {}
        for sl in slices:
            for port in [p.get("port") for p in sl.get("ports") or [] if p.get("port")]:
                for ep in sl.get("endpoints") or []:
                    if (ep.get("conditions") or {}).get("ready", True):
                        out.setdefault((ep.get("targetRef") or {}).get("name", "?"), set()).add(port)
        return {k: sorted(v) for k, v in out.items()}

    def wait_endpoints(self, service: str, expected: dict[str, list[int]], timeout: float = 60) -> None:
        """validateEndpointsPortsOrFail: exactly these pods, on exactly these ports."""
        want = {k: sorted(v) for k, v in expected.items()}
        seen: list = []

        def probe():
            seen[:] = [self.endpoint_ports(service)]
            return seen[0] == want
        try:
            eventually(f"Service {service} endpoints {want}", probe, timeout)
        except (AssertionError, TimeoutError) as exc:
            slices = self.kubectl("get", "endpointslices", "-o", "yaml").stdout
            raise AssertionError(f"{exc}; endpoints seen: {seen}\n{slices[-3000:]}") from None

    def load_balancer_ip(self, service: str, timeout: float = 30) -> str:
        def probe():
            ingress = ((self.get("service", service).get("status") or {}).get("loadBalancer") or {}).get("ingress")
            return ingress and ingress[0].get("ip")
        return eventually(f"a load-balancer IP for {service}", probe, timeout)


def unique_namespace(test_name: str) -> str:
    """A DNS-1123 label: the test's name shortened, plus randomness (tests may repeat per mode)."""
    base = test_name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")
    return f"{base}-{uuid.uuid4().hex[:5]}"


def settle(seconds: float) -> None:
    """A pause the upstream test takes too (e.g. between affinity checks): named, not hidden."""
    time.sleep(seconds)
