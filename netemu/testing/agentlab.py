"""A small real cluster for kernel tests and benchmarks: `netemu apiserver` and one `netemu agent`.

Two namespaces made here: ``nta<pid>…`` runs the API server (with its controllers), ``ntn<pid>…``
is the node running the agent; a veth pair made *inside* them links SUBNET.1 and .2, so the root
namespace is never touched. Both processes run through ``nsenter --net`` so they share the root
mount namespace (pod namespaces under /run/netns stay visible); kubectl runs in the API server's
namespace. ``close()`` (also after a failure) stops both processes by PID, deletes every pod
namespace the agent allocated (its IPAM file) and then the two namespaces.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from netemu.agent.runtime import pod_netns

_COUNTER = itertools.count()


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def _stop(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class AgentLab:
    """An API server namespace and one node namespace running `netemu agent` (see module doc)."""

    CLI = ("-m", "netemu", "-v", "agent")            # the `netemu agent` command as users see it
    LEAN = ("-m", "netemu.cli.agent_cmd", "-v")      # the same without loading other commands

    def __init__(self, tmp: Path, agent_args: tuple[str, ...] = (), subnet: str = "172.31.251",
                 entry: tuple[str, ...] = CLI):
        n = f"{os.getpid()}{next(_COUNTER)}"
        self.api_ip, self.node_ip = f"{subnet}.1", f"{subnet}.2"
        self.agent_args, self.entry = agent_args, entry
        self.api_ns, self.node_ns = f"nta{n}", f"ntn{n}"
        self.tmp = tmp
        self.kubeconfig = tmp / "api" / "kubeconfig"
        self.agent_state = tmp / "agent"
        self.probe_dir = tmp / "probes"
        self.api: subprocess.Popen | None = None
        self.agent: subprocess.Popen | None = None
        self.pod_netns_left: list[str] = []

    def start(self) -> None:
        for ns in (self.api_ns, self.node_ns):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", self.api_ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1",
             "netns", self.node_ns)
        for ns, ip in ((self.api_ns, self.api_ip), (self.node_ns, self.node_ip)):
            _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth1")
            _run("ip", "-n", ns, "link", "set", "eth1", "up")
        (self.tmp / "api").mkdir()
        self.probe_dir.mkdir()
        api_log = open(self.tmp / "apiserver.log", "wb")
        self.api = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.api_ns}", "--", sys.executable, "-m", "netemu", "apiserver",
             "--listen", f"{self.api_ip}:6443", "--store", f"sqlite:{self.tmp / 'api' / 'state.db'}",
             "--state-dir", str(self.tmp / "api"), "--advertise-address", self.api_ip,
             "--node-monitor-grace-period", "8s", "--node-monitor-period", "1s"],
            stdout=api_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self.kubeconfig.exists() or "kubeconfig" not in (self.tmp / "apiserver.log").read_text():
            if self.api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("netemu apiserver did not start:\n" + self.logs())
            time.sleep(0.1)
        self.start_agent()

    def start_agent(self) -> None:
        with open(self.tmp / "agent.log", "ab") as agent_log:
            self.agent = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.node_ns}", "--", sys.executable, *self.entry,
                 "--node", "n1", "--node-ip", self.node_ip, "--kubeconfig", str(self.kubeconfig),
                 "--state-dir", str(self.agent_state), "--heartbeat-interval", "1", "--restart-backoff", "0.5",
                 "--metrics-bind-address", "", *self.agent_args],
                stdout=agent_log, stderr=subprocess.STDOUT)

    def stop_agent(self) -> int | None:
        """SIGTERM (SIGKILL after 15 s); the exit code."""
        _stop(self.agent)
        return self.agent.returncode if self.agent else None

    def close(self) -> None:
        _stop(self.agent)
        _stop(self.api)
        ipam = self.agent_state / "runtime" / "ipam.json"
        names = []
        if ipam.exists():
            try:
                allocations = json.loads(ipam.read_text()).get("allocations") or {}
                names = [pod_netns(a["uid"]) for a in allocations.values()]
            except (ValueError, AttributeError, KeyError):
                names = []
        for name in names:
            _run("ip", "netns", "del", name, check=False)
        self.pod_netns_left = [n for n in names if os.path.exists(f"/run/netns/{n}")]
        for ns in (self.node_ns, self.api_ns):
            _run("ip", "netns", "del", ns, check=False)

    def ip(self, *args: str) -> None:
        """``ip -n NODE ...`` (e.g. cutting the node's link)."""
        _run("ip", "-n", self.node_ns, *args)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.tmp)}
        r = subprocess.run(["nsenter", f"--net=/run/netns/{self.api_ns}", "--", "kubectl", *args],
                           capture_output=True, text=True, env=env, input=stdin, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stdout}\n{r.stderr}\n" + self.logs())
        return r

    def get(self, kind: str, name: str) -> dict | None:
        r = self.kubectl("get", kind, name, "-o", "json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def logs(self) -> str:
        out = []
        for f in ("apiserver.log", "agent.log"):
            p = self.tmp / f
            out.append(f"--- {f}\n" + (p.read_text()[-3000:] if p.exists() else ""))
        return "\n".join(out)

    def wait(self, what: str, fn, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = fn()
            if value:
                return value
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")
