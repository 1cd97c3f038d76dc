"""Benchmark of the pod runtime: sandbox creation (in-process one by one, concurrent, and the
``ip``-process way) and memory per pod (in-process built-in image vs a real process per pod), in
one run, on a node namespace of its own.

    sudo .venv/bin/python -m netemu.bench.runtime [--pods 200] [--procs 20]

Needs root; creates ``ntb<pid>`` and the pods' ``nep-…`` namespaces and removes them all, also
on failure. Prints a markdown table for docs/benchmarks.md ("Pod runtime" section).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
import uuid

from netemu.agent.runtime.names import pod_netns
from netemu.agent.runtime.node import NodeRuntime
from netemu.agent.runtime.plumb import delete_netns

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
# what a process-per-pod design would run: a minimal Python HTTP server answering the hostname
PY_SERVER = ("import http.server,socket\n"
             "class H(http.server.BaseHTTPRequestHandler):\n"
             "    def do_GET(self):\n"
             "        b=socket.gethostname().encode();self.send_response(200)\n"
             "        self.send_header('Content-Length',str(len(b)));self.end_headers();self.wfile.write(b)\n"
             "http.server.HTTPServer(('0.0.0.0',8080),H).serve_forever()\n")


def rss_kb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pod(i: int, container: dict) -> dict:
    return {"metadata": {"name": f"bench-{i}", "namespace": "default", "uid": str(uuid.uuid4())},
            "spec": {"containers": [container]}}


async def create_all(rt: NodeRuntime, pods: list[dict], concurrency: int) -> tuple[list, float]:
    sem = asyncio.Semaphore(concurrency)

    async def one(p):
        async with sem:
            return await rt.create_sandbox(p)
    t0 = time.monotonic()
    sandboxes = await asyncio.gather(*(one(p) for p in pods))
    return sandboxes, time.monotonic() - t0


async def ip_processes(node_ns: str, names: list[str], cidr_prefix: str) -> float:
    """The same sandboxes made the ``ip`` way (netns add, node batch, pod batch): seconds."""
    from netemu.agent.runtime.cmd import ip_batch, run as run_argv
    t0 = time.monotonic()
    for i, name in enumerate(names):
        await run_argv(["ip", "netns", "add", name])
        await ip_batch(node_ns, [f"link add vb{i} type veth peer name eth0 netns {name}",
                                 f"link set vb{i} master cni0", f"link set vb{i} type bridge_slave hairpin on",
                                 f"link set vb{i} up"])
        await ip_batch(name, ["link set lo up", f"addr add {cidr_prefix}.{i + 2}/24 dev eth0",
                              "link set eth0 up", f"route add default via {cidr_prefix}.1"])
    return time.monotonic() - t0


async def run(n: int, procs: int, state_dir: str, node_ns: str, made: list[dict]) -> dict:
    rt = NodeRuntime(state_dir, "10.244.0.0/20", node_netns=node_ns)
    await rt.setup_node()
    netexec = {"name": "app", "image": AGNHOST, "args": ["netexec"]}
    seq = [pod(i, netexec) for i in range(n)]
    made += seq
    warm = seq[0]
    _, _ = await create_all(rt, [warm], 1)
    handles = [await rt.start_container((await rt.create_sandbox(warm)), warm, netexec)]
    gc.collect()
    base = rss_kb()
    sb_seq, t_seq = await create_all(rt, seq[1:], 1)
    conc = [pod(n + i, netexec) for i in range(n - 1)]
    made += conc
    sb_conc, t_conc = await create_all(rt, conc, 8)
    t0 = time.monotonic()
    for p, sb in zip(seq[1:] + conc, sb_seq + sb_conc):
        handles.append(await rt.start_container(sb, p, netexec))
    t_start = time.monotonic() - t0
    gc.collect()
    per_builtin = (rss_kb() - base) / (2 * (n - 1))

    py = {"name": "py", "image": "python", "command": [sys.executable, "-c", PY_SERVER]}
    procs_pods = [pod(10_000 + i, py) for i in range(procs)]
    made += procs_pods
    proc_handles = []
    for p in procs_pods:
        proc_handles.append(await rt.start_container(await rt.create_sandbox(p), p, py))
    await asyncio.sleep(1.5)  # let the interpreters finish importing
    per_process = sum(rss_kb(h.pid) for h in proc_handles) / procs

    for h in handles + proc_handles:
        await h.stop(2)
    # the ip-process way, for comparison (same node, same cni0; own names, removed below)
    ip_names = [f"nep-b{os.getpid():x}{i:04x}"[:15] for i in range(min(n, 100))]
    made += [{"metadata": {"uid": ""}, "netns": nm} for nm in ip_names]
    t_ip = await ip_processes(node_ns, ip_names, "10.244.15") / len(ip_names)
    t0 = time.monotonic()
    for p in made:
        if p.get("netns"):
            delete_netns(p["netns"])
        else:
            await rt.remove_sandbox(p["metadata"]["uid"])
    t_remove = (time.monotonic() - t0) / len(made)
    while "veth" in subprocess.run(["ip", "-n", node_ns, "-o", "link"], capture_output=True,
                                   text=True).stdout and time.monotonic() - t0 < 120:
        await asyncio.sleep(0.05)  # the kernel tears namespaces (and their veths) down later
    t_gone = (time.monotonic() - t0) / len(made)
    return {"n": n - 1, "seq_ms": t_seq / (n - 1) * 1000, "conc_ms": t_conc / (n - 1) * 1000,
            "start_ms": t_start / (2 * (n - 1)) * 1000, "builtin_kb": per_builtin,
            "process_kb": per_process, "remove_ms": t_remove * 1000, "gone_ms": t_gone * 1000, "procs": procs,
            "ip_ms": t_ip * 1000, "ip_n": len(ip_names)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--procs", type=int, default=20)
    args = ap.parse_args()
    node_ns = f"ntb{os.getpid()}"
    made: list[dict] = []
    subprocess.run(["ip", "netns", "add", node_ns], check=True)
    try:
        with tempfile.TemporaryDirectory() as state:
            r = asyncio.run(run(args.pods, args.procs, state, node_ns, made))
    finally:
        for p in made:
            name = p.get("netns") or pod_netns(p["metadata"]["uid"])
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "netns", "del", node_ns], capture_output=True)
    print(f"| sandbox creation | pods | ms/pod | x |\n|---|---|---|---|\n"
          f"| in-process (netlink), one by one | {r['n']} | {r['seq_ms']:.1f} | 1 |\n"
          f"| in-process (netlink), 8 concurrent | {r['n']} | {r['conc_ms']:.1f} | x{r['conc_ms'] / r['seq_ms']:.1f} |\n"
          f"| three `ip` processes (netns add, node batch, pod batch) | {r['ip_n']} | {r['ip_ms']:.1f} | "
          f"x{r['ip_ms'] / r['seq_ms']:.1f} |")
    print(f"\n| pod kind | memory per pod (KB) | x |\n|---|---|---|\n"
          f"| built-in netexec, in-process (agent RSS growth over {2 * r['n']} pods) | {r['builtin_kb']:.1f} | 1 |\n"
          f"| a Python HTTP server process per pod (RSS, mean of {r['procs']}) | {r['process_kb']:.0f} | "
          f"x{r['process_kb'] / max(r['builtin_kb'], 0.1):.0f} |")
    print(f"\nbuilt-in container start: {r['start_ms']:.2f} ms/pod; sandbox removal: {r['remove_ms']:.1f} ms/pod "
          f"(one by one), {r['gone_ms']:.1f} ms/pod until the kernel removed the last veth")


if __name__ == "__main__":
    main()
