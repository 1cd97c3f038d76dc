"""Benchmark of the pod runtime: sandbox creation (one by one vs concurrent) and memory per pod
(in-process built-in image vs a real process per pod), in one run, on a node namespace of its own.

    sudo .venv/bin/python -m netemu.agent.runtime.bench [--pods 200] [--procs 20]

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

from .names import pod_netns
from .node import NodeRuntime

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
    t0 = time.monotonic()
    for p in made:
        await rt.remove_sandbox(p["metadata"]["uid"])
    t_remove = (time.monotonic() - t0) / len(made)
    return {"n": n - 1, "seq_ms": t_seq / (n - 1) * 1000, "conc_ms": t_conc / (n - 1) * 1000,
            "start_ms": t_start / (2 * (n - 1)) * 1000, "builtin_kb": per_builtin,
            "process_kb": per_process, "remove_ms": t_remove * 1000, "procs": procs}


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
            subprocess.run(["ip", "netns", "del", pod_netns(p["metadata"]["uid"])], capture_output=True)
        subprocess.run(["ip", "netns", "del", node_ns], capture_output=True)
    print(f"| sandboxes | ms/pod one by one | ms/pod 8 concurrent | x |\n|---|---|---|---|\n"
          f"| {r['n']} + {r['n']} | {r['seq_ms']:.1f} | {r['conc_ms']:.1f} | x{r['seq_ms'] / r['conc_ms']:.1f} |")
    print(f"\n| pod kind | memory per pod (KB) | x |\n|---|---|---|\n"
          f"| built-in netexec, in-process (agent RSS growth over {2 * r['n']} pods) | {r['builtin_kb']:.1f} | 1 |\n"
          f"| a Python HTTP server process per pod (RSS, mean of {r['procs']}) | {r['process_kb']:.0f} | "
          f"x{r['process_kb'] / max(r['builtin_kb'], 0.1):.0f} |")
    print(f"\nbuilt-in container start: {r['start_ms']:.2f} ms/pod; sandbox removal: {r['remove_ms']:.1f} ms/pod (one by one)")


if __name__ == "__main__":
    main()
