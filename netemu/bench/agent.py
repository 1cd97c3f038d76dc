"""Benchmark: one node agent's memory and pod start-up, in an AgentLab (root; namespaces of its own).

``python -m netemu.bench.agent --pods 100,200`` starts `netemu apiserver` + `netemu agent`,
measures the agent's RSS with no pods, then adds built-in-image pods (agnhost netexec, bound to the
node) in steps and reports, per step: time until every pod is Ready, the agent's RSS, and RSS per
pod relative to the empty agent (one run, so the ratio is free of machine noise between runs).
Finally it deletes every pod and reports the time until all are gone.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from netemu.testing.agentlab import AgentLab

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, seconds: float = 10.0) -> float:
    """Share of one core the agent uses while nothing changes (heartbeats, resyncs)."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def uss_kb(pid: int) -> int:
    """Private memory: what one more agent really costs (shared library pages not counted)."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


def pods_json(start: int, count: int) -> str:
    """A stream of JSON objects (kubectl reads concatenated documents)."""
    docs = [json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"b{i}", "labels": {"app": "bench"}},
                        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1, "containers": [
                            {"name": "c", "image": AGNHOST, "args": ["netexec", "--http-port=8080", "--udp-port=8081"]}]}})
            for i in range(start, start + count)]
    return "\n".join(docs)


def ready_count(lab: AgentLab) -> tuple[int, int]:
    out = lab.kubectl("get", "pods", "-l", "app=bench", "-o", "json").stdout
    items = json.loads(out)["items"]
    ready = sum(1 for p in items for c in (p.get("status") or {}).get("conditions") or []
                if c["type"] == "Ready" and c["status"] == "True")
    return ready, len(items)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", default="100,200", help="cumulative pod counts to step through (<= 250: one /24)")
    ap.add_argument("--entry", choices=["cli", "lean"], default="lean",
                    help="start the agent as `netemu agent` (cli) or `python -m netemu.cli.agent_cmd` (lean)")
    args = ap.parse_args()
    steps = [int(x) for x in args.pods.split(",")]
    with tempfile.TemporaryDirectory(prefix="netemu-kubelet-bench-") as tmp:
        lab = AgentLab(Path(tmp), agent_args=("--proxy-mode", "iptables"),
                       entry=AgentLab.LEAN if args.entry == "lean" else AgentLab.CLI)
        try:
            lab.start()
            t0 = time.monotonic()
            lab.wait("node Ready", lambda: any(c["type"] == "Ready" and c["status"] == "True" for c in
                                               ((lab.get("node", "n1") or {}).get("status") or {}).get("conditions") or []))
            print(f"node Ready after {time.monotonic() - t0:.1f} s (agent start to Ready, incl. registration)")
            time.sleep(2)
            base = rss_kb(lab.agent.pid)
            print(f"agent RSS, no pods: {base / 1024:.1f} MB (USS {uss_kb(lab.agent.pid) / 1024:.1f} MB); "
                  f"idle (heartbeat 1 s): {100 * idle_cpu(lab.agent.pid):.1f} % of one core")
            have = 0
            for target in steps:
                t = time.monotonic()
                lab.kubectl("apply", "-f", "-", stdin=pods_json(have, target - have))
                lab.wait(f"{target} pods Ready", lambda: ready_count(lab)[0] >= target, timeout=600)
                took = time.monotonic() - t
                time.sleep(1)
                rss = rss_kb(lab.agent.pid)
                print(f"{target} pods: +{target - have} Ready in {took:.1f} s; agent RSS {rss / 1024:.1f} MB "
                      f"(USS {uss_kb(lab.agent.pid) / 1024:.1f} MB) "
                      f"({(rss - base) / target:.0f} KB per pod over the empty agent)")
                have = target
            print(f"idle with {have} pods (heartbeat 1 s): {100 * idle_cpu(lab.agent.pid):.1f} % of one core")
            t = time.monotonic()
            lab.kubectl("delete", "pods", "-l", "app=bench", "--wait=false")
            lab.wait("pods gone", lambda: ready_count(lab)[1] == 0, timeout=600)
            print(f"{have} pods deleted (graceful, then gone from the API) in {time.monotonic() - t:.1f} s")
        finally:
            lab.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
