"""The full demo: a real cluster on Mininet, a real Service, real traffic, the rules that did it.

What it shows, in order (the README's main command):
1. ``netemu up --nodes 3``: a control plane and three nodes, each running kubelet + kube-proxy;
2. a 3-replica agnhost ``netexec`` Deployment and its ClusterIP Service;
3. a client pod on a node that runs no replica (the node is labelled, and the Deployment's node
   affinity keeps replicas off it), so every request crosses the node network;
4. 300 HTTP requests from the client pod to the ClusterIP (``/hostname``), each on a new
   connection so each is a new load-balancing decision of that node's kernel;
5. the per-pod counts, and the client node's KUBE-SVC chain for the Service as iptables-save
   prints it (with its KUBE-SEP chains): the probabilities that made the counts;
6. ``netemu down``, also when a step failed or the user pressed Ctrl-C.

The cluster is started and stopped through the ``netemu up``/``netemu down`` commands (argv, the
same thing a user types), so the demo depends on the emulator's contract only: the state dir's
kubeconfig and cluster.json. The steps in between are pure builders and parsers (unit-tested)
and a few thin calls (API, ``ip netns exec``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from rich.console import Console
from rich.table import Table

from netemu.agent.proxy.hashing import service_chains
from netemu.agent.runtime.names import pod_netns_of
from netemu.api import kinds
from netemu.api.meta import Obj
from netemu.client import ApiClient


AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
PAUSE = "registry.k8s.io/pause:3.9"
CLIENT_LABEL = "netemu.dev/demo-client"
APP = "hostnames"
SERVICE_PORT = 80
POD_PORT = 8080
PORT_NAME = "http"

# The client: N requests to http://ip:port/path, each on a new TCP connection (HTTP/1.0, so the
# server closes it); prints one JSON list of the bodies, null for a failed request (never
# retried: a lost request must show). A constant; its inputs come as argv: ip port path n timeout.
HTTP_CLIENT_SOURCE = r"""
import json, socket, sys
ip, port, path, n, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
out = []
for _ in range(n):
    try:
        s = socket.create_connection((ip, port), timeout=timeout)
        s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, ip)).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        out.append(body.decode().strip() if head.split(b" ")[1:2] == [b"200"] else None)
    except (OSError, IndexError):
        out.append(None)
print(json.dumps(out))
"""


# -- manifests ------------------------------------------------------------------------------------

def deployment(name: str = APP, replicas: int = 3, namespace: str = "default",
               avoid_client_node: bool = True) -> Obj:
    """agnhost netexec replicas (HTTP /hostname on 8080), kept off the labelled client node."""
    spec: Obj = {"containers": [{
        "name": "agnhost", "image": AGNHOST,
        "args": ["netexec", f"--http-port={POD_PORT}", "--udp-port=8081"],
        "ports": [{"name": PORT_NAME, "containerPort": POD_PORT}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": POD_PORT},
                           "periodSeconds": 2},
    }], "terminationGracePeriodSeconds": 2}
    if avoid_client_node:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": CLIENT_LABEL, "operator": "DoesNotExist"}]}]}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def service(name: str = APP, namespace: str = "default", type_: str = "ClusterIP") -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": type_, "selector": {"app": name},
                     "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": POD_PORT,
                                "protocol": "TCP"}]}}


def client_pod(node: str, name: str = "client", namespace: str = "default") -> Obj:
    """A pause pod pinned to ``node``: only its network namespace is used (the requests run
    in it), so it costs no process of its own."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": f"{APP}-client"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "pause", "image": PAUSE}]}}


# -- decisions and readings -----------------------------------------------------------------------

def _ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _schedulable(node: Obj) -> bool:
    spec = node.get("spec") or {}
    return not spec.get("unschedulable") and not any(
        t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or [])


def pick_client_node(nodes: Iterable[Obj]) -> str | None:
    """The node the client runs on: the last Ready, schedulable one by name, so replicas keep
    the others; None when fewer than two such nodes exist (then the client shares a node)."""
    usable = sorted(n["metadata"]["name"] for n in nodes if _ready(n) and _schedulable(n))
    return usable[-1] if len(usable) >= 2 else (usable[0] if usable else None)


def pod_ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def ready_endpoints(slices: Iterable[Obj]) -> set[str]:
    """The ready endpoint addresses of a Service's EndpointSlices."""
    return {addr for s in slices for ep in s.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready") is not False for addr in ep.get("addresses") or []}


def count_answers(answers: list[str | None]) -> tuple[collections.Counter, int]:
    """(answers per pod name, failed requests). agnhost's /hostname body is the pod's name."""
    counts = collections.Counter(a.split()[0] for a in answers if a)
    return counts, sum(1 for a in answers if not a)


def distribution_rows(counts: collections.Counter, pods: Iterable[Obj]) -> list[tuple[str, str, str, int, str]]:
    """(pod, node, pod IP, requests, share) per replica, replicas that got nothing included."""
    total = sum(counts.values()) or 1
    rows = []
    known = set()
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        name = pod["metadata"]["name"]
        known.add(name)
        rows.append((name, (pod.get("spec") or {}).get("nodeName", "?"),
                     (pod.get("status") or {}).get("podIP", "?"), counts.get(name, 0),
                     f"{100 * counts.get(name, 0) / total:.1f}%"))
    for name in sorted(set(counts) - known):  # an answer from a pod we did not list
        rows.append((name, "?", "?", counts[name], f"{100 * counts[name] / total:.1f}%"))
    return rows


def service_chain(namespace: str, name: str, port_name: str = PORT_NAME,
                  protocol: str = "tcp") -> str:
    """The KUBE-SVC chain of one Service port (upstream's "ns/name:port" + protocol hash)."""
    spn = f"{namespace}/{name}" + (f":{port_name}" if port_name else "")
    return service_chains(spn, protocol)[0]


_JUMP = re.compile(r"-j (KUBE-SEP-[A-Z0-9]+)")


def svc_chain_excerpt(save_text: str, svc_chain: str) -> list[str]:
    """The lines of a ``iptables-save -t nat`` that make up one Service: the KUBE-SERVICES jump to
    its chain, the chain, and each KUBE-SEP chain it jumps to (declarations and rules)."""
    lines = [ln for ln in save_text.splitlines() if ln.strip()]
    rule_lines = [ln for ln in lines if ln.startswith(f"-A {svc_chain} ")]
    chains = [svc_chain] + [m.group(1) for ln in rule_lines for m in [_JUMP.search(ln)] if m]
    wanted = set(chains)
    out = [ln for ln in lines if ln.startswith(":") and ln[1:].split(" ", 1)[0] in wanted]
    out += [ln for ln in lines if ln.startswith("-A KUBE-SERVICES ") and f"-j {svc_chain}" in ln]
    for chain in chains:
        out += [ln for ln in lines if ln.startswith(f"-A {chain} ")]
    return out


def endpoint_jumps(excerpt: list[str], svc_chain: str) -> int:
    """How many endpoints the node's KUBE-SVC chain balances over (rules that jump to a SEP)."""
    return sum(1 for ln in excerpt if ln.startswith(f"-A {svc_chain} ") and _JUMP.search(ln))


def parse_client_output(stdout: str) -> list[str | None]:
    """The client's JSON list (its last line), or an error naming what came instead."""
    last = (stdout.strip().splitlines() or [""])[-1]
    try:
        answers = json.loads(last)
    except ValueError:
        raise ValueError(f"the client printed no result: {stdout.strip()[:200]!r}") from None
    if not isinstance(answers, list):
        raise ValueError(f"the client printed {last[:200]!r}, not a list")
    return answers


# -- the run (effects: processes, the API, namespaces) --------------------------------------------

class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and what was seen."""


@dataclass
class DemoOptions:
    state_dir: str
    nodes: int = 3
    replicas: int = 3
    requests: int = 300
    namespace: str = "default"
    timeout: float = 180.0
    up_args: tuple[str, ...] = ()      # more `netemu up` flags (e.g. --node-network)
    keep: bool = False                 # leave the cluster up at the end


def netemu_argv(*words: str) -> list[str]:
    return [sys.executable, "-m", "netemu", *words]


def up(opts: DemoOptions) -> None:
    rc = subprocess.run(netemu_argv("up", "--nodes", str(opts.nodes), "--state-dir", opts.state_dir,
                                    *opts.up_args), check=False).returncode
    if rc != 0:
        raise DemoError(f"netemu up failed (exit {rc}): its message is above")


def down(state_dir: str) -> int:
    return subprocess.run(netemu_argv("down", "--state-dir", state_dir), check=False).returncode


def netns_run(netns: str, argv: list[str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)


def nat_rules(netns: str) -> str:
    """The nat table of a node as the backend kube-proxy used prints it (nft backend first)."""
    texts = []
    for binary in ("iptables-save", "iptables-legacy-save"):
        proc = netns_run(netns, [binary, "-t", "nat"], timeout=30)
        if proc.returncode == 0 and "KUBE-SERVICES" in proc.stdout:
            return proc.stdout
        texts.append(proc.stdout)
    return texts[0] if texts else ""


async def wait_for(what: str, probe: Callable[[], Awaitable[Any]], timeout: float,
                   interval: float = 0.5) -> Any:
    """Call ``probe`` until it returns something truthy; DemoError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


class Demo:
    """One run of the demo against the cluster in ``opts.state_dir`` (already up)."""

    def __init__(self, opts: DemoOptions, console: Console):
        self.opts, self.console = opts, console
        self.api: ApiClient | None = None
        self.rt = {k: kinds.by_kind_name(k) for k in ("Node", "Pod", "Service", "Deployment",
                                                        "EndpointSlice")}

    def cluster(self) -> Obj:
        return json.loads((Path(self.opts.state_dir) / "cluster.json").read_text(encoding="utf-8"))

    async def run(self) -> Obj:
        kubeconfig = str(Path(self.opts.state_dir) / "kubeconfig")
        async with ApiClient.from_kubeconfig(kubeconfig, user_agent="netemu-demo") as self.api:
            client_node = await self.prepare_client_node()
            pods, svc = await self.deploy(client_node)
            client = await self.start_client(client_node)
            excerpt = await self.wait_rules(client_node, svc)
            answers = self.send(client, svc["spec"]["clusterIP"])
            counts, failed = count_answers(answers)
            self.show(counts, failed, pods, client_node, svc, excerpt)
            return {"counts": dict(counts), "failed": failed, "client_node": client_node,
                    "replica_nodes": sorted({p["spec"]["nodeName"] for p in pods})}

    async def prepare_client_node(self) -> str:
        nodes = (await self.api.list(self.rt["Node"])).items
        node = pick_client_node(nodes)
        if node is None:
            raise DemoError("no Ready, schedulable node: see netemu status")
        await self.api.patch(self.rt["Node"], node, {"metadata": {"labels": {CLIENT_LABEL: "true"}}})
        return node

    async def deploy(self, client_node: str) -> tuple[list[Obj], Obj]:
        o, ns = self.opts, self.opts.namespace
        nodes = (await self.api.list(self.rt["Node"])).items
        avoid = sum(1 for n in nodes if _ready(n) and _schedulable(n)) >= 2
        await self.api.create(self.rt["Deployment"], deployment(replicas=o.replicas, namespace=ns,
                                                                avoid_client_node=avoid), ns)
        svc = await self.api.create(self.rt["Service"], service(namespace=ns), ns)
        self.console.print(f"[bold]Deployment[/] {APP}: {o.replicas} x agnhost netexec; "
                           f"[bold]Service[/] {APP} ClusterIP {svc['spec']['clusterIP']}:{SERVICE_PORT}")

        async def replicas_ready():
            items = (await self.api.list(self.rt["Pod"], ns, label_selector=f"app={APP}")).items
            ready = [p for p in items if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]
            return ready if len(ready) == o.replicas else None

        async def endpoints_ready():
            slices = (await self.api.list(self.rt["EndpointSlice"], ns,
                                          label_selector=f"kubernetes.io/service-name={APP}")).items
            return len(ready_endpoints(slices)) == o.replicas

        with self.console.status(f"waiting for {o.replicas} ready replicas and endpoints"):
            pods = await wait_for(f"{o.replicas} ready replicas of {APP}", replicas_ready, o.timeout)
            await wait_for(f"{o.replicas} ready endpoints of Service {APP}", endpoints_ready, o.timeout)
        return pods, svc

    async def start_client(self, node: str) -> Obj:
        ns = self.opts.namespace
        await self.api.create(self.rt["Pod"], client_pod(node, namespace=ns), ns)

        async def running():
            pod = await self.api.get(self.rt["Pod"], "client", ns)
            return pod if pod_ready(pod) and (Path("/run/netns") / pod_netns_of(pod)).exists() else None
        with self.console.status(f"waiting for the client pod on {node}"):
            return await wait_for(f"the client pod on {node}", running, self.opts.timeout)

    async def wait_rules(self, node: str, svc: Obj) -> list[str]:
        """The client node's chain once kube-proxy balances over every replica there."""
        netns = self.cluster()["nodes"][node]["netns"]
        chain = service_chain(self.opts.namespace, APP)

        async def live():
            excerpt = svc_chain_excerpt(await asyncio.to_thread(nat_rules, netns), chain)
            return excerpt if endpoint_jumps(excerpt, chain) == self.opts.replicas else None
        with self.console.status(f"waiting for {chain} on {node}"):
            return await wait_for(f"{chain} with {self.opts.replicas} endpoints on {node}", live,
                                  self.opts.timeout)

    def send(self, client: Obj, cluster_ip: str) -> list[str | None]:
        n = self.opts.requests
        with self.console.status(f"{n} HTTP requests from the client pod to {cluster_ip}:{SERVICE_PORT}"):
            proc = netns_run(pod_netns_of(client), [sys.executable, "-c", HTTP_CLIENT_SOURCE, cluster_ip,
                                                 str(SERVICE_PORT), "/hostname", str(n), "3"],
                             timeout=60 + 3 * n)
        if proc.returncode != 0:
            raise DemoError(f"the client failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        try:
            return parse_client_output(proc.stdout)
        except ValueError as exc:
            raise DemoError(str(exc)) from None

    def show(self, counts, failed: int, pods: list[Obj], client_node: str, svc: Obj,
             excerpt: list[str]) -> None:
        table = Table(title=f"{sum(counts.values()) + failed} requests from client@{client_node} to "
                            f"{svc['spec']['clusterIP']}:{SERVICE_PORT} (Service {APP})")
        for col in ("pod", "node", "pod IP", "requests", "share"):
            table.add_column(col, justify="right" if col in ("requests", "share") else "left")
        for row in distribution_rows(counts, pods):
            table.add_row(*(str(c) for c in row))
        if failed:
            table.add_row("[red]failed[/]", "", "", str(failed), "")
        self.console.print(table)
        self.console.print(f"[bold]{client_node}[/]: the nat rules kube-proxy wrote for Service "
                           f"{self.opts.namespace}/{APP} (iptables-save -t nat, filtered)")
        for line in excerpt:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def run(opts: DemoOptions, console: Console | None = None) -> Obj:
    """up, the demo, down: the result, or DemoError.

    ``down`` runs whenever ``up`` succeeded (also on failure or Ctrl-C), unless ``keep``; a failed
    ``up`` cleans up after itself, and must not be followed by ``down``: it may have failed
    because another cluster runs on this state dir."""
    console = console or Console()
    up(opts)
    try:
        return asyncio.run(Demo(opts, console).run())
    finally:
        if not opts.keep:
            console.print("netemu down")
            # a second Ctrl-C (or SIGTERM) must not cut the teardown short
            previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                if down(opts.state_dir) != 0:
                    console.print(f"[red]netemu down failed: run netemu cleanup --state-dir {opts.state_dir}[/]")
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
