"""The supervisor: the one process that holds a running cluster.

Mininet's host shells die with the Python process that made them, so ``netemu up`` starts this
detached (``netemu up --foreground`` runs it in the terminal). It takes the locks, builds the
network, starts the control plane and the agents through nsenter, waits until every node is
Ready, writes cluster.json, then serves link commands on a Unix socket until SIGTERM/SIGINT,
when it stops agents, control plane and Mininet, and removes the rest with cleanup. It restarts
nothing: a dead process is the user's signal that something is wrong (its log says what).

Progress goes to status.json (``report``), which ``netemu up`` renders.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from netemu.agent.proxy.modes import DEFAULT as DEFAULT_PROXY_MODE
from netemu.emulator import addons, cleanup, cpushare, credentials, network, nodeops, orphans, processes, ready
from netemu.emulator.launcher import Launcher
from netemu.emulator.plan import (ClusterPlan, agent_argv, apiserver_argv, node_control_socket,
                                  node_runtime_socket, nsenter)
from netemu.emulator.cloud import edge as edge_net
from netemu.emulator.cloud.health import HealthSettings
from netemu.emulator.cloud.lbplan import STATUS_FILE as STATUS_FILE_LB
from netemu.emulator.cloud.provider import CloudProvider
from netemu.emulator.state import CLUSTER_FILE, CONTROL_SOCKET, STATUS_FILE, lock_cluster, write_json

log = logging.getLogger(__name__)
ETCD_PORT = 2379
NODE_COMPONENTS = ("kubelet", "kube-proxy", "runtime")     # what each node supervisor runs


@dataclass
class Options:
    proxy_mode: str = DEFAULT_PROXY_MODE
    proxy_args: list = field(default_factory=list)   # the mode's agent flags (modes.option_argv)
    store: str = "sqlite"
    switch: str = "linuxbridge"
    timeout: float = 120.0
    apiserver_args: list = field(default_factory=list)
    agent_args: list = field(default_factory=list)
    fake_agents: bool = False      # KWOK-style stand-ins (fakeagent.py) instead of `netemu agent`
    addons: tuple = addons.DEFAULT  # cluster add-ons (emulator/addons/): coredns, ingress-nginx
    edge: bool = False             # the internet segment and the provider load balancer (cloud/edge.py)
    lb_health: HealthSettings = field(default_factory=HealthSettings)
    favour_control_plane: bool = True   # weigh the control plane's CPU share as all nodes' (cpushare.py)


class Stopped(Exception):
    """SIGTERM/SIGINT arrived while the cluster was still coming up."""


class Supervisor(nodeops.NodeHostOps):
    def __init__(self, plan: ClusterPlan, topo, options: Options, report: Callable[[dict], None] | None = None):
        self.plan, self.topo, self.options = plan, topo, options
        self.state = Path(plan.state_dir)
        self.logs = self.state / "logs"
        self.on_report = report
        self.net = None
        self.host_pids: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen] = {}     # "apiserver", "etcd", "agent/<node>" (fake agents)
        self.store_url: str | None = None                # the API server's store (etcd), if not SQLite
        self.restarting: set[str] = set()                # processes being restarted on purpose
        self.launcher: Launcher | None = None
        self.node_pids: dict[str, int] = {}     # node -> its node supervisor (forked by the launcher)
        self._reported_dead: set[str] = set()
        self.stop_event = threading.Event()
        self.starting = True
        self.nodes_up = False      # every node Ready once (favour_control_plane waits for it)
        self.net_lock = threading.Lock()
        self.t0 = time.monotonic()
        self.timings: dict[str, float] = {}     # phase -> seconds after start when it began
        self.edge: edge_net.Edge | None = None
        self.kubeconfig = ""
        self.cloud: CloudProvider | None = None
        self.agent_argv: dict[str, list[str]] = {}      # node -> how its agent was started
        self.stopped_agents: set[str] = set()           # stopped on request (op agent): not a crash
        self.node_kubeconfigs: dict[str, Path] = {}     # node -> its kubelet.conf (system:node:NAME)
        self.proxy_kubeconfig: Path | None = None       # kube-proxy.conf (system:kube-proxy)

    # ---- reporting ----

    def report(self, phase: str, message: str = "", **extra) -> None:
        self.timings.setdefault(phase, round(time.monotonic() - self.t0, 3))
        status = {"pid": os.getpid(), "phase": phase, "message": message, "time": time.time(),
                  "timings": self.timings, **extra}
        write_json(self.state / STATUS_FILE, status)
        if self.on_report:
            self.on_report(status)

    def cluster_doc(self) -> dict:
        nodes = {}
        for node in self.plan.nodes:
            agent = self.procs.get(f"agent/{node.name}")
            nodes[node.name] = {"ip": node.ip, "netns": node.netns, "pid": self.host_pids.get(node.name),
                                "mn_name": node.mn_name, "role": node.role,
                                "proxy_mode": self.node_proxy_mode(node) if node.role != "control-plane" else None,
                                "agent_pid": agent.pid if agent and node.name not in self.stopped_agents
                                else self.node_pids.get(node.name)}
            if node.name in self.node_pids:
                nodes[node.name]["control"] = node_control_socket(self.plan.cluster_id, node.name)
        api, etcd = self.procs.get("apiserver"), self.procs.get("etcd")
        return {"name": self.plan.name, "id": self.plan.cluster_id, "node_network": self.plan.node_network,
                "root_ip": self.plan.root_ip, "apiserver": self.plan.apiserver_url,
                "kubeconfig": str(self.state / "kubeconfig"), "supervisor_pid": os.getpid(),
                "apiserver_pid": api.pid if api else None, "etcd_pid": etcd.pid if etcd else None,
                "launcher_pid": self.launcher.pid if self.launcher else None,
                "proxy_mode": self.options.proxy_mode, "store": self.options.store,
                "switches": list(self.plan.switches.values()),
                "root_switch": self.plan.root_switch, "timings": self.timings, "nodes": nodes,
                "edge": self.edge.to_dict() if self.edge else None}

    def node_proxy_mode(self, node) -> str:
        """The topology's per-node proxy_mode host param, else `up --proxy-mode`."""
        return node.proxy_mode or self.options.proxy_mode

    def write_cluster(self) -> None:
        write_json(self.state / CLUSTER_FILE, self.cluster_doc())

    # ---- lifetime ----

    def run(self) -> int:
        self.state.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        try:
            locks = lock_cluster(self.state, self.plan.node_network)
        except Exception as exc:
            self.report("error", str(exc))
            return 1
        self.fresh_state()
        orphans.register(self.plan.cluster_id, str(self.state), self.plan.node_network)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        try:
            self.bring_up()
            self.starting = False
            self.report("ready", f"{len(self.plan.workers)} nodes Ready", kubeconfig=str(self.state / "kubeconfig"))
            self.write_cluster()
            server = threading.Thread(target=self.serve_control, daemon=True)
            server.start()
            while not self.stop_event.wait(1.0):
                self.note_exits()
            code = 0
        except Stopped:
            self.report("error", "stopped by a signal while coming up")
            code = 1
        except Exception as exc:  # anything that went wrong on the way up: say it, then take all down
            log.debug("bring-up failed", exc_info=True)
            self.report("error", str(exc) or type(exc).__name__)   # a TimeoutError's str is empty
            code = 1
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.tear_down()
            for fd in locks:
                os.close(fd)
        return code

    def fresh_state(self) -> None:
        """Every ``up`` starts an empty cluster: the previous run's store, certificates (their
        SANs name the old addresses) and node state (pod IPAM, logs) go; logs/ stays."""
        for name in ("controlplane", "etcd", "nodes"):
            shutil.rmtree(self.state / name, ignore_errors=True)
        (self.state / "kubeconfig").unlink(missing_ok=True)

    def _on_signal(self, signum, _frame) -> None:
        self.stop_event.set()
        if self.starting:
            self.starting = False          # raise once; tear_down runs in the finally
            raise Stopped()

    def bring_up(self) -> None:
        self.report("network", "checking the node network")
        network.check_network_free(self.plan.node_network)
        if not self.options.fake_agents:     # its imports overlap with Mininet and the API server
            modes_used = sorted({self.node_proxy_mode(n) for n in self.plan.workers} - {"none"})
            self.launcher = Launcher(str(self.state), ",".join(modes_used), self.logs / "launcher.log")
        self.report("hosts", f"building {len(self.plan.nodes)} hosts, {len(self.plan.switches)} switch(es)")
        self.net = network.build(self.plan, self.topo, self.options.switch)
        self.host_pids = network.attach(self.plan, self.net)
        network.default_routes(self.plan, self.net)
        network.give_root_address(self.plan)
        if self.options.edge:
            self.report("network", "building the internet edge and the provider load balancer")
            self.edge = edge_net.plan_edge(self.plan.cluster_id, self.plan.node_network, self.plan.root_switch)
            edge_net.build(self.edge)
            edge_net.route_nodes(self.edge, [n.netns for n in self.plan.nodes])
        self.write_cluster()
        self.report("control-plane", f"starting the API server on {self.plan.control_plane.ip}")
        kubeconfig = self.start_control_plane()
        self.write_cluster()
        if self.options.addons:
            self.report("addons", f"applying {', '.join(self.options.addons)}")
            asyncio.run(self.apply_addons(kubeconfig))
        lb_status = self.state / STATUS_FILE_LB
        self.cloud = CloudProvider(kubeconfig, self.instances, self.edge, self.options.lb_health,
                                   lambda doc: write_json(lb_status, doc))
        self.cloud.start()
        self.node_kubeconfigs, self.proxy_kubeconfig = credentials.node_kubeconfigs(
            self.state, self.state / "controlplane", kubeconfig, [n.name for n in self.plan.workers])
        self.report("agents", f"forking {len(self.plan.workers)} nodes' processes")
        self.kubeconfig = kubeconfig
        requests = [r for r in (self.node_request(node, kubeconfig) for node in self.plan.workers) if r]
        if requests:                         # every node's at once: the launcher forks them in one go
            self.launcher.spawn_all(requests, into=self.node_pids)
        self.write_cluster()
        expected = [n.name for n in self.plan.workers]
        self.report("registering", "waiting for the kubelets to register", ready=0, total=len(expected))

        def progress(k: int, n: int, waiting: list[str], known: int) -> None:
            if known < n:
                self.report("registering", f"{known} of {n} nodes registered", ready=k, total=n)
            else:
                self.report("nodes", "waiting for " + ", ".join(waiting[:5]) if waiting else "", ready=k, total=n)
        nodes = asyncio.run(ready.wait_nodes(kubeconfig, expected, self.options.timeout, progress,
                                             self.dead_process))
        network.control_plane_pod_routes(self.plan, ready.pod_routes(nodes))
        self.nodes_up = True                 # from here on the control plane is favoured
        self.favour_control_plane()
        if self.options.addons:
            self.report("addons", f"waiting for {', '.join(self.options.addons)}")
            asyncio.run(addons.wait_for(kubeconfig, self.options.addons, self.options.timeout,
                                        lambda waiting: self.report("addons", "waiting for " + ", ".join(waiting))))

    def route_pods_when_ready(self, names: list[str]) -> None:
        """In the background: once the nodes ``names`` (added to the running cluster) are
        Ready with a podCIDR, the control-plane host routes their pods' CIDRs as at bring-up."""
        def run() -> None:
            try:
                nodes = asyncio.run(ready.wait_nodes(self.kubeconfig, names, self.options.timeout,
                                                     lambda *_: None, lambda: None))
                network.control_plane_pod_routes(self.plan, ready.pod_routes(nodes))
            except Exception as exc:  # the node never became Ready: `node add` reports that itself
                log.warning("routing the pods of %s from the control plane: %s", ", ".join(names), exc)
        threading.Thread(target=run, name="pod-routes", daemon=True).start()

    async def apply_addons(self, kubeconfig: str) -> None:
        """The add-ons' objects, as soon as the API answers (their pods wait for nodes)."""
        from netemu.client import ApiClient
        async with ApiClient.from_kubeconfig(kubeconfig) as client:
            await addons.apply(client, self.options.addons)

    def start_node(self, node, kubeconfig: str) -> None:
        """One node's processes now (a node added to a running cluster)."""
        request = self.node_request(node, kubeconfig)
        if request:
            self.launcher.spawn_all([request], into=self.node_pids)

    def node_request(self, node, kubeconfig: str) -> dict | None:
        """The node's processes: its supervisor forked by the launcher template into the node's
        namespace (which forks its runtime, kubelet and kube-proxy), or a fake agent through
        nsenter; the kubelet with its node's kubelet.conf, kube-proxy with kube-proxy.conf
        (credentials.py). `up`'s mode flags are for `up`'s mode; a node the topology moves to
        another mode runs that mode's defaults. Returns the launcher request (None: a fake
        agent, started)."""
        mode = self.node_proxy_mode(node)
        args = self.options.proxy_args if mode == self.options.proxy_mode else []
        kubelet_conf = self.node_kubeconfigs.get(node.name)
        if kubelet_conf is None:            # a node added to the running cluster (netemu node add)
            kubelet_conf = self.node_kubeconfigs[node.name] = credentials.kubelet_conf(
                self.state, self.state / "controlplane", kubeconfig, node.name)
        argv = agent_argv(self.plan, node, sys.executable, str(kubelet_conf), mode, args, self.options.agent_args,
                          proxy_kubeconfig=str(self.proxy_kubeconfig) if self.proxy_kubeconfig else None)
        if self.options.fake_agents:
            # KWOK-style stand-ins, not kubelets: they also make what a real cluster's API server
            # and controllers would (kube-node-lease), so they keep the admin's access
            argv = [sys.executable, "-m", "netemu.testing.fakeagent", *agent_argv(
                self.plan, node, sys.executable, kubeconfig, mode, args, self.options.agent_args)[4:]]
            self.agent_argv[node.name] = nsenter(self.host_pids[node.name], argv)
            self.procs[f"agent/{node.name}"] = processes.start(self.agent_argv[node.name],
                                                              self.logs / f"agent-{node.name}.log")
            return None
        return {"node": node.name, "netns": f"/run/netns/{node.netns}", "argv": argv[4:], "logs": str(self.logs),
                "control": node_control_socket(self.plan.cluster_id, node.name), "state_dir": str(self.state),
                "runtime": node_runtime_socket(self.plan.cluster_id, node.name)}

    def start_control_plane(self) -> str:
        self.store_url = self.start_etcd() if self.options.store == "etcd" else None
        return self.start_apiserver()

    def start_apiserver(self) -> str:
        """The API server (with scheduler and controllers) on the control-plane host; returns
        once it has written its kubeconfig. Its store (SQLite file or etcd) outlives it."""
        cp = self.plan.control_plane
        cp_state = self.state / "controlplane"
        cp_state.mkdir(exist_ok=True)
        (cp_state / "kubeconfig").unlink(missing_ok=True)
        argv = apiserver_argv(self.plan, sys.executable, self.store_url, self.options.apiserver_args)
        self.procs["apiserver"] = processes.start(nsenter(self.host_pids[cp.name], argv), self.logs / "apiserver.log")
        self.favour_control_plane()
        deadline = time.monotonic() + self.options.timeout
        while not (cp_state / "kubeconfig").exists():
            gone = self.dead_process()
            if gone:
                raise RuntimeError(gone)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not start in {self.options.timeout:.0f}s "
                                   f"(see {self.logs / 'apiserver.log'})")
            time.sleep(0.1)
        shutil.copyfile(cp_state / "kubeconfig", self.state / "kubeconfig")
        os.chmod(self.state / "kubeconfig", 0o600)
        return str(self.state / "kubeconfig")

    def restart(self, component: str) -> dict:
        """``netemu restart apiserver``: stop the control plane's process (SIGTERM, SIGKILL after
        10 s) and start it again on the same store and certificates, as a kubelet restarts a
        static pod; clients and agents reconnect and relist. ``netemu restart kubelet`` (or
        kube-proxy, runtime): that component on every node, through the node supervisors
        (``systemctl restart`` on each node, one node after the other)."""
        if component in NODE_COMPONENTS and self.node_pids:
            return self.restart_on_nodes(component)
        if component != "apiserver":
            return {"error": f"cannot restart {component!r} (restartable: apiserver, "
                             f"{', '.join(NODE_COMPONENTS)} on clusters with node supervisors)"}
        self.restarting.add(component)
        try:
            old = self.procs["apiserver"]
            processes.stop([old.pid], grace=10)
            old.wait()
            started = time.monotonic()
            self.start_apiserver()
            self.write_cluster()
        finally:
            self.restarting.discard(component)
        return {"ok": True, "pid": self.procs["apiserver"].pid, "seconds": round(time.monotonic() - started, 2)}

    def restart_on_nodes(self, component: str) -> dict:
        from netemu.agent.nodesup import control_request as ask
        started, pids = time.monotonic(), {}
        for node in self.node_pids:
            answer = ask(node_control_socket(self.plan.cluster_id, node), {"op": "restart", "component": component})
            if "error" in answer:
                return {"error": f"{node}: {answer['error']}"}
            pids[node] = answer["pid"]
        return {"ok": True, "pid": ",".join(str(p) for p in pids.values()), "pids": pids,
                "seconds": round(time.monotonic() - started, 2)}

    def favour_control_plane(self) -> None:
        """The control plane's sessions weigh as all the nodes together when the box is
        saturated (cpushare.py: it would have a machine of its own), unless --control-plane-cpu
        fair; again when a node joins or leaves. Not while the nodes come up: then the nodes'
        own start-up is the critical path, and a favoured API server spent the box on watch
        fan-out while 400 starting processes waited (100 nodes Ready in 33 s favoured vs 22 s
        fair, same run: docs/benchmarks.md, issue 17); it is favoured once they are Ready."""
        if self.options.favour_control_plane and self.nodes_up:
            for name in ("etcd", "apiserver"):
                if name in self.procs:
                    cpushare.favour(self.procs[name].pid, len(self.plan.workers))

    def start_etcd(self) -> str:
        cp = self.plan.control_plane
        client, peer = f"http://{cp.ip}:{ETCD_PORT}", f"http://127.0.0.1:{ETCD_PORT + 1}"
        argv = ["etcd", "--name", "netemu", "--data-dir", str(self.state / "etcd"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"netemu={peer}"]
        self.procs["etcd"] = processes.start(nsenter(self.host_pids[cp.name], argv), self.logs / "etcd.log")
        self.favour_control_plane()
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((cp.ip, ETCD_PORT), timeout=1).close()
                return f"etcd:{client}"
            except OSError:
                gone = self.dead_process()
                if gone or time.monotonic() > deadline:
                    raise RuntimeError(gone or f"etcd did not start (see {self.logs / 'etcd.log'})")
                time.sleep(0.1)

    def instances(self) -> set[str]:
        """The node hosts the cloud runs now (the cloud node-lifecycle controller asks)."""
        return {n.name for n in self.plan.workers}

    def note_exits(self) -> None:
        """Reap and log (once) a process that exited while the cluster runs. The cluster's own
        processes are not restarted (a dead API server is the user's signal); a node's
        components are restarted by their node supervisor, whose own death is reported here."""
        for name, proc in list(self.procs.items()):
            if name.removeprefix("agent/") in self.stopped_agents or name in self.restarting:
                continue
            if proc.returncode is None and proc.poll() is not None:
                print(f"netemu supervisor: {name} (pid {proc.pid}) exited with code {proc.returncode}; "
                      f"not restarted (its log: {self.logs / (name.replace('/', '-') + '.log')})", flush=True)
        for node, pid in self.node_pids.items():
            if node not in self._reported_dead and not processes.running(pid):
                self._reported_dead.add(node)
                print(f"netemu supervisor: the node supervisor of {node} (pid {pid}) is gone; its components "
                      f"run on unsupervised (its log: {self.logs / f'nodesup-{node}.log'})", flush=True)

    def dead_process(self) -> str | None:
        """Which started process has exited, with the end of its log (None if all run)."""
        gone = [(f"nodesup/{n}", None) for n, pid in self.node_pids.items() if not processes.running(pid)]
        for name, proc in [*self.procs.items(), *gone]:
            if proc is None or proc.poll() is not None:
                logfile = self.logs / (name.replace("/", "-") + ".log")
                try:
                    tail = logfile.read_text(errors="replace").strip().splitlines()[-5:]
                except OSError:
                    tail = []
                code = "?" if proc is None else proc.returncode
                return (f"{name} exited with code {code} (log {logfile})"
                        + ("".join(f"\n  {line}" for line in tail)))
        return None

    def tear_down(self) -> None:
        """Agents first (they may finish pods), then the control plane, then Mininet; whatever is
        left (pod namespaces, attached node namespaces, links) goes by cleanup's rules."""
        self.report("stopping", "stopping agents, control plane and network")
        if self.cloud is not None:
            self.cloud.stop()
        agents = [p.pid for n, p in self.procs.items() if n.startswith("agent/")]
        processes.stop(agents + list(self.node_pids.values()), grace=15)  # nodes stop theirs in 10 s
        if self.launcher is not None:
            self.launcher.close()
        processes.stop([p.pid for n, p in self.procs.items() if not n.startswith("agent/")], grace=10)
        self.report("stopping pods", "removing pod namespaces")
        found = cleanup.gather(self.plan.cluster_id)
        plan = cleanup.plan_cleanup(self.plan.cluster_id, str(self.state), None, found, os.getpid(),
                                    cleanup.recorded_pod_netns(self.state))
        shells = {pid for pid, argv, _ in found.procs if any(a.startswith("mininet:") for a in argv)}
        plan.kill = [pid for pid in plan.kill if pid not in shells]   # Mininet stops its own shells
        cleanup.apply(cleanup.Cleanup(kill=plan.kill, pod_netns=plan.pod_netns))
        self.report("stopping network", "stopping Mininet")
        if self.edge is not None:
            edge_net.remove(self.edge)
        if self.net is not None:
            with self.net_lock:
                network.stop(self.net)
        network.detach(self.plan)
        self.report("final cleanup", "removing leftovers")
        cleanup.cleanup(str(self.state))    # leftovers by name; removes cluster.json
        orphans.forget(self.plan.cluster_id)
        self.report("stopped", "cluster stopped")
        print(f"netemu supervisor: stopped; phase start times (s): {json.dumps(self.timings)}", flush=True)

    # ---- control socket: `netemu link NODE up|down` ----

    def serve_control(self) -> None:
        path = self.state / CONTROL_SOCKET
        path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        os.chmod(path, 0o600)
        server.listen(8)
        server.settimeout(1.0)
        with server:
            while not self.stop_event.is_set():
                try:
                    conn, _ = server.accept()
                except socket.timeout:
                    continue
                with conn:
                    conn.settimeout(10)
                    try:
                        request = json.loads(conn.makefile("r").readline() or "{}")
                        answer = self.handle(request)
                    except Exception as exc:
                        answer = {"error": f"{type(exc).__name__}: {exc}"}
                    conn.sendall((json.dumps(answer) + "\n").encode())

    def handle(self, request: dict) -> dict:
        op = request.get("op")
        if op == "ping":
            return {"ok": True}
        if op == "restart":
            return self.restart(str(request.get("component")))
        if op == "link":
            with self.net_lock:
                touched = network.set_node_links(self.plan, self.net, str(request.get("node")),
                                                 str(request.get("status")))
            return {"ok": True, "links": touched}
        if op == "agent":
            return self.set_agent(str(request.get("node")), str(request.get("action")),
                                  str(request.get("component") or "agent"))
        if op == "node-add":
            return self.add_node(request)
        if op == "node-remove":
            return self.remove_node(str(request.get("node")))
        return {"error": f"unknown operation {op!r}"}

    def set_agent(self, node: str, action: str, component: str = "agent") -> dict:
        """Stop (SIGTERM, then SIGKILL after a grace), kill (SIGKILL) or start again one node's
        agent, or one of its components. A stopped agent is not a crash: it stays down until
        ``start``. A node forked by the launcher is told through its node supervisor: ``agent``
        is every component of the node (runtime, kubelet, kube-proxy), or name one; a fake
        agent is one process, which ``start`` runs again with the argv ``up`` used."""
        if node in self.node_pids:
            return self.set_node_component(node, action, component)
        if component != "agent":
            return {"error": f"node {node!r} runs one agent process (fake agents): no {component!r} of its own"}
        key = f"agent/{node}"
        if node not in self.agent_argv:
            return {"error": f"no agent on node {node!r} (nodes with one: {', '.join(self.agent_argv)})"}
        proc = self.procs[key]
        if action in ("stop", "kill"):
            self.stopped_agents.add(node)
            if proc.poll() is None:
                if action == "kill":
                    processes.kill([proc.pid])
                else:
                    processes.stop([proc.pid], grace=10)
            proc.poll()
            self.write_cluster()
            return {"ok": True, "pid": proc.pid, "exit": proc.returncode}
        if action == "start":
            if proc.poll() is None:
                return {"ok": True, "pid": proc.pid, "already": True}
            self.procs[key] = processes.start(self.agent_argv[node], self.logs / f"agent-{node}.log")
            self.stopped_agents.discard(node)
            self.write_cluster()
            return {"ok": True, "pid": self.procs[key].pid}
        return {"error": f"agent action {action!r}: stop, kill or start"}


    def set_node_component(self, node: str, action: str, component: str) -> dict:
        """``set_agent`` for a node with a node supervisor: stop and kill hold the component(s)
        down (kill as SIGKILL: a crash the supervisor does not repair) until start."""
        from netemu.agent.nodesup import control_request as ask
        if action not in ("stop", "kill", "start"):
            return {"error": f"agent action {action!r}: stop, kill or start"}
        sock = node_control_socket(self.plan.cluster_id, node)
        names = list(ask(sock, {"op": "status"})["components"])
        if component != "agent" and component not in names:
            return {"error": f"node {node!r} has no component {component!r} (agent, {', '.join(names)})"}
        chosen = names if component == "agent" else [component]
        answers = {}
        for name in (chosen if action == "start" else list(reversed(chosen))):
            request = {"op": action, "component": name, **({"hold": True} if action == "kill" else {})}
            answers[name] = ask(sock, request)
            if "error" in answers[name] and not (action == "kill" and "not running" in answers[name]["error"]):
                return {"error": f"{name}: {answers[name]['error']}"}
        self.write_cluster()
        main = answers["kubelet" if component == "agent" else component]     # the node's agent: its kubelet
        pid = main.get("pid") or main.get("stopped") or main.get("killed")
        return {"ok": True, "pid": pid, "components": answers}


def control_request(state_dir: str, request: dict, timeout: float = 15.0) -> dict:
    """Send one request to a running supervisor (client side of ``serve_control``)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(Path(state_dir) / CONTROL_SOCKET))
        conn.sendall((json.dumps(request) + "\n").encode())
        return json.loads(conn.makefile("r").readline() or "{}")
