"""A real netemu cluster for a test module or a script: up, use, always down.

``NetemuCluster`` drives the commands a user types (``netemu up``/``down`` as argv, real
``kubectl`` when installed, netemu's API client otherwise not needed) and offers what an
experiment written as a test needs: apply manifests, wait for ready pods, and send traffic
through netemu.traffic (``traffic()`` returns the Result).

Safe next to other clusters on the machine: its own state dir and its own node network
172.31.<k>.0/24 (``k`` from the pid, moved on when another cluster holds it); ``down()`` is
idempotent and also runs after a failed ``up``. The pytest fixture ``netemu_cluster`` (module
scope, netemu.testing.pytest_plugin) wraps it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from netemu.traffic.cluster import prepare
from netemu.traffic.result import Result
from netemu.traffic.spec import LoadSpec


def free_node_network(offset: int = 0) -> str:
    return f"172.31.{20 + (os.getpid() + offset) % 200}.0/24"


def netemu_argv(*words: str) -> list[str]:
    return [sys.executable, "-m", "netemu", *words]


class ClusterError(RuntimeError):
    """A cluster command failed; the message carries its output (and the logs for ``up``)."""


class NetemuCluster:
    """One cluster at ``state_dir`` with ``nodes`` workers; ``args``: more ``netemu up`` flags."""

    def __init__(self, state_dir: str | Path, nodes: int = 2, node_network: str | None = None,
                 args: Iterable[str] = ()):
        self.state_dir = Path(state_dir).resolve()
        self.nodes, self.args = nodes, tuple(args)
        self.node_network = node_network or free_node_network()
        self.kubeconfig = str(self.state_dir / "kubeconfig")
        self.is_up = False

    def __enter__(self) -> NetemuCluster:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # -- lifetime ----------------------------------------------------------------------------

    def netemu(self, *words: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(netemu_argv(*words), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise ClusterError(f"netemu {' '.join(words)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def up(self) -> None:
        """``netemu up``; a node network another cluster holds is swapped (3 tries)."""
        self.is_up = True                  # from here on, down() must run whatever happens
        for attempt in range(3):
            proc = self.netemu("up", "--nodes", str(self.nodes), "--state-dir", str(self.state_dir),
                               "--node-network", self.node_network, *self.args, timeout=600, check=False)
            if proc.returncode == 0 or f"node network {self.node_network} is" not in proc.stderr:
                break
            self.node_network = free_node_network(37 * (attempt + 1) + int(self.node_network.split(".")[2]))
        if proc.returncode != 0:
            logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                             for p in sorted((self.state_dir / "logs").glob("*.log")))
            self.down()
            raise ClusterError(f"netemu up failed: {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n{logs}")

    def down(self) -> None:
        if self.is_up:
            self.is_up = False
            self.netemu("down", "--state-dir", str(self.state_dir), timeout=300, check=False)

    # -- the cluster's objects -----------------------------------------------------------------

    def doc(self) -> dict:
        return json.loads((self.state_dir / "cluster.json").read_text())

    def workers(self) -> list[str]:
        return sorted(n for n, info in self.doc()["nodes"].items() if info.get("role") != "control-plane")

    def kubectl(self, *words: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, "--request-timeout=30s", *words],
                              input=input, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(words)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def apply(self, *objs: dict) -> str:
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs, sort_keys=False)).stdout

    def get(self, *words: str) -> Any:
        return json.loads(self.kubectl("get", *words, "-o", "json").stdout)

    def ready_pods(self, selector: str) -> list[dict]:
        return [p for p in self.get("pods", "-l", selector)["items"] if pod_ready(p)]

    def wait_ready(self, selector: str, count: int, timeout: float = 180) -> list[dict]:
        """The ready pods of ``selector`` once there are exactly ``count``."""
        return wait_until(f"{count} ready pods {selector}",
                          lambda: (lambda pods: pods if len(pods) == count else None)(self.ready_pods(selector)),
                          timeout)

    # -- traffic ---------------------------------------------------------------------------------

    def traffic(self, source: str, target: str, spec: LoadSpec | None = None, **kw) -> Result:
        """Send ``spec`` (or LoadSpec(**kw)) from ``source`` to ``target`` (netemu traffic's
        --from/--to); ``via``, ``node``, ``weights``, ``namespace`` go to the resolver."""
        where = {k: kw.pop(k) for k in ("via", "node", "weights", "namespace") if k in kw}
        spec = spec or LoadSpec(**kw)

        async def go() -> Result:
            prepared = await prepare(str(self.state_dir), source, target, spec, **where)
            return await prepared.run.run()
        return asyncio.run(go())


def pod_ready(pod: dict) -> bool:
    """Running, not being deleted, and Ready."""
    st = pod.get("status") or {}
    return st.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 120, interval: float = 0.5) -> Any:
    """Poll ``probe`` until truthy; TimeoutError naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
