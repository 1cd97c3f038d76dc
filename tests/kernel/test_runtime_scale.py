"""200 pods of a built-in image in one agent process: memory per pod (RSS growth) and traffic.

Prints the measured numbers (run with -s to see them); asserts only a generous bound, because
RSS on a shared machine is noisy. The issue's target is <= 200 KB per built-in-image pod.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import time
import uuid

import pytest

from netemu.agent.runtime import NodeRuntime, http_get, pod_netns

pytestmark = [pytest.mark.root, pytest.mark.slow]

PODS = 200
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _pod(i: int) -> dict:
    return {"metadata": {"name": f"scale-{i}", "namespace": "default", "uid": str(uuid.uuid4())},
            "spec": {"containers": [{"name": "app", "image": AGNHOST, "args": ["netexec"]}]}}


def test_200_builtin_pods_memory_and_traffic(tmp_path):
    node_ns = f"ntr{os.getpid()}s"
    pods = [_pod(i) for i in range(PODS + 1)]
    subprocess.run(["ip", "netns", "add", node_ns], check=True)
    try:
        rt = NodeRuntime(str(tmp_path), "10.244.10.0/23", node_netns=node_ns)

        async def scenario():
            await rt.setup_node()
            warm = pods[0]  # first pod warms imports and caches out of the measurement
            sb0 = await rt.create_sandbox(warm)
            handles = [await rt.start_container(sb0, warm, warm["spec"]["containers"][0])]
            gc.collect()
            before = rss_kb()
            t0 = time.monotonic()
            sem = asyncio.Semaphore(8)

            async def sandbox(pod):
                async with sem:
                    return await rt.create_sandbox(pod)
            sandboxes = await asyncio.gather(*(sandbox(p) for p in pods[1:]))
            t1 = time.monotonic()
            for pod, sb in zip(pods[1:], sandboxes):
                handles.append(await rt.start_container(sb, pod, pod["spec"]["containers"][0]))
            t2 = time.monotonic()
            gc.collect()
            after = rss_kb()
            # traffic: first, middle and last pod answer their own name to another pod
            for i in (1, PODS // 2, PODS):
                r = await http_get(sandboxes[i - 1].ip, 8080, "/hostname", netns=sb0.netns)
                assert r.body == f"scale-{i}".encode()
            per_pod = (after - before) / PODS
            print(f"\n{PODS} netexec pods: sandboxes {t1 - t0:.2f} s ({(t1 - t0) / PODS * 1000:.1f} ms/pod, "
                  f"8 concurrent), containers {t2 - t1:.3f} s; RSS {before} -> {after} KB, "
                  f"{per_pod:.1f} KB per pod")
            for h in handles:
                await h.stop(1)
            t3 = time.monotonic()
            for pod in pods:
                await rt.remove_sandbox(pod["metadata"]["uid"])
            print(f"removal of {PODS + 1} sandboxes: {time.monotonic() - t3:.2f} s")
            return per_pod

        per_pod = asyncio.run(scenario())
        assert per_pod < 1024, f"{per_pod:.0f} KB per built-in pod (target 200 KB)"
        assert rt.ipam.allocations == {}
    finally:
        for pod in pods:
            subprocess.run(["ip", "netns", "del", pod_netns(pod["metadata"]["uid"])], capture_output=True)
        subprocess.run(["ip", "netns", "del", node_ns], capture_output=True)
