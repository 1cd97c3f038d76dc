"""``netemu status``: the running cluster's nodes and pods, read through the API server.

``node_rows`` and ``pod_rows`` are pure (API objects -> table rows); ``show_status`` fetches and
prints. When the API server does not answer, the nodes cluster.json records are shown instead,
with the error, so a user still sees what is running.
"""

from __future__ import annotations

import asyncio

from netemu.api.kinds import by_kind_name
from netemu.emulator.ready import node_ready

# written by each node's kube-proxy (netemu.agent.proxy.leftovers.PROXY_MODE_ANNOTATION)
PROXY_MODE_ANNOTATION = "kube-proxy.netemu.io/mode"


def node_rows(nodes: list[dict], doc: dict) -> list[list[str]]:
    recorded = doc.get("nodes") or {}
    rows = []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels") or {}
        roles = ",".join(sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))) or "<none>"
        ip = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                   if a.get("type") == "InternalIP"), (recorded.get(name) or {}).get("ip", ""))
        mode = (node["metadata"].get("annotations") or {}).get(PROXY_MODE_ANNOTATION) \
            or (recorded.get(name) or {}).get("proxy_mode", "")
        rows.append([name, "Ready" if node_ready(node) else "NotReady", roles, ip,
                     (node.get("spec") or {}).get("podCIDR", ""), mode or "<none>"])
    return rows


def pod_rows(pods: list[dict]) -> list[list[str]]:
    rows = []
    for pod in sorted(pods, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
        status, spec = pod.get("status") or {}, pod.get("spec") or {}
        statuses = status.get("containerStatuses") or []
        ready = f"{sum(1 for c in statuses if c.get('ready'))}/{len(spec.get('containers') or [])}"
        phase = "Terminating" if pod["metadata"].get("deletionTimestamp") else status.get("phase", "Pending")
        rows.append([pod["metadata"].get("namespace", ""), pod["metadata"]["name"], ready, phase,
                     str(sum(int(c.get("restartCount", 0)) for c in statuses)),
                     status.get("podIP", ""), spec.get("nodeName", "")])
    return rows


def dead_processes(doc: dict, alive) -> list[str]:
    """Pure: a line for each process cluster.json records that is no longer running (the
    supervisor restarts nothing, so the user must hear about it, with the log to read)."""
    lines = []
    if doc.get("apiserver_pid") and not alive(doc["apiserver_pid"]):
        lines.append(f"the API server (pid {doc['apiserver_pid']}) is not running: see logs/apiserver.log")
    for name, node in sorted((doc.get("nodes") or {}).items()):
        pid = node.get("agent_pid")
        if pid and not alive(pid):
            lines.append(f"the agent of node {name} (pid {pid}) is not running: see logs/agent-{name}.log")
    return lines


def lb_rows(lb: dict | None) -> list[list[str]]:
    """The provider load balancer's listeners (its report, cloud/lbplan.py status_doc): where
    each LoadBalancer IP's new connections go and why."""
    rows = []
    for lis in (lb or {}).get("listeners") or []:
        check = (f"healthCheckNodePort {lis.get('health_port')}" if lis.get("local")
                 else f"TCP to the NodePort {lis.get('health_port')}") if lis.get("health_port") else "none (UDP)"
        rows.append([lis.get("service", ""), f"{lis.get('ip')}:{lis.get('port')}/{lis.get('protocol')}",
                     str(lis.get("node_port", "")), ", ".join(lis.get("targets") or []) or "-",
                     f"{check}, none passing: fail open" if lis.get("fail_open") else check,
                     ", ".join(lis.get("source_ranges") or []) or "any"])
    return rows


async def fetch(kubeconfig: str) -> tuple[list[dict], list[dict]]:
    from netemu.client import ApiClient

    async with ApiClient.from_kubeconfig(kubeconfig) as client:
        client.timeout = 5
        nodes = await client.list(by_kind_name("Node"))
        pods = await client.list(by_kind_name("Pod"))
        return nodes.items, pods.items


def table(title: str, header: list[str], rows: list[list[str]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left", box=None, header_style="bold")
    for column in header:
        t.add_column(column)
    for row in rows:
        t.add_row(*row)
    return t


def show_status(doc: dict, state_dir: str = ".") -> int:
    from rich.console import Console

    console = Console()
    console.print(f"cluster {doc.get('name')!r}: API server {doc.get('apiserver')}, node network "
                  f"{doc.get('node_network')}, supervisor pid {doc.get('supervisor_pid')}")
    console.print(f"  export KUBECONFIG={doc.get('kubeconfig')}")
    from netemu.emulator.processes import running

    for line in dead_processes(doc, running):
        console.print(f"[yellow]warning:[/] {line}")
    try:
        nodes, pods = asyncio.run(fetch(doc["kubeconfig"]))
    except Exception as exc:  # API down or unreachable: still show what runs
        console.print(f"API server not answering: {type(exc).__name__}: {exc}")
        rows = [[n, "?", i.get("role", ""), i.get("ip", ""), "", i.get("proxy_mode", "")]
                for n, i in (doc.get("nodes") or {}).items()]
        console.print(table("nodes (recorded)", ["NAME", "STATUS", "ROLES", "IP", "POD CIDR", "PROXY MODE"], rows))
        return 1
    console.print(table("nodes", ["NAME", "STATUS", "ROLES", "INTERNAL-IP", "POD CIDR", "PROXY MODE"],
                        node_rows(nodes, doc)))
    console.print(table("pods", ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "IP", "NODE"], pod_rows(pods)))
    if doc.get("edge"):
        show_edge(console, doc, state_dir)
    return 0


def show_edge(console, doc: dict, state_dir: str) -> None:
    from pathlib import Path

    from netemu.emulator.cloud.lbplan import STATUS_FILE
    from netemu.emulator.state import read_json

    edge = doc["edge"]
    lb = read_json(Path(state_dir) / STATUS_FILE)
    console.print(f"edge: internet {edge.get('internet_cidr')} (clients' gateway {edge.get('gateway')}), provider "
                  f"load balancer in namespace {edge.get('netns')} at {edge.get('node_ip')}")
    if lb and lb.get("error"):
        console.print(f"[yellow]warning:[/] the load balancer's last rule update failed: {lb['error']}")
    if lb and lb.get("undecided"):
        console.print(f"  health checks with no verdict yet: {', '.join(lb['undecided'])}")
    console.print(table("load balancers", ["SERVICE", "LISTENER", "NODEPORT", "NEW CONNECTIONS TO", "HEALTH CHECK",
                                           "SOURCE RANGES"], lb_rows(lb)))
