"""Cluster lifetime commands: ``netemu up``, ``down``, ``cleanup``, ``status`` and ``link``.

``up`` checks everything it can before anything is made (topology, node count, node network,
kernel features, a cluster already running), then starts the supervisor detached and renders its
progress until every node is Ready. The state dir (``--state-dir``, else $NETEMU_STATE_DIR, else
/var/lib/netemu/default) is how the other commands find the cluster.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from netemu.agent.proxy import modes
from netemu.cli.main import Command, UsageError

DEFAULT_TOPO = "topologies/cluster.py:ClusterTopo"


def default_state_dir() -> str:
    from netemu.emulator.state import DEFAULT_STATE_DIR
    return os.environ.get("NETEMU_STATE_DIR") or DEFAULT_STATE_DIR


def add_state_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=None,
                   help="the cluster's state dir (default $NETEMU_STATE_DIR or /var/lib/netemu/default)")


def state_dir_of(args) -> str:
    return os.path.abspath(args.state_dir or default_state_dir())


# ---- up ----

def add_up_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, default=None, help="worker nodes of the default topology (default 2)")
    p.add_argument("--topo", default=None, metavar="FILE.py:Class[,args]",
                   help="any Mininet Topo, mn --custom style (e.g. topologies/zones.py:TwoZoneTopo,2)")
    p.add_argument("--proxy-mode", default=modes.DEFAULT,
                   help=f"kube-proxy mode: {', '.join(modes.selectable())}, or {modes.NO_PROXY} for kubelets "
                        "alone (default %(default)s)")
    p.add_argument("--node-proxy-mode", action="append", default=[], metavar="NODE=MODE",
                   help="this node's kube-proxy mode instead of --proxy-mode (repeatable; the mode's own "
                        "flags take their defaults there)")
    modes.add_options(p, "proxier")
    p.add_argument("--store", choices=["sqlite", "etcd"], default="sqlite", help="API server store (default %(default)s)")
    p.add_argument("--node-network", default="172.18.0.0/16", metavar="CIDR",
                   help="the nodes' network; the root namespace gets its .1 (default %(default)s)")
    p.add_argument("--switch", choices=["auto", "linuxbridge", "ovs"], default="auto",
                   help="switch kind (auto: Open vSwitch when the kernel has it, else Linux bridges)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Ready nodes (default %(default)s)")
    p.add_argument("--apiserver-arg", action="append", default=[], metavar="--FLAG=VALUE",
                   help="extra flag for netemu apiserver, e.g. --apiserver-arg=--node-monitor-grace-period=4s")
    p.add_argument("--agent-arg", action="append", default=[], metavar="--FLAG=VALUE",
                   help="extra flag for every netemu agent, e.g. --agent-arg=--heartbeat-interval=1")
    p.add_argument("--addons", default=None, metavar="LIST",
                   help="cluster add-ons to install: coredns (the cluster DNS, default), ingress-nginx "
                        "(the ingress controller), comma-separated, or none (default with --fake-agents)")
    p.add_argument("--edge", action="store_true",
                   help="the emulated cloud in front: an internet segment (external clients, 203.0.113.0/24) and a "
                        "provider load balancer owning every LoadBalancer IP, spreading connections over the "
                        "nodes' NodePorts with health checks (ETP Local) and loadBalancerSourceRanges")
    p.add_argument("--lb-health-check", default=None, metavar="interval=S,timeout=S,rise=N,fall=N",
                   help="with --edge: the provider load balancer's health checks of its targets (default "
                        "interval=2,timeout=1,rise=2,fall=2; a cloud's are slower, e.g. AWS NLB 30,10,3,3)")
    p.add_argument("--fake-agents", action="store_true",
                   help="KWOK-style stand-in agents: nodes register and heartbeat, no pods run "
                        "(emulator and control-plane experiments)")
    p.add_argument("--control-plane-cpu", choices=["favoured", "fair"], default="favoured",
                   help="the control plane's CPU share when the nodes saturate the box: favoured (default) weighs "
                        "its session as all the nodes together, as if it had a machine of its own; fair gives it "
                        "one node's share (the kernel's default)")
    p.add_argument("--ignore-memory", action="store_true",
                   help="start even when the measured per-node cost says the cluster does not fit in memory")
    p.add_argument("--foreground", action="store_true", help="run the cluster in this terminal until Ctrl-C")
    p.add_argument("--supervise", action="store_true", help=argparse.SUPPRESS)
    add_state_dir(p)


def prepare(args):
    """(plan, topo, options) from the flags; every bad input a UsageError, nothing made yet."""
    from netemu import features
    from netemu.emulator import network
    from netemu.emulator.plan import PlanError, link_params, make_plan
    from netemu.emulator.supervisor import Options
    from netemu.emulator.topoload import TopologyError, load_topo

    if args.topo and args.nodes is not None:
        raise UsageError("give --nodes or --topo, not both (a topology's size is one of its args)")
    if args.nodes is not None and not 1 <= args.nodes <= 500:
        raise UsageError(f"--nodes {args.nodes}: a cluster needs 1 to 500 worker nodes")
    proxy_args = proxy_argv(args)
    from netemu.emulator import addons
    try:
        chosen = addons.parse_addons(args.addons if args.addons is not None else
                                     ("none" if args.fake_agents else ",".join(addons.DEFAULT)))
    except ValueError as exc:
        raise UsageError(f"--addons: {exc}") from None
    if chosen and args.fake_agents:
        raise UsageError("--addons needs real agents: fake nodes run no pods (use --addons none)")
    if "coredns" in chosen and importlib.util.find_spec("dnslib") is None:
        raise UsageError("the coredns add-on needs the dnslib package (bash scripts/provision.sh, or "
                         "pip install -e . in this virtualenv), or --addons none")
    node_modes = node_proxy_modes(args.node_proxy_mode)
    lb_health = lb_health_settings(args)
    if args.timeout <= 0:
        raise UsageError("--timeout must be > 0")
    spec = args.topo or f"{DEFAULT_TOPO},{args.nodes if args.nodes is not None else 2}"
    try:
        topo = load_topo(spec)
        plan = with_node_modes(make_plan(topo, state_dir_of(args), args.node_network), node_modes)
        check_memory(args, len(plan.workers))
        switch = network.choose_switch(args.switch)
        for params in link_params(topo):     # TCLink options this kernel cannot apply: refuse now
            features.require_for(link=params)
        for mode in {args.proxy_mode, *(n.proxy_mode for n in plan.workers if n.proxy_mode)}:
            if mode != modes.NO_PROXY:
                features.require_for(proxy_mode=mode)
    except (TopologyError, PlanError, features.FeatureMissing, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return plan, topo, Options(proxy_mode=args.proxy_mode, proxy_args=proxy_args,
                               store=args.store, switch=switch, timeout=args.timeout,
                               apiserver_args=list(args.apiserver_arg), agent_args=list(args.agent_arg),
                               fake_agents=args.fake_agents, addons=chosen, edge=args.edge, lb_health=lb_health,
                               favour_control_plane=args.control_plane_cpu == "favoured")


def lb_health_settings(args):
    """``--lb-health-check`` as HealthSettings (defaults without it); only with --edge."""
    from netemu.emulator.cloud.health import HealthSettings

    text = getattr(args, "lb_health_check", None)
    if text is None:
        return HealthSettings()
    if not args.edge:
        raise UsageError("--lb-health-check goes with --edge (it is the provider load balancer's)")
    try:
        return HealthSettings.parse(text)
    except ValueError as exc:
        raise UsageError(f"--lb-health-check: {exc}") from None


def check_memory(args, workers: int) -> None:
    """Refuse, before anything is made, a cluster the machine has not the memory for."""
    from netemu.emulator import sizing
    if getattr(args, "fake_agents", False) or getattr(args, "ignore_memory", False) or getattr(args, "supervise", False):
        return
    problem = sizing.refusal(workers, sizing.available_mb())
    if problem:
        raise UsageError(problem)


def proxy_argv(args) -> list[str]:
    """The agents' kube-proxy flags (the mode's own, from the registry); UsageError for a mode
    the agent cannot run or a flag of another mode."""
    if args.proxy_mode == modes.NO_PROXY:
        mode = None
    else:
        try:
            mode = modes.choose(args.proxy_mode).name
        except modes.ModeError as exc:
            raise UsageError(f"--proxy-mode {exc}") from None
    try:
        options = modes.options_from(args, mode, "proxier")
    except modes.ModeError as exc:
        raise UsageError(str(exc)) from None
    return modes.option_argv(options, mode, "proxier") if mode else []


def with_node_modes(plan, node_modes: dict[str, str]):
    """The plan with ``--node-proxy-mode`` overriding the topology's (or `up`'s) mode on those
    nodes; UsageError naming a node that is not a worker."""
    import dataclasses

    workers = [n.name for n in plan.workers]
    unknown = sorted(set(node_modes) - set(workers))
    if unknown:
        raise UsageError(f"--node-proxy-mode: no worker node {', '.join(unknown)} (workers: {', '.join(workers)})")
    nodes = tuple(dataclasses.replace(n, proxy_mode=node_modes[n.name]) if n.name in node_modes else n
                  for n in plan.nodes)
    return dataclasses.replace(plan, nodes=nodes)


def node_proxy_modes(values: list[str]) -> dict[str, str]:
    """``--node-proxy-mode NODE=MODE`` values -> {node: mode}; UsageError for a bad one."""
    out: dict[str, str] = {}
    for value in values:
        node, sep, mode = value.partition("=")
        if not sep or not node or not mode:
            raise UsageError(f"--node-proxy-mode {value!r}: expected NODE=MODE")
        try:
            out[node] = modes.choose(mode).name
        except modes.ModeError as exc:
            raise UsageError(f"--node-proxy-mode {node}={exc}") from None
    return out


def check_can_start(plan, options) -> None:
    from netemu.emulator import cleanup, network
    from netemu.emulator.state import Busy, check_free

    if not options.fake_agents and importlib.util.find_spec("netemu.cli.agent_cmd") is None:
        raise UsageError("`netemu agent` is not installed in this netemu: nodes cannot run")
    try:
        check_free(Path(plan.state_dir), plan.node_network)
        removed = cleanup.cleanup(plan.state_dir)      # no supervisor holds this state dir: a crash's
        if not removed.empty():                         # leftovers would be in the way
            print(f"removed what a crashed run left: {summary(removed)}", flush=True)
        network.check_network_free(plan.node_network)
    except (Busy, network.NetworkError) as exc:
        raise UsageError(str(exc)) from None
    warning = network.root_forward_warning()
    if warning:
        print(f"netemu up: warning: {warning}", file=sys.stderr, flush=True)


def run_up(args: argparse.Namespace) -> int:
    from netemu.emulator.supervisor import Supervisor

    if os.geteuid() != 0:
        raise UsageError("netemu up needs root (network namespaces, bridges, Mininet)")
    plan, topo, options = prepare(args)
    if args.supervise:
        return Supervisor(plan, topo, options).run()
    existed = os.path.exists(plan.state_dir)
    try:
        check_can_start(plan, options)
    except UsageError:
        if not existed:                    # refused: leave no trace, not even the lock file
            shutil.rmtree(plan.state_dir, ignore_errors=True)
        raise
    Path(plan.state_dir, "logs").mkdir(parents=True, exist_ok=True)
    if args.foreground:
        return run_foreground(plan, topo, options)
    return run_detached(args, plan)


def _argv_for_supervisor(args) -> list[str]:
    argv = [sys.executable, "-m", "netemu", "up", "--supervise", "--state-dir", state_dir_of(args),
            "--proxy-mode", args.proxy_mode, *proxy_argv(args), "--store", args.store,
            "--node-network", args.node_network, "--switch", args.switch, "--timeout", str(args.timeout)]
    argv += ["--topo", args.topo] if args.topo else ["--nodes", str(args.nodes if args.nodes is not None else 2)]
    argv += ["--fake-agents"] if args.fake_agents else []
    argv += ["--addons", args.addons] if args.addons is not None else []
    argv += ["--edge"] if args.edge else []
    argv += ["--control-plane-cpu", args.control_plane_cpu]
    argv += ["--lb-health-check", args.lb_health_check] if args.lb_health_check is not None else []
    argv += [f"--node-proxy-mode={v}" for v in args.node_proxy_mode]
    argv += [f"--apiserver-arg={a}" for a in args.apiserver_arg] + [f"--agent-arg={a}" for a in args.agent_arg]
    return argv


def run_detached(args, plan) -> int:
    from netemu.emulator.state import STATUS_FILE

    state = Path(plan.state_dir)
    (state / STATUS_FILE).unlink(missing_ok=True)
    with open(state / "logs" / "supervisor.log", "ab") as log:
        proc = subprocess.Popen(_argv_for_supervisor(args), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    try:
        status = follow(proc, state, len(plan.workers))
    except KeyboardInterrupt:             # Ctrl-C while coming up: the cluster must not linger
        print("netemu up: interrupted: stopping what was started...", file=sys.stderr, flush=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        return 130
    if status["phase"] != "ready":
        print(f"netemu up: error: {status['message']}", file=sys.stderr)
        proc.wait()                        # it tears down what it made before exiting
        return 1
    print_ready(plan, status.get("timings"))
    return 0


def follow(proc: subprocess.Popen, state: Path, total: int) -> dict:
    """Render the supervisor's status.json until it is ready, failed or gone; the last status."""
    from netemu.emulator.state import STATUS_FILE, read_json

    with Display(total) as display:
        while True:
            status = read_json(state / STATUS_FILE)
            if status and status.get("pid") == proc.pid:
                display.update(status)
                if status["phase"] in ("ready", "error"):
                    break
            if proc.poll() is not None:
                status = {"phase": "error", "message": f"the supervisor exited (code {proc.returncode}); "
                                                        f"see {state / 'logs' / 'supervisor.log'}"}
                break
            time.sleep(0.1)
    return status


def run_foreground(plan, topo, options) -> int:
    from netemu.emulator.supervisor import Supervisor

    with Display(len(plan.workers)) as display:
        def report(status: dict) -> None:
            display.update(status)
            if status["phase"] == "ready":
                display.close()
                print_ready(plan, status.get("timings"))
                print("running in the foreground: Ctrl-C stops the cluster", flush=True)
            elif status["phase"] == "error":
                display.close()
                print(f"netemu up: error: {status['message']}", file=sys.stderr, flush=True)
        return Supervisor(plan, topo, options, report=report).run()


STAGES = (("hosts", "hosts"), ("control-plane", "control plane"), ("agents", "node processes"),
          ("registering", "nodes registered"), ("nodes", "nodes Ready"))


def print_ready(plan, timings: dict | None = None) -> None:
    from netemu.emulator.ready import stage_times
    from netemu.emulator.state import STATUS_FILE, read_json

    kubeconfig = Path(plan.state_dir) / "kubeconfig"
    timings = timings or (read_json(Path(plan.state_dir) / STATUS_FILE) or {}).get("timings") or {}
    if "ready" in timings:
        names = dict(STAGES)
        took = stage_times(timings, tuple(names), timings["ready"])
        print("  " + ", ".join(f"{names[s]} {t:.1f}s" for s, t in took) + f"; {timings['ready']:.1f}s in all")
    print(f"cluster {plan.name!r} is up: {len(plan.workers)} node(s) Ready, API server {plan.apiserver_url}")
    print(f"  export KUBECONFIG={kubeconfig}")
    flag = "" if os.path.abspath(plan.state_dir) == os.path.abspath(default_state_dir()) else f" --state-dir {plan.state_dir}"
    print(f"  netemu status{flag}   |   netemu down{flag}", flush=True)


class Display:
    """The rich progress line: phase, message and nodes Ready out of N."""

    def __init__(self, total: int, console=None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), transient=False, console=console)
        self.task = self.progress.add_task("starting", total=total)
        self.open = False
        self.phase = ""
        self.since = time.monotonic()      # when this process saw the current phase begin

    def __enter__(self):
        self.progress.start()
        self.open = True
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, status: dict) -> None:
        """The live line, and a line with its time for each stage as it ends: measured here,
        from the change seen before to this one (the supervisor's timings hold when each phase
        first began, and a phase may come back: add-ons are applied before the nodes start and
        waited for after they are Ready, which read as a negative time)."""
        phase, names = status["phase"], dict(STAGES)
        if phase != self.phase:
            now = time.monotonic()
            if self.open and self.phase in names:
                self.progress.console.print(f"  {names[self.phase]}: {now - self.since:.1f}s")
            self.phase, self.since = phase, now
        if self.open:
            text = f"{status['phase']}: {status.get('message', '')}".strip().rstrip(":")
            total = self.progress.tasks[0].total
            done = total if status["phase"] == "ready" else status.get("ready", 0)
            self.progress.update(self.task, description=text[:70], completed=done)

    def close(self) -> None:
        if self.open:
            self.progress.stop()
            self.open = False


# ---- down / cleanup / status / link ----

def running_supervisor(state: str) -> tuple[dict | None, int | None]:
    """(cluster.json, supervisor pid if that process is alive and is ours)."""
    from netemu.emulator import processes
    from netemu.emulator.state import CLUSTER_FILE, read_json

    doc = read_json(Path(state) / CLUSTER_FILE)
    pid = (doc or {}).get("supervisor_pid")
    if isinstance(pid, int) and processes.matches(pid, "netemu", "--supervise", state):
        return doc, pid
    return doc, None


def running_elsewhere(state: str) -> list[str]:
    """State dirs of the other clusters running on this machine (the registry `netemu up`
    writes, checked against their supervisors' pids)."""
    from netemu.emulator.orphans import REGISTRY_DIR
    from netemu.emulator.state import read_json

    dirs = {(read_json(e) or {}).get("state_dir") for e in REGISTRY_DIR.glob("*.json")} if REGISTRY_DIR.is_dir() else set()
    return sorted(d for d in dirs if isinstance(d, str) and d != state and running_supervisor(d)[1] is not None)


def no_cluster(state: str) -> str:
    """"no cluster running", saying where: a cluster started with --state-dir is not found by a
    command without it, so name the ones that are running and how to reach them."""
    others = running_elsewhere(state)
    text = f"no cluster running at {state}"
    if others:
        text += "; running: " + ", ".join(f"--state-dir {d}" for d in others[:5]) + (" ..." if len(others) > 5 else "")
    return text


def run_down(args: argparse.Namespace) -> int:
    from netemu.emulator import cleanup, processes
    from netemu.emulator.state import pid_alive

    state = state_dir_of(args)
    doc, pid = running_supervisor(state)
    if pid is None:
        removed = cleanup.cleanup(state)
        print(no_cluster(state) + ("" if removed.empty() else f"; removed leftovers: {summary(removed)}"))
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        processes.kill([pid])
    removed = cleanup.cleanup(state)
    extra = "" if removed.empty() else f" (and removed leftovers: {summary(removed)})"
    print(f"cluster {doc.get('name', '?')!r} stopped{extra}")
    return 0


def summary(c) -> str:
    return (f"{len(c.kill)} processes, {len(c.pod_netns)} pod namespaces, {len(c.node_netns)} node namespaces, "
            f"{len(c.links)} links")


def run_cleanup(args: argparse.Namespace) -> int:
    from netemu.emulator import cleanup, orphans

    if not args.state_dir and not os.environ.get("NETEMU_STATE_DIR"):
        results = orphans.sweep(force=args.force)       # every dead cluster on the machine
        print("\n".join(orphans.describe(results, summary)))
        return 0
    state = state_dir_of(args)
    _doc, pid = running_supervisor(state)
    if pid is not None and not args.force:
        raise UsageError(f"a cluster is running here (supervisor pid {pid}): use `netemu down` "
                         f"(or `netemu cleanup --force` to kill it)")
    removed = cleanup.cleanup(state)
    print("nothing to clean up" if removed.empty() else f"removed {summary(removed)}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from netemu.emulator.status import show_status

    state = state_dir_of(args)
    doc, pid = running_supervisor(state)
    if pid is None:
        print(no_cluster(state) + (" (stale state: run `netemu cleanup`)" if doc else ""))
        return 1
    return show_status(doc, state)


def run_link(args: argparse.Namespace) -> int:
    from netemu.emulator.supervisor import control_request

    state = state_dir_of(args)
    doc, pid = running_supervisor(state)
    if pid is None:
        raise UsageError(no_cluster(state))
    if args.node not in (doc.get("nodes") or {}):
        raise UsageError(f"no node {args.node!r} (nodes: {', '.join(doc.get('nodes') or {})})")
    answer = control_request(state, {"op": "link", "node": args.node, "status": args.status})
    if "error" in answer:
        print(f"netemu link: error: {answer['error']}", file=sys.stderr)
        return 1
    print(f"{args.node}: link(s) {args.status}: {', '.join(answer.get('links', []))}")
    return 0


def run_restart(args: argparse.Namespace) -> int:
    from netemu.emulator.supervisor import control_request

    state = state_dir_of(args)
    _, pid = running_supervisor(state)
    if pid is None:
        raise UsageError(no_cluster(state))
    answer = control_request(state, {"op": "restart", "component": args.component}, timeout=args.timeout)
    if "error" in answer:
        print(f"netemu restart: error: {answer['error']}", file=sys.stderr)
        return 1
    print(f"{args.component} restarted (pid {answer['pid']}, {answer['seconds']} s)")
    return 0


def add_restart_arguments(p):
    p.add_argument("component", choices=["apiserver", "kubelet", "kube-proxy", "runtime"],
                   help="what to restart: the API server with the controllers, or a node component on every "
                        "node (netemu node restart NODE COMPONENT: on one node)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it to be back")
    add_state_dir(p)


def add_down_arguments(p):
    add_state_dir(p)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a clean stop")


def add_cleanup_arguments(p):
    p.add_argument("--state-dir", default=None,
                   help="only the cluster of this state dir (default: every netemu cluster on this machine "
                        "whose supervisor is dead, found from its namespaces, links and processes)")
    p.add_argument("--force", action="store_true", help="also kill a cluster that is still running")


def add_link_arguments(p):
    p.add_argument("node", help="the node whose links to set")
    p.add_argument("status", choices=["up", "down"])
    add_state_dir(p)


COMMANDS = [
    Command("up", "start a cluster on Mininet; returns when every node is Ready", add_up_arguments, run_up),
    Command("down", "stop the running cluster and remove everything it made", add_down_arguments, run_down),
    Command("cleanup", "remove what crashed clusters left: every dead one on the machine, or one "
            "--state-dir (idempotent)", add_cleanup_arguments, run_cleanup),
    Command("status", "the running cluster's nodes and pods", add_state_dir, run_status),
    Command("link", "cut or restore a node's network links (Mininet link down/up)", add_link_arguments, run_link),
    Command("restart", "restart a cluster component (the API server) on its own state", add_restart_arguments,
            run_restart),
]
