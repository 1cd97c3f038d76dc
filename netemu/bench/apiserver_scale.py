"""Benchmark of the API server under a 100-node cluster's control-plane load, no kernel needed.

Simulates what every node agent does to the API server, from one process: register its Node,
run a Node informer (all nodes, for podCIDR routes) and a Pod informer (``spec.nodeName=<node>``),
renew its Lease every ``--heartbeat`` s and patch its Node status every ``--status-interval`` s,
and, like a kubelet, patch each pod bound to it to Running once its informer sees it. Then it
creates ``--pods`` pods (bound round-robin, no scheduler) and times until every agent's cache
shows all its pods Running. Last, ``--stalled`` watchers that never read their stream are opened
and the load continues: what the server holds for them shows in its RSS.

The API server is a real ``netemu apiserver`` process (SQLite, no controllers); its CPU seconds
and RSS (peak and final) come from /proc. ``--trees before=DIR,after=DIR`` runs the same load
against API servers started from two source trees (e.g. ``git archive`` of the previous commit)
in one run, alternating, so the ratio is meaningful on a noisy machine:

    python -m netemu.bench.apiserver_scale --trees before=/tmp/base,after=. --nodes 100 --pods 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netemu.api import errors, kinds
from netemu.client import ApiClient, Informer, kubeconfig
from netemu.testing.apiserver_process import apiserver_process

NODE = kinds.by_resource("", "v1", "nodes")
POD = kinds.by_resource("", "v1", "pods")
LEASE = kinds.by_resource("coordination.k8s.io", "v1", "leases")
NAMESPACE = kinds.by_resource("", "v1", "namespaces")
LEASE_NS = "kube-node-lease"




def proc_usage(pid: int) -> dict[str, float]:
    """CPU seconds (user+system), RSS and peak RSS (MB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    kb = lambda k: int(status[k].split()[0]) / 1024  # noqa: E731
    return {"cpu_s": cpu, "rss_mb": kb("VmRSS"), "peak_mb": kb("VmHWM")}


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Agent:
    """The API traffic of one node agent (kubelet side), nothing else."""

    def __init__(self, api: ApiClient, name: str, index: int):
        self.api, self.name, self.index = api, name, index
        self.nodes = Informer(api, NODE, watch_timeout=300)
        self.pods = Informer(api, POD, field_selector=f"spec.nodeName={name}", watch_timeout=300)
        self.pods.add_handler(self._pod, lambda old, new: self._pod(new))
        self.running: set[str] = set()
        self._ips = 2

    def _pod(self, pod: dict) -> None:
        if (pod.get("status") or {}).get("phase") == "Running":
            self.running.add(pod["metadata"]["name"])
        else:
            asyncio.ensure_future(self._start(pod))

    async def _start(self, pod: dict) -> None:
        self._ips += 1
        ip = f"10.{244 + self.index // 256}.{self.index % 256}.{self._ips % 250 + 2}"
        status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "startTime": _stamp(),
                  "conditions": [{"type": t, "status": "True", "lastTransitionTime": _stamp()}
                                 for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]}
        with contextlib.suppress(errors.StatusError):
            await self.api.patch(POD, pod["metadata"]["name"], {"status": status}, "default", subresource="status")

    def node_status(self) -> dict:
        return {"status": {
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": f"172.31.{self.index // 250}.{self.index % 250 + 2}"},
                          {"type": "Hostname", "address": self.name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": _stamp(), "lastTransitionTime": _stamp()}]}}

    async def register(self) -> None:
        await self.api.create(NODE, {"metadata": {"name": self.name, "labels": {"kubernetes.io/hostname": self.name}},
                                     "spec": {"podCIDR": f"10.{244 + self.index // 256}.{self.index % 256}.0/24"}})
        await self.api.patch(NODE, self.name, self.node_status(), subresource="status")
        await self.api.create(LEASE, {"metadata": {"name": self.name, "namespace": LEASE_NS},
                                      "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40}})

    async def heartbeats(self, interval: float, status_interval: float, stop: asyncio.Event) -> None:
        last_status = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(interval)
            with contextlib.suppress(errors.StatusError):
                await self.api.patch(LEASE, self.name, {"spec": {"renewTime": _stamp() + ""}}, LEASE_NS)
                if time.monotonic() - last_status >= status_interval:
                    last_status = time.monotonic()
                    await self.api.patch(NODE, self.name, self.node_status(), subresource="status")


def _pod(name: str, node: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "labels": {"app": "scale"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.39",
                                                       "args": ["netexec", "--http-port=8080"]}]}}


async def stalled_watch(kc: Path, path: str) -> socket.socket:
    """A watch whose client never reads: a TLS request sent, then silence, tiny receive buffer."""
    access = kubeconfig.load(str(kc))
    host, port = access.server.split("//", 1)[1].rsplit(":", 1)
    ctx = ssl.create_default_context(cadata=access.ca_data.decode() if access.ca_data else None)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((host, int(port)))
    tls = ctx.wrap_socket(raw, server_hostname=host)
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {access.token}\r\n\r\n".encode())
    return tls


async def run_load(kc: Path, pid: int, args: argparse.Namespace) -> dict[str, float]:
    stop = asyncio.Event()
    clients = [ApiClient.from_kubeconfig(str(kc), timeout=120) for _ in range(args.nodes)]
    agents = [Agent(c, f"n{i:03d}", i) for i, c in enumerate(clients)]
    tasks: list[asyncio.Future] = []
    stalled: list[socket.socket] = []
    try:
        with contextlib.suppress(errors.AlreadyExists):
            await clients[0].create(NAMESPACE, {"metadata": {"name": LEASE_NS}})
        t0 = time.perf_counter()
        await asyncio.gather(*(a.register() for a in agents))
        for a in agents:
            tasks += [asyncio.ensure_future(a.nodes.run(stop)), asyncio.ensure_future(a.pods.run(stop)),
                      asyncio.ensure_future(a.heartbeats(args.heartbeat, args.status_interval, stop))]
        await asyncio.gather(*(a.nodes.wait_synced() for a in agents), *(a.pods.wait_synced() for a in agents))
        nodes_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        sem = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            async with sem:
                await clients[i % len(clients)].create(POD, _pod(f"p{i:05d}", agents[i % len(agents)].name))
        await asyncio.gather(*(create(i) for i in range(args.pods)))
        while sum(len(a.running) for a in agents) < args.pods:
            await asyncio.sleep(0.1)
        pods_s = time.perf_counter() - t1
        after_pods = proc_usage(pid)
        for _ in range(args.stalled):
            stalled.append(await stalled_watch(kc, "/api/v1/pods?watch=true"))
        await asyncio.sleep(args.steady)
        end = proc_usage(pid)
        return {"nodes_ready_s": nodes_s, "pods_running_s": pods_s, "cpu_s": end["cpu_s"],
                "rss_after_pods_mb": after_pods["rss_mb"], "rss_end_mb": end["rss_mb"], "peak_mb": end["peak_mb"],
                "steady_cpu_s": end["cpu_s"] - after_pods["cpu_s"]}
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in stalled:
            s.close()
        await asyncio.gather(*(c.close() for c in clients))


def run_tree(name: str, tree: Path, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="netemu-scale-") as tmp, contextlib.ExitStack() as stack:
        url = ""
        if args.store == "etcd":
            from netemu.store.etcd_server import EtcdServer
            url = "etcd:" + ",".join(stack.enter_context(EtcdServer()).endpoints)
        with apiserver_process(Path(tmp), url, tree) as (kc, pid):
            spy = None
            if args.py_spy:       # collapsed stacks of the API server: py-spy installed apart
                spy = subprocess.Popen([args.py_spy, "record", "--format", "raw", "--rate", "50", "-p", str(pid),
                                        "-o", f"{args.profile_prefix}{name}.txt"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                return asyncio.run(run_load(kc, pid, args))
            finally:
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(30)


COLUMNS = [("nodes_ready_s", "nodes registered + informers synced, s"), ("pods_running_s", "pods Running in every agent's cache, s"),
           ("cpu_s", "API server CPU s (whole run)"), ("steady_cpu_s", "CPU s in the steady phase"),
           ("rss_after_pods_mb", "RSS after pods, MB"), ("rss_end_mb", "RSS at end (with stalled watchers), MB"),
           ("peak_mb", "peak RSS, MB")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default=f"current={Path.cwd()}", help="NAME=DIR[,NAME=DIR]: source trees to compare")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--heartbeat", type=float, default=2.0, help="Lease renewal interval, s (fake agents: 2)")
    parser.add_argument("--status-interval", type=float, default=10.0, help="Node status patch interval, s")
    parser.add_argument("--stalled", type=int, default=20, help="watchers of all pods that never read")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds of heartbeats after the pods are up")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--store", choices=("sqlite", "etcd"), default="sqlite",
                        help="etcd: a private etcd on loopback per run")
    parser.add_argument("--py-spy", default="", help="path of a py-spy binary: profile the API server")
    parser.add_argument("--profile-prefix", default="/tmp/scalebench-profile-")
    args = parser.parse_args(argv)
    trees = [(name, Path(path)) for name, path in (item.split("=", 1) for item in args.trees.split(","))]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    for _ in range(args.repeats):
        for name, tree in trees:
            runs[name].append(run_tree(name, tree, args))
            print(name, {k: round(v, 2) for k, v in runs[name][-1].items()}, flush=True)
    print(f"\nnodes={args.nodes} pods={args.pods} heartbeat={args.heartbeat}s status={args.status_interval}s "
          f"stalled={args.stalled} steady={args.steady}s repeats={args.repeats} (medians) cpus={os.cpu_count()}")
    print("| tree | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for name, rs in runs.items():
        print(f"| {name} | " + " | ".join(f"{statistics.median(r[k] for r in rs):.1f}" for k, _ in COLUMNS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
